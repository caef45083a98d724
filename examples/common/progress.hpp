// A one-line progress bar that redraws in place on a terminal and falls back
// to a plain summary line when stdout is a file or a pipe.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace xg::examples {

class ProgressBar {
public:
    ProgressBar(std::string label, std::size_t total, bool quiet = false);
    void update(std::size_t done, double loss);  // cheap: redraws at most ~20 times a second
    double seconds() const;
    void finish();  // clears the bar (TTY) so the caller can print its epoch line

private:
    std::string label_;
    std::size_t total_;
    bool quiet_, tty_;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

bool stdout_is_tty();

}  // namespace xg::examples
