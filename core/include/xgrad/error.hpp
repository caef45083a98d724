// xg::Error: the one exception type the library throws, and the checking helper
// every op uses so that messages read "<op>: <expected> (got <what>)".
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace xg {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws xg::Error with fmt-formatted text when `condition` is false. Its
// arguments are built on every call, passed or not: a message that prints
// shapes or dtype names belongs in fail(), behind the test.
template <class... Args>
void check(bool condition, fmt::format_string<Args...> format, Args&&... args) {
    if (!condition) throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// The same, for a test already made: `if (!ok) fail(...)` builds the message's
// arguments (shape_str, dtype_name: strings) only once the check has failed.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
    throw Error(fmt::format(format, std::forward<Args>(args)...));
}

// Shapes print the way PyTorch prints them in messages: [2, 3], [] for a scalar.
std::string shape_str(const std::vector<std::size_t>& shape);

}  // namespace xg
