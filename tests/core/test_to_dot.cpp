// Tests for xg::autograd::to_dot and render_svg (core/src/to_dot.cpp): the DOT
// text is parsed back (every line must be a node, an edge or a cluster line)
// and its nodes, edges, labels and clusters checked against graphs built by
// hand; Graphviz renders it when installed.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/to_dot.hpp>
#include <xgrad/xgrad.hpp>

#include "dot_text.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_to_dot {

using xg::Tensor;
using xg::autograd::DotOptions;
using xg::autograd::to_dot;

namespace {

// to_dot's text read back (tests/dot_text.hpp), with the views these tests check.
struct Dot : test::DotText {
    // The graph's nodes ("n..."), or the saved values ("s..."), in order.
    std::vector<test::DotNode> kind(char prefix) const {
        std::vector<test::DotNode> out;
        for (const auto& node : nodes) {
            if (node.id[0] == prefix) out.push_back(node);
        }
        return out;
    }
    std::multiset<std::string> labels(char prefix = 'n') const {
        std::multiset<std::string> out;
        for (const auto& node : kind(prefix)) out.insert(node.label);
        return out;
    }
    std::set<std::pair<std::string, std::string>> labelled_edges() const {
        std::set<std::pair<std::string, std::string>> out;
        for (const auto& [from, to] : edges) {
            const test::DotNode *a = find(from), *b = find(to);
            if (a && b) out.emplace(a->label, b->label);
        }
        return out;
    }
};

Dot parse(const std::string& text) { return Dot{test::parse_dot(text)}; }

// Parses and checks that the text is all statements to_dot writes and that
// every edge joins declared nodes.
Dot parse_checked(const std::string& text) {
    Dot dot = parse(text);
    for (const auto& line : dot.unparsed) FAIL_CHECK("unparsed DOT line: " << line);
    for (const auto& edge : dot.edges) {
        CHECK_MESSAGE(dot.find(edge.first), edge.first);
        CHECK_MESSAGE(dot.find(edge.second), edge.second);
    }
    return dot;
}

// y = sum(a * b + c) over three named [2] leaves.
struct Small {
    Tensor a = test::f64({1.0, 2.0}, true), b = test::f64({3.0, 4.0}, true),
           c = test::f64({5.0, 6.0}, true);
    Tensor y = xg::sum(a * b + c);
    DotOptions named() const {
        DotOptions options;
        options.params = {{"a", a}, {"b", b}, {"c", c}};
        return options;
    }
};

bool dot_installed() {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        if (!dir.empty() && ::access((dir + "/dot").c_str(), X_OK) == 0) return true;
    }
    return false;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const char* const kNoDot =
    "render_svg: Graphviz's 'dot' was not found on PATH (install the graphviz package)";

}  // namespace

TEST_CASE("to_dot draws one node per grad_fn, one per leaf and one for the root") {
    Small g;
    std::string text = to_dot(g.y, g.named());
    CHECK(text.starts_with("digraph \"backward\" {\n"));
    Dot dot = parse_checked(text);
    CHECK(dot.nodes.size() == 7);  // Mul, Add, Sum; a, b, c; y
    CHECK(dot.edges.size() == 6);
    CHECK(dot.labels() == std::multiset<std::string>{"MulBackward", "AddBackward", "SumBackward",
                                                     "a\n[2]", "b\n[2]", "c\n[2]", "output\n[]"});
    REQUIRE(dot.find("n0"));
    CHECK(dot.find("n0")->label == "output\n[]");
    CHECK(dot.find("n0")->fill == "darkolivegreen1");
    CHECK(dot.find("n1")->label == "SumBackward");
    const std::set<std::string> leaves{"a\n[2]", "b\n[2]", "c\n[2]"};
    for (const auto& node : dot.kind('n')) {
        if (node.id == "n0") continue;
        CHECK_MESSAGE(node.fill == (leaves.contains(node.label) ? "lightblue" : ""), node.label);
    }
    // Arrows run the way the forward ran: from an op's inputs to the op.
    const std::set<std::pair<std::string, std::string>> expected{
        {"SumBackward", "output\n[]"},  {"AddBackward", "SumBackward"},
        {"MulBackward", "AddBackward"}, {"c\n[2]", "AddBackward"},
        {"a\n[2]", "MulBackward"},      {"b\n[2]", "MulBackward"}};
    CHECK(dot.labelled_edges() == expected);
}

TEST_CASE("to_dot labels an unnamed leaf with its shape and is deterministic") {
    Small g;
    Dot dot = parse_checked(to_dot(g.y));
    CHECK(dot.labels().count("[2]") == 3);
    CHECK(to_dot(g.y) == to_dot(g.y));
    Small other;  // the same graph at other addresses: the same text
    CHECK(to_dot(other.y, other.named()) == to_dot(g.y, g.named()));
}

TEST_CASE("to_dot of a tensor without grad_fn is one node") {
    Tensor w = test::f64({1.0, 2.0, 3.0}, true);
    DotOptions options;
    options.params = {{"w", w}};
    Dot dot = parse_checked(to_dot(w, options));
    REQUIRE(dot.nodes.size() == 1);
    CHECK(dot.nodes[0].label == "w\n[3]");
    CHECK(dot.edges.empty());
    Dot plain = parse_checked(to_dot(xg::ones({1, 2})));  // no grad at all
    REQUIRE(plain.nodes.size() == 1);
    CHECK(plain.nodes[0].label == "output\n[1, 2]");
    CHECK_THROWS_WITH_AS(to_dot(Tensor()),
                         "to_dot: expected a defined tensor (got an undefined one)", xg::Error);
}

