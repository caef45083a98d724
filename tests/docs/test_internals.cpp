// docs/internals.md names files and functions as it walks through the code;
// this test keeps it true: every file it names exists, and every function
// named `like_this()` is defined in a file named in the same list item or
// paragraph (anywhere in the library when the item names no file).

// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex> when
// it inlines the NFA compiler at -O1 (GCC bug 105562); the code is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace docs_test_internals {

namespace {

const std::filesystem::path kRoot = XGRAD_SOURCE_DIR;

std::string read(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// The doc split into list items and paragraphs.
std::vector<std::string> items(const std::string& doc) {
    static const std::regex item_start(R"(^\s*([-*]|\d+\.)\s)");
    std::vector<std::string> out(1);
    std::istringstream lines(doc);
    for (std::string line; std::getline(lines, line);) {
        if (line.find_first_not_of(' ') == std::string::npos || std::regex_search(line, item_start))
            out.emplace_back();
        out.back() += line + "\n";
    }
    return out;
}

std::vector<std::string> spans(const std::string& text, const std::regex& pattern) {
    std::vector<std::string> out;
    for (std::sregex_iterator it(text.begin(), text.end(), pattern), end; it != end; ++it)
        out.push_back((*it)[1]);
    return out;
}

std::string escaped(const std::string& name) {
    static const std::regex special(R"([.^$|()\[\]{}*+?\\~])");
    return std::regex_replace(name, special, R"(\$&)");
}

// `name` (qualified or not) followed by a parameter list and a body.
bool defines(const std::string& source, const std::string& name) {
    const std::regex definition("(^|[^\\w:])" + escaped(name) + R"(\s*\([^;{]*\)[^;{()]*\{)");
    return std::regex_search(source, definition);
}

std::vector<std::filesystem::path> library_sources() {
    std::vector<std::filesystem::path> out;
    for (const char* layer : {"core", "nn", "optim", "checkpoint"}) {
        if (!std::filesystem::exists(kRoot / layer)) continue;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(kRoot / layer)) {
            auto ext = entry.path().extension();
            if (ext == ".cpp" || ext == ".hpp") out.push_back(entry.path());
        }
    }
    return out;
}

}  // namespace

TEST_CASE("docs/internals.md names only files and functions that exist") {
    const std::string doc = read(kRoot / "docs" / "internals.md");
    REQUIRE(!doc.empty());
    const std::regex file_span(
        R"(`((?:core|nn|optim|checkpoint|tests|docs)/[\w/.]+\.(?:cpp|hpp|md))`)");
    const std::regex function_span(R"(`([\w:~]+(?:\(\))?)\(\)`)");
    int functions = 0;
    for (const std::string& item : items(doc)) {
        std::vector<std::filesystem::path> files;
        for (const std::string& file : spans(item, file_span)) {
            CHECK_MESSAGE(std::filesystem::exists(kRoot / file), "missing file " << file);
            files.push_back(kRoot / file);
        }
        if (files.empty()) files = library_sources();
        for (const std::string& function : spans(item, function_span)) {
            bool found = false;
            for (const auto& file : files) found = found || defines(read(file), function);
            CHECK_MESSAGE(found, function << "() is not defined where the doc says:\n" << item);
            ++functions;
        }
    }
    CHECK(functions >= 30);  // the walk names the engine's and the module system's steps
}

}  // namespace docs_test_internals
