// README.md's "Ops" table against the headers, so neither can drift from the
// other: every op declared at namespace level in ops.hpp, every factory in
// tensor.hpp and every op method of Tensor is named in the table, and every
// `name(` the table shows is declared in one of them.

// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex> when
// it inlines the NFA compiler at -O1 (GCC bug 105562); the code is correct.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

namespace {

const std::filesystem::path kRoot = XGRAD_SOURCE_DIR;

std::string read(const std::filesystem::path& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Names of the functions a header declares at namespace level (unindented),
// outside `namespace detail`, returning a Tensor, tensors or a pair of them.
std::set<std::string> declared(const std::string& header) {
    static const std::regex function(
        R"(^(?:Tensor|std::vector<Tensor>|std::pair<Tensor, Tensor>|Dtype) ([a-z_0-9]+)\()");
    std::set<std::string> names;
    std::istringstream lines(header);
    bool in_detail = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("namespace detail", 0) == 0) in_detail = true;
        if (in_detail && line.rfind("}  // namespace detail", 0) == 0) in_detail = false;
        std::smatch m;
        if (!in_detail && std::regex_search(line, m, function)) names.insert(m[1]);
    }
    return names;
}

// Tensor's op methods: the indented declarations that return a Tensor.
std::set<std::string> tensor_methods(const std::string& header) {
    static const std::regex method(R"(^    Tensor&? ([a-z_]+)\()");
    std::set<std::string> names;
    std::istringstream lines(header);
    for (std::string line; std::getline(lines, line);) {
        std::smatch m;
        if (std::regex_search(line, m, method)) names.insert(m[1]);
    }
    return names;
}

// The rows of the table in the "Ops" section (its lines that start with '|').
std::string ops_table(const std::string& readme) {
    const auto start = readme.find("\n## Ops\n");
    REQUIRE(start != std::string::npos);
    const auto end = readme.find("\n## ", start + 1);
    std::istringstream lines(readme.substr(start, end - start));
    std::string rows;
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("| ", 0) == 0) rows += line + "\n";
    }
    return rows;
}

}  // namespace

TEST_CASE("README's Ops table names every op in the headers, and only those") {
    const std::string ops = read(kRoot / "core/include/xgrad/ops.hpp");
    const std::string tensor = read(kRoot / "core/include/xgrad/tensor.hpp");
    const std::string table = ops_table(read(kRoot / "README.md"));
    std::set<std::string> known = declared(ops);
    const std::set<std::string> factories = declared(tensor), methods = tensor_methods(tensor);
    REQUIRE(known.size() > 100);  // the parse found the declarations
    REQUIRE(factories.count("randn") == 1);
    REQUIRE(methods.count("slice") == 1);
    known.insert(factories.begin(), factories.end());

    // Each name in the table as a word in backticks or in a backticked list.
    const std::set<std::string> not_ops = {"grad",  "mutable_grad", "requires_grad_",
                                           "clone", "detach",       "to"};
    for (const std::string& name : known) {
        CAPTURE(name);
        CHECK(std::regex_search(table, std::regex("`[^`]*\\b" + name + "\\b[^`]*`")));
    }
    for (const std::string& name : methods) {
        if (not_ops.count(name)) continue;
        CAPTURE(name);
        CHECK(std::regex_search(table, std::regex("`[^`]*\\b" + name + "\\b[^`]*`")));
    }

    // Every `name(` the table shows is declared, but for the math in its formulas.
    const std::set<std::string> formula_words = {"sgn", "xlogy", "logit", "act"};
    static const std::regex call(R"(`(?:x\.)?([a-z_0-9]+)\()");
    for (auto it = std::sregex_iterator(table.begin(), table.end(), call);
         it != std::sregex_iterator(); ++it) {
        const std::string name = (*it)[1];
        CAPTURE(name);
        CHECK((known.count(name) + methods.count(name) + formula_words.count(name)) == 1);
    }
}