TEST_CASE("to_dot names a Linear's leaves by its named_parameters") {
    auto linear = std::make_shared<xg::nn::Linear>(3, 2);
    Tensor y = xg::sum((*linear)(xg::ones({4, 3})));
    DotOptions options;
    options.params = linear->named_parameters();
    Dot dot = parse_checked(to_dot(y, options));
    CHECK(dot.labels() == std::multiset<std::string>{"SumBackward", "LinearBackward",
                                                     "weight\n[2, 3]", "bias\n[2]", "output\n[]"});
    CHECK(dot.edges.size() == 4);  // the input needs no gradient: no arrow from it
    CHECK(dot.labelled_edges().count({"weight\n[2, 3]", "LinearBackward"}) == 1);
}

TEST_CASE("to_dot with show_saved draws what each node's backward reads") {
    Small g;
    DotOptions options = g.named();
    CHECK(parse_checked(to_dot(g.y, options)).kind('s').empty());
    options.show_saved = true;
    Dot dot = parse_checked(to_dot(g.y, options));
    // mul reads both inputs; add and sum need only the incoming gradient.
    CHECK(dot.labels('s') == std::multiset<std::string>{"input 0\n[2]", "input 1\n[2]"});
    for (const auto& saved : dot.kind('s')) {
        CHECK(saved.fill == "orange");
        CHECK(dot.labelled_edges().count({saved.label, "MulBackward"}) == 1);
    }
    CHECK(dot.nodes.size() == 9);
    CHECK(dot.edges.size() == 8);

    Tensor x = test::f64({0.5, 1.0, 2.0}, true);
    Tensor e = xg::exp(x);  // reads its output
    Tensor t = x * 2.0;
    Tensor u = t * t;
    CHECK(parse_checked(to_dot(xg::sum(e), options)).labels('s') ==
          std::multiset<std::string>{"output\n[3]"});
    t.mul_(3.0);  // u's backward would now refuse to run
    Dot changed = parse_checked(to_dot(u, options));
    CHECK(changed.labels('s') == std::multiset<std::string>{"input 0\n[3]\nmodified in place",
                                                            "input 1\n[3]\nmodified in place"});
}

TEST_CASE("to_dot puts nodes in the clusters cluster_of names and escapes every label") {
    Small g;
    DotOptions options;
    options.params = {{"a \"quoted\" \\ name", g.a}};
    options.show_saved = true;
    options.graph_name = "graph \"1\"";
    options.cluster_of = [](const xg::autograd::Node& node) {
        return node.name == "MulBackward" ? std::string("inner \"x\"") : std::string();
    };
    std::string text = to_dot(g.y, options);
    CHECK(text.starts_with("digraph \"graph \\\"1\\\"\" {\n"));
    Dot dot = parse_checked(text);
    CHECK(dot.labels().count("a \"quoted\" \\ name\n[2]") == 1);
    for (const auto& node : dot.nodes) {
        bool inside = node.label == "MulBackward" || node.id[0] == 's';  // saved values follow
        CHECK_MESSAGE(node.cluster == (inside ? "inner \"x\"" : ""), node.label);
    }
}

TEST_CASE("to_dot after backward shows the freed root node alone") {
    Small g;
    g.y.backward();
    Dot dot = parse_checked(to_dot(g.y));
    CHECK(dot.labels() ==
          std::multiset<std::string>{"SumBackward\n(freed by backward)", "output\n[]"});
    CHECK(dot.edges.size() == 1);
}

TEST_CASE("render_svg writes an SVG file with Graphviz's dot") {
    namespace fs = std::filesystem;
    const fs::path svg =
        fs::temp_directory_path() / ("xgrad_test_to_dot_" + std::to_string(::getpid()) + ".svg");
    Small g;
    std::string text = to_dot(g.y, g.named());
    if (!dot_installed()) {
        CHECK_THROWS_WITH_AS(xg::autograd::render_svg(text, svg.string()), kNoDot, xg::Error);
        MESSAGE("Graphviz's dot is not installed: rendering was not exercised");
        return;
    }
    xg::autograd::render_svg(text, svg.string());
    std::string out = read_file(svg);
    CHECK((out.starts_with("<?xml") || out.find("<svg") != std::string::npos));
    CHECK(out.find("MulBackward") != std::string::npos);
    fs::remove(svg);
    CHECK_THROWS_WITH_AS(xg::autograd::render_svg("digraph { n0 -> }", svg.string()),
                         doctest::Contains("render_svg: dot -Tsvg failed (exit status 1)"),
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::autograd::render_svg("digraph { n0 -> }", svg.string()),
                         doctest::Contains("syntax error"), xg::Error);
    fs::remove(svg);
}

TEST_CASE("render_svg without dot on PATH says which package to install") {
    const char* old = std::getenv("PATH");
    struct Restore {
        std::optional<std::string> path;
        ~Restore() { path ? ::setenv("PATH", path->c_str(), 1) : ::unsetenv("PATH"); }
    } restore{old ? std::optional<std::string>(old) : std::nullopt};
    ::setenv("PATH", "/nonexistent/xgrad-test", 1);
    CHECK_THROWS_WITH_AS(xg::autograd::render_svg("digraph {}", "unused.svg"), kNoDot, xg::Error);
}

}  // namespace core_test_to_dot
