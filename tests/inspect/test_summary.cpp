// xg::inspect::summary: rows and totals against PyTorch's twins
// (reference/gen_summary.py) and by hand, the table's text, and what a summary
// leaves behind: no hooks, the same training modes, no graph, also when
// forward throws.
#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/inspect/summary.hpp>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "inspect/reference/summary_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace inspect_test_summary {

namespace nn = xg::nn;
namespace ref = reference::summary;
using xg::inspect::ModelSummary;
using xg::inspect::summary;

namespace {

std::shared_ptr<nn::Sequential> sequential(std::initializer_list<std::shared_ptr<nn::Module>> m) {
    return std::make_shared<nn::Sequential>(m);
}

// The models of gen_summary.py.
std::shared_ptr<nn::Module> stack_model() {
    auto first = std::make_shared<nn::Linear>(4, 8);
    first->bias.requires_grad_(false);
    auto shared = std::make_shared<nn::Linear>(8, 8);
    return sequential({first, std::make_shared<nn::Tanh>(), shared, shared,
                       std::make_shared<nn::FeedForward>(8, 16, 0.1),
                       std::make_shared<nn::Linear>(8, 3)});
}

std::shared_ptr<nn::Module> tied_model() {
    auto embedding = std::make_shared<nn::Embedding>(10, 4);
    auto output = std::make_shared<nn::Linear>(4, 10);
    output->register_parameter("weight", embedding->weight);
    return sequential({embedding, output});
}

std::shared_ptr<nn::Module> encoder_layer_model() {
    return std::make_shared<nn::TransformerEncoderLayer>(8, 2, 16, 0.0, "relu", 1e-5, true);
}

void check_against(const ModelSummary& got, const ref::Model& expected) {
    REQUIRE(got.rows.size() == expected.rows.size());
    for (std::size_t i = 0; i < got.rows.size(); ++i) {
        const xg::inspect::SummaryRow& g = got.rows[i];
        const ref::Row& e = expected.rows[i];
        INFO("row ", i, ": '", e.name, "' (", e.type, ")");
        CHECK(g.name == e.name);
        CHECK(g.type == e.type);
        CHECK(g.depth == e.depth);
        CHECK(g.output_shapes == e.output_shapes);
        CHECK(g.output_bytes == e.output_bytes);
        CHECK(g.params == e.params);
        CHECK(g.trainable == e.trainable);
        CHECK(g.mult_adds == e.mult_adds);
        CHECK(g.recursive == e.recursive);
    }
    CHECK(got.total_params == expected.total_params);
    CHECK(got.trainable_params == expected.trainable_params);
    CHECK(got.mult_adds == expected.mult_adds);
    CHECK(got.input_bytes == expected.input_bytes);
    CHECK(got.activation_bytes == expected.activation_bytes);
    CHECK(got.param_bytes == expected.param_bytes);
}

bool any_hooks(const nn::Module& model) {
    for (const auto& module : model.modules()) {
        if (module->has_hooks()) return true;
    }
    return false;
}

std::vector<bool> training_modes(const nn::Module& model) {
    std::vector<bool> modes;
    for (const auto& module : model.modules()) modes.push_back(module->is_training());
    return modes;
}

// The table's lines with every run of blanks made one, so the checks read the
// cells and their order, not the column widths.
std::vector<std::string> squeezed_lines(const std::string& table) {
    std::vector<std::string> lines;
    std::istringstream in(table);
    for (std::string line; std::getline(in, line);) {
        std::string squeezed;
        for (char c : line) {
            if (c != ' ' || (!squeezed.empty() && squeezed.back() != ' ')) squeezed += c;
        }
        while (!squeezed.empty() && squeezed.back() == ' ') squeezed.pop_back();
        lines.push_back(squeezed);
    }
    return lines;
}

bool has_line(const std::vector<std::string>& lines, const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

// A module whose forward fails.
struct Throwing : nn::Module {
    xg::Tensor forward(const xg::Tensor&) override { throw xg::Error("Throwing: forward failed"); }
};

}  // namespace

TEST_CASE("summary matches PyTorch's twins: rows, parameters, mult-adds and bytes") {
    xg::manual_seed(0);
    SUBCASE("swiglu FeedForward") {
        auto model = nn::FeedForward::swiglu(4, 6);
        check_against(summary(*model, xg::randn(ref::swiglu.input_shape)), ref::swiglu);
    }
    SUBCASE("Sequential with a module called twice and a nested FeedForward") {
        auto model = stack_model();
        check_against(summary(*model, xg::randn(ref::stack.input_shape)), ref::stack);
    }
    SUBCASE("an output Linear tied to its Embedding") {
        auto model = tied_model();
        check_against(summary(*model, test::i64({{1, 2, 3}, {4, 5, 6}})), ref::tied);
    }
    SUBCASE("TransformerEncoderLayer, batch first") {
        auto model = encoder_layer_model();
        check_against(summary(*model, xg::randn(ref::encoder_layer.input_shape)),
                      ref::encoder_layer);
    }
}

TEST_CASE("summary's numbers for a swiglu FeedForward, by hand") {
    auto model = nn::FeedForward::swiglu(4, 6);  // three bias-free Linears of 24 weights
    const ModelSummary s = summary(*model, xg::randn({2, 3, 4}));
    REQUIRE(s.rows.size() == 6);
    // Call order: layer1, the gate's activation, linear_v, dropout, layer2.
    std::vector<std::string> names;
    for (const auto& row : s.rows) names.push_back(row.name);
    CHECK(names ==
          std::vector<std::string>{"", "layer1", "activation", "linear_v", "dropout", "layer2"});
    CHECK(s.rows[0].type == "FeedForward");
    CHECK(s.rows[0].depth == 0);
    CHECK(s.rows[0].params == 0);  // every weight is counted on its Linear's row
    CHECK(s.rows[1].depth == 1);
    CHECK(s.rows[1].params == 24);
    CHECK(s.rows[1].mult_adds == 24 * 6);  // 4 x 6 weights times 2 x 3 rows
    CHECK(s.rows[5].output_shapes == std::vector<xg::Shape>{{2, 3, 4}});
    CHECK(s.total_params == 72);
    CHECK(s.mult_adds == 3 * 144);
    CHECK(s.input_bytes == 24 * 4);
    CHECK(s.param_bytes == 72 * 4);
    // Leaves: four [2, 3, 6] outputs and one [2, 3, 4], in float32.
    CHECK(s.activation_bytes == (4 * 36 + 24) * 4);
}

TEST_CASE("summary counts MultiheadAttention's projections and both attention products") {
    xg::manual_seed(2);
    auto attention = std::make_shared<nn::MultiheadAttention>(8, 2);
    // Cross attention, sequence first: L = 3 queries, S = 5 keys, N = 2, E = 8.
    const xg::Tensor q = xg::randn({3, 2, 8}), kv = xg::randn({5, 2, 8});
    const ModelSummary s = summary(*attention, q, kv, kv);
    REQUIRE(s.rows.size() == 2);
    CHECK(s.rows[0].type == "MultiheadAttention");
    // (L N + 2 S N) E^2 + 2 N L S E = (6 + 20) 64 + 2 * 6 * 5 * 8.
    CHECK(s.rows[0].mult_adds == 26 * 64 + 480);
    // The averaged weights [N, L, S] are an output too.
    CHECK(s.rows[0].output_shapes == std::vector<xg::Shape>{{3, 2, 8}, {2, 3, 5}});
    CHECK(s.rows[0].params == 3 * 64 + 3 * 8);
    CHECK(s.rows[1].name == "out_proj");
    CHECK(s.rows[1].type == "NonDynamicallyQuantizableLinear");
    CHECK(s.rows[1].mult_adds == 6 * 64);
    CHECK(s.rows[1].params == 64 + 8);
    CHECK(s.mult_adds == 26 * 64 + 480 + 6 * 64);
}

TEST_CASE("summary's table: torchinfo's layout, tree, columns and totals") {
    xg::manual_seed(3);
    auto model = stack_model();
    const ModelSummary s = summary(*model, xg::randn({2, 4}));
    std::ostringstream printed;
    printed << s;
    CHECK(printed.str() == s.to_string());
    const auto lines = squeezed_lines(s.to_string());
    INFO(s.to_string());
    REQUIRE(lines.size() >= 5);
    CHECK(lines[0].find_first_not_of('=') == std::string::npos);
    CHECK(lines[1] == "Layer (type (var_name):depth-idx) Output Shape Param # Trainable Mult-Adds");
    CHECK(lines[3] == "Sequential [2, 3] -- -- --");
    CHECK(lines[4] == "├─Linear (0): 1-1 [2, 8] 40 Partial 64");
    CHECK(has_line(lines, "├─Tanh (1): 1-2 [2, 8] -- -- --"));
    CHECK(has_line(lines, "├─Linear (2): 1-3 [2, 8] 72 True 128"));
    CHECK(has_line(lines, "├─Linear (2): 1-4 [2, 8] (recursive) -- 128"));
    CHECK(has_line(lines, "├─FeedForward (4): 1-5 [2, 8] -- -- --"));
    CHECK(has_line(lines, "│ └─Linear (layer1): 2-1 [2, 16] 144 True 256"));
    CHECK(has_line(lines, "│ └─MonteCarloDropout (dropout): 2-3 [2, 16] -- -- --"));
    CHECK(has_line(lines, "├─Linear (5): 1-6 [2, 3] 27 True 48"));
    CHECK(has_line(lines, "Total params: 419"));
    CHECK(has_line(lines, "Trainable params: 411"));
    CHECK(has_line(lines, "Non-trainable params: 8"));
    CHECK(has_line(lines, "Total mult-adds (M): 0.00"));
    CHECK(has_line(lines, "Params size (MB): 0.00"));
}

TEST_CASE("summary's totals print with thousands separators and torchinfo's units") {
    xg::manual_seed(4);
    nn::Linear big(1000, 1000);
    const ModelSummary s = summary(big, xg::zeros({1000, 1000}));
    CHECK(s.mult_adds == 1000000000);
    const auto lines = squeezed_lines(s.to_string());
    INFO(s.to_string());
    CHECK(has_line(lines, "Linear [1000, 1000] 1,001,000 True 1,000,000,000"));
    CHECK(has_line(lines, "Total params: 1,001,000"));
    CHECK(has_line(lines, "Total mult-adds (G): 1.00"));
    CHECK(has_line(lines, "Input size (MB): 4.00"));
    CHECK(has_line(lines, "Forward/backward pass size (MB): 8.00"));  // output and its gradient
    CHECK(has_line(lines, "Params size (MB): 4.00"));
    CHECK(has_line(lines, "Estimated Total Size (MB): 16.00"));
}

TEST_CASE("summary runs in eval mode without a graph, then restores every mode") {
    xg::manual_seed(5);
    auto model = stack_model();
    model->train();
    auto ffn = std::dynamic_pointer_cast<nn::FeedForward>(model->get_submodule("4"));
    ffn->dropout->eval();  // one child in another mode than its parent
    const std::vector<bool> before = training_modes(*model);

    bool ran = false, requires_grad = true, grad_mode = true, training = true;
    xg::RemovableHandle watch = ffn->layer1->register_forward_hook(
        [&](nn::Module& m, const xg::Tensor&, const xg::Tensor& output) {
            ran = true;
            requires_grad = output.requires_grad();
            grad_mode = xg::GradMode::is_enabled();
            training = m.is_training();
        });
    summary(*model, xg::randn({2, 4}));
    watch.remove();
    CHECK(ran);
    CHECK_FALSE(requires_grad);
    CHECK_FALSE(grad_mode);
    CHECK_FALSE(training);
    CHECK(xg::GradMode::is_enabled());
    CHECK(training_modes(*model) == before);
    CHECK_FALSE(ffn->dropout->is_training());
    CHECK_FALSE(any_hooks(*model));
    for (const auto& p : model->parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("summary removes its hooks and restores modes when forward throws") {
    auto model = sequential({std::make_shared<nn::Linear>(3, 3), std::make_shared<Throwing>()});
    model->train();
    CHECK_THROWS_WITH_AS(summary(*model, xg::randn({2, 3})), "Throwing: forward failed", xg::Error);
    CHECK_FALSE(any_hooks(*model));
    CHECK(model->is_training());
    CHECK(model->get_submodule("0")->is_training());
    CHECK(xg::GradMode::is_enabled());
    // The same module summarised afterwards gives rows for this call only.
    auto healthy = sequential({model->get_submodule("0")});
    CHECK(summary(*healthy, xg::randn({2, 3})).rows.size() == 2);
    CHECK_FALSE(any_hooks(*healthy));
}

TEST_CASE("summary takes the forward as a lambda, with the same rows") {
    xg::manual_seed(6);
    auto model = nn::FeedForward::swiglu(4, 6);
    const xg::Tensor x = xg::randn({2, 3, 4});
    const ModelSummary direct = summary(*model, x);
    const ModelSummary through = summary(*model, [&] { (*model)(x); });
    REQUIRE(through.rows.size() == direct.rows.size());
    for (std::size_t i = 0; i < direct.rows.size(); ++i) {
        CHECK(through.rows[i].name == direct.rows[i].name);
        CHECK(through.rows[i].mult_adds == direct.rows[i].mult_adds);
    }
    CHECK(through.total_params == direct.total_params);
    CHECK_FALSE(any_hooks(*model));
}

}  // namespace inspect_test_summary
