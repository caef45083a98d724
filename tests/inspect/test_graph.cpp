// Tests for xg::inspect::GraphRecorder (inspect/src/graph.cpp): which module
// each node of a backward graph is drawn in, read back from its DOT text.
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "dot_text.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace inspect_test_graph {

using xg::Tensor;
using xg::inspect::GraphRecorder;
using Labels = std::multiset<std::string>;

namespace {

// to_dot's text read back (tests/dot_text.hpp), each node with its cluster.
struct Dot : test::DotText {
    // Every node's label drawn in `cluster` ("" for none); saved values ('s') on request.
    Labels in(const std::string& cluster, char kind = 'n') const {
        Labels out;
        for (const auto& node : nodes) {
            if (node.cluster == cluster && node.id[0] == kind) out.insert(node.label);
        }
        return out;
    }
    // Edges as "cluster/label" pairs: three LinearBackward nodes differ by module.
    std::set<std::pair<std::string, std::string>> placed_edges() const {
        auto place = [&](const std::string& id) {
            const test::DotNode* node = find(id);
            return node ? node->cluster + "/" + node->label : "?" + id;
        };
        std::set<std::pair<std::string, std::string>> out;
        for (const auto& [from, to] : edges) out.emplace(place(from), place(to));
        return out;
    }
};

Dot parse(const std::string& text) { return Dot{test::parse_dot(text)}; }

Tensor input() { return xg::randn({4, 8}); }

}  // namespace

TEST_CASE("GraphRecorder draws a SwiGLU FeedForward's nodes in the modules that made them") {
    xg::manual_seed(0);
    auto ffn = xg::nn::FeedForward::swiglu(8, 16, 0.0);
    GraphRecorder recorder(*ffn);
    Tensor y = xg::sum((*ffn)(input()));
    Dot dot = parse(recorder.to_dot(y));
    CHECK(dot.nodes.size() == 10);  // 3 Linear, Silu, Mul, Sum; 3 weights; y
    CHECK(dot.edges.size() == 9);
    CHECK(dot.in("layer1") == Labels{"LinearBackward", "layer1.weight\n[16, 8]"});
    CHECK(dot.in("linear_v") == Labels{"LinearBackward", "linear_v.weight\n[16, 8]"});
    CHECK(dot.in("layer2") == Labels{"LinearBackward", "layer2.weight\n[8, 16]"});
    CHECK(dot.in("activation") == Labels{"SiluBackward"});
    // The gate's product runs in FeedForward's own forward (the model, no box);
    // the loss outside every module.
    CHECK(dot.in("") == Labels{"MulBackward", "SumBackward", "output\n[]"});
    const std::set<std::pair<std::string, std::string>> expected{
        {"layer1/layer1.weight\n[16, 8]", "layer1/LinearBackward"},
        {"layer1/LinearBackward", "activation/SiluBackward"},
        {"activation/SiluBackward", "/MulBackward"},
        {"linear_v/linear_v.weight\n[16, 8]", "linear_v/LinearBackward"},
        {"linear_v/LinearBackward", "/MulBackward"},
        {"/MulBackward", "layer2/LinearBackward"},
        {"layer2/layer2.weight\n[8, 16]", "layer2/LinearBackward"},
        {"layer2/LinearBackward", "/SumBackward"},
        {"/SumBackward", "/output\n[]"}};
    CHECK(dot.placed_edges() == expected);
    CHECK(recorder.to_dot(y) == recorder.to_dot(y));

    CHECK(recorder.module_of(*y.grad_fn()).empty());
    REQUIRE(y.grad_fn()->next[0]);
    CHECK(recorder.module_of(*y.grad_fn()->next[0]) == "layer2");
}

TEST_CASE("GraphRecorder gives a node to the innermost module running when it was made") {
    xg::manual_seed(0);
    auto ffn = xg::nn::FeedForward::swiglu(8, 16, 0.0);
    xg::nn::Sequential model{ffn};
    GraphRecorder recorder(model);
    Dot dot = parse(recorder.to_dot(xg::sum(model(input()))));
    CHECK(dot.in("0") == Labels{"MulBackward"});  // made in the FeedForward, outside its parts
    CHECK(dot.in("0.layer1") == Labels{"LinearBackward", "0.layer1.weight\n[16, 8]"});
    CHECK(dot.in("0.activation") == Labels{"SiluBackward"});
    CHECK(dot.in("") == Labels{"SumBackward", "output\n[]"});
}

TEST_CASE("GraphRecorder with show_saved draws saved values with their node's module") {
    xg::manual_seed(0);
    auto ffn = xg::nn::FeedForward::swiglu(8, 16, 0.0);
    GraphRecorder recorder(*ffn);
    Dot dot = parse(recorder.to_dot(xg::sum((*ffn)(input())), true));
    // linear reads its input and weight; the bias slot is empty (no bias).
    CHECK(dot.in("layer2", 's') == Labels{"input 0\n[4, 16]", "input 1\n[8, 16]"});
    CHECK(dot.in("layer1", 's') == Labels{"input 0\n[4, 8]", "input 1\n[16, 8]"});
}

TEST_CASE("GraphRecorder stays consistent when a forward throws, and stops on remove") {
    xg::manual_seed(0);
    auto ffn = xg::nn::FeedForward::swiglu(8, 16, 0.0);
    GraphRecorder recorder(*ffn);
    CHECK_THROWS_AS((*ffn)(xg::randn({4, 5})), xg::Error);  // layer1 refuses the shape
    Dot dot = parse(recorder.to_dot(xg::sum((*ffn)(input()))));
    CHECK(dot.in("activation") == Labels{"SiluBackward"});
    CHECK(dot.in("") == Labels{"MulBackward", "SumBackward", "output\n[]"});

    recorder.remove();
    recorder.remove();  // idempotent
    // No hooks left: FeedForward fuses its activation and gate again, and no
    // op node is drawn in a module; the weights still go with their owners.
    Dot after = parse(recorder.to_dot(xg::sum((*ffn)(input()))));
    CHECK(after.in("").count("FfnActBackward") == 1);
    for (const auto& node : after.nodes) {
        if (node.fill != "lightblue") {
            CHECK_MESSAGE(node.cluster.empty(), node.label);
        }
    }
    CHECK(after.in("layer1") == Labels{"layer1.weight\n[16, 8]"});
}

TEST_CASE("GraphRecorder draws no box for the model's own nodes and parameters") {
    auto linear = std::make_shared<xg::nn::Linear>(3, 2);
    GraphRecorder recorder(*linear);
    std::string text = recorder.to_dot(xg::sum((*linear)(xg::ones({4, 3}))));
    CHECK(text.find("subgraph") == std::string::npos);
    CHECK(parse(text).in("") ==
          Labels{"SumBackward", "LinearBackward", "weight\n[2, 3]", "bias\n[2]", "output\n[]"});
}

}  // namespace inspect_test_graph
