// README.md's "Ops" table against the headers, so neither can drift from the
// other: every op declared at namespace level in ops.hpp, every factory in
// tensor.hpp and every op method of Tensor is named in the table, and every
// `name(` the table shows is declared in one of them.

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace docs_test_readme_ops {

namespace {

const std::filesystem::path kRoot = XGRAD_SOURCE_DIR;

std::string read(const std::filesystem::path& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

bool is_name_char(char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_';
}

// The identifier at `at` when `line` continues with "name(" there, else "".
std::string name_before_paren(const std::string& line, std::size_t at) {
    std::size_t end = at;
    while (end < line.size() && is_name_char(line[end])) ++end;
    return end > at && end < line.size() && line[end] == '(' ? line.substr(at, end - at) : "";
}

// Names of the functions a header declares at namespace level (unindented),
// outside `namespace detail`, returning a Tensor, tensors, a pair of them or a Dtype.
std::set<std::string> declared(const std::string& header) {
    static const char* const kReturns[] = {"Tensor ", "std::vector<Tensor> ",
                                           "std::pair<Tensor, Tensor> ", "Dtype "};
    std::set<std::string> names;
    std::istringstream lines(header);
    bool in_detail = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("namespace detail", 0) == 0) in_detail = true;
        if (line.rfind("}  // namespace detail", 0) == 0) in_detail = false;
        for (const char* type : kReturns) {
            const std::string prefix = type;
            if (in_detail || line.rfind(prefix, 0) != 0) continue;
            const std::string name = name_before_paren(line, prefix.size());
            if (!name.empty()) names.insert(name);
        }
    }
    return names;
}

// Tensor's op methods: the declarations indented once that return a Tensor.
std::set<std::string> tensor_methods(const std::string& header) {
    std::set<std::string> names;
    std::istringstream lines(header);
    for (std::string line; std::getline(lines, line);) {
        for (const std::string prefix : {"    Tensor ", "    Tensor& "}) {
            if (line.rfind(prefix, 0) != 0) continue;
            const std::string name = name_before_paren(line, prefix.size());
            if (!name.empty()) names.insert(name);
        }
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

// Whether `name` stands in the table as a whole word.
bool names(const std::string& table, const std::string& name) {
    for (auto at = table.find(name); at != std::string::npos; at = table.find(name, at + 1)) {
        const bool starts = at == 0 || !is_name_char(table[at - 1]);
        const std::size_t end = at + name.size();
        if (starts && (end == table.size() || !is_name_char(table[end]))) return true;
    }
    return false;
}

// Every `name( or `x.name( in the table: the calls it shows in code spans.
std::set<std::string> calls(const std::string& table) {
    std::set<std::string> out;
    for (auto at = table.find('`'); at != std::string::npos; at = table.find('`', at + 1)) {
        std::size_t from = at + 1;
        if (table.compare(from, 2, "x.") == 0) from += 2;
        const std::string name = name_before_paren(table, from);
        if (!name.empty()) out.insert(name);
    }
    return out;
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
        CHECK(names(table, name));
    }
    for (const std::string& name : methods) {
        if (not_ops.count(name)) continue;
        CAPTURE(name);
        CHECK(names(table, name));
    }

    // Every `name(` the table shows is declared, but for the math in its formulas.
    const std::set<std::string> formula_words = {"sgn", "xlogy", "logit", "act"};
    for (const std::string& name : calls(table)) {
        CAPTURE(name);
        CHECK((known.count(name) + methods.count(name) + formula_words.count(name)) == 1);
    }
}

}  // namespace docs_test_readme_ops
