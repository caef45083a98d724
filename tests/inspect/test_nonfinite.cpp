// xg::inspect::trace_nonfinite: the module named in forward and in backward,
// the frames listed (how many, in which order, with which values), every
// floating dtype, a finite model left alone, and remove().
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/inspect/nonfinite.hpp>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace inspect_test_nonfinite {

namespace nn = xg::nn;
using xg::Tensor;
using xg::inspect::trace_nonfinite;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::shared_ptr<nn::Sequential> sequential(std::initializer_list<std::shared_ptr<nn::Module>> m) {
    return std::make_shared<nn::Sequential>(m);
}

// Linear "0", Tanh "1", Linear "2", Tanh "3".
std::shared_ptr<nn::Sequential> mlp() {
    return sequential({std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::Tanh>(),
                       std::make_shared<nn::Linear>(4, 2), std::make_shared<nn::Tanh>()});
}

// A forward hook that turns `module`'s output into NaN. Registered before the
// tracer, it runs before the tracer's hook, which then sees the NaN.
xg::RemovableHandle poison_output(nn::Module& module) {
    return module.register_forward_hook(
        [](nn::Module&, const Tensor&, const Tensor& output) { return output * kNaN; });
}

// The xg::Error fn throws ("" if none), as lines.
std::vector<std::string> error_lines(const std::function<void()>& fn) {
    std::string message;
    try {
        fn();
    } catch (const xg::Error& e) {
        message = e.what();
    }
    std::vector<std::string> lines;
    std::istringstream in(message);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// The frames' title lines ("2 Linear (forward)"), in order.
std::vector<std::string> frame_titles(const std::vector<std::string>& lines) {
    std::vector<std::string> titles;
    const std::string indent(18, ' ');
    for (const std::string& line : lines) {
        if (line.starts_with(indent)) titles.push_back(line.substr(indent.size()));
    }
    return titles;
}

bool any_hooks(const nn::Module& model) {
    for (const auto& module : model.modules()) {
        if (module->has_hooks()) return true;
    }
    return false;
}

bool has_line_ending(const std::vector<std::string>& lines, const std::string& end) {
    for (const std::string& line : lines) {
        if (line.ends_with(end)) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("trace_nonfinite prints the frame of the module whose output is NaN") {
    auto lin = std::make_shared<nn::Linear>(2, 1, false);
    {
        xg::NoGradGuard no_grad;
        lin->weight.copy_(test::f32({{-2.0f, 0.5f}}));
    }
    auto model = sequential({lin});
    auto poison = poison_output(*lin);
    auto trace = trace_nonfinite(*model);
    CHECK_THROWS_WITH_AS((*model)(test::f32({{1.0f, 4.0f}})),
                         "trace_nonfinite: Inf/NaN in the forward output of '0' (Linear)\n"
                         "last 1 frame, oldest first:\n"
                         " abs min  abs max metadata\n"
                         "                  0 Linear (forward)\n"
                         "5.00e-01 2.00e+00 weight\n"
                         "1.00e+00 4.00e+00 input[0]\n"
                         "     nan      nan output",
                         xg::Error);
    trace.remove();
}

TEST_CASE("trace_nonfinite names the first module with a NaN output and lists the frames") {
    xg::manual_seed(1);
    auto model = mlp();
    auto poison = poison_output(*model->get_submodule("2"));
    const Tensor x = xg::randn({5, 3});
    SUBCASE("every frame so far, oldest first") {
        auto trace = trace_nonfinite(*model);
        const auto lines = error_lines([&] { (*model)(x); });
        REQUIRE(lines.size() > 7);
        CHECK(lines[0] == "trace_nonfinite: Inf/NaN in the forward output of '2' (Linear)");
        CHECK(lines[1] == "last 3 frames, oldest first:");
        CHECK(lines[2] == " abs min  abs max metadata");
        CHECK(frame_titles(lines) == std::vector<std::string>{"0 Linear (forward)",
                                                              "1 Tanh (forward)",
                                                              "2 Linear (forward)"});
        // Linear 0's frame: its weights, its input and its output.
        CHECK(lines[4].ends_with(" weight"));
        CHECK(lines[5].ends_with(" bias"));
        CHECK(lines[6].ends_with(" input[0]"));
        CHECK(lines[7].ends_with(" output"));
        CHECK(lines.back() == "     nan      nan output");
        trace.remove();
    }
    SUBCASE("no more than `frames`") {
        auto trace = trace_nonfinite(*model, 2);
        const auto lines = error_lines([&] { (*model)(x); });
        REQUIRE(lines.size() > 1);
        CHECK(lines[1] == "last 2 frames, oldest first:");
        CHECK(frame_titles(lines) ==
              std::vector<std::string>{"1 Tanh (forward)", "2 Linear (forward)"});
        trace.remove();
    }
    CHECK_THROWS_WITH_AS(trace_nonfinite(*model, 0),
                         "trace_nonfinite: expected frames >= 1 (got 0)", xg::Error);
}

TEST_CASE("trace_nonfinite names the nested Linear whose weight is infinite") {
    xg::manual_seed(2);
    auto ffn = std::make_shared<nn::FeedForward>(4, 8, 0.0);
    auto model = sequential({ffn});
    ffn->layer2->weight.data<float>()(0, 0) = std::numeric_limits<float>::infinity();
    auto trace = trace_nonfinite(*model);
    const auto lines = error_lines([&] { (*model)(xg::randn({3, 4})); });
    REQUIRE(!lines.empty());
    CHECK(lines[0] == "trace_nonfinite: Inf/NaN in the forward output of '0.layer2' (Linear)");
    CHECK(frame_titles(lines) == std::vector<std::string>{"0.layer1 Linear (forward)",
                                                          "0.activation ReLU (forward)",
                                                          "0.dropout MonteCarloDropout (forward)",
                                                          "0.layer2 Linear (forward)"});
    CHECK(has_line_ending(lines, "      inf weight"));
    trace.remove();
}

TEST_CASE("trace_nonfinite checks float64, float16 and bfloat16 values") {
    xg::manual_seed(3);
    for (xg::Dtype dtype : {xg::kFloat64, xg::kFloat16, xg::kBFloat16}) {
        CAPTURE(xg::dtype_name(dtype));
        auto model = mlp();
        model->to(dtype);
        const Tensor x = xg::randn({2, 3}).to(dtype);
        {
            auto trace = trace_nonfinite(*model);
            CHECK_NOTHROW((*model)(x));
            trace.remove();
        }
        {
            auto poison = poison_output(*model->get_submodule("0"));
            auto trace = trace_nonfinite(*model);
            const auto lines = error_lines([&] { (*model)(x); });
            REQUIRE(!lines.empty());
            CHECK(lines[0] == "trace_nonfinite: Inf/NaN in the forward output of '0' (Linear)");
            trace.remove();
            poison.remove();
        }
        // An infinite value, not a NaN: the largest exponent, a zero mantissa.
        auto overflow = model->get_submodule("2")->register_forward_hook(
            [](nn::Module&, const Tensor&, const Tensor& output) {
                return output * std::numeric_limits<double>::infinity();
            });
        auto trace = trace_nonfinite(*model);
        const auto lines = error_lines([&] { (*model)(x); });
        REQUIRE(!lines.empty());
        CHECK(lines[0] == "trace_nonfinite: Inf/NaN in the forward output of '2' (Linear)");
        trace.remove();
        overflow.remove();
    }
}

TEST_CASE("trace_nonfinite names the module whose backward produced a NaN gradient") {
    xg::manual_seed(4);
    auto model = sequential({std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::Tanh>(),
                             std::make_shared<nn::Linear>(4, 2)});
    auto poison = model->get_submodule("2")->register_full_backward_hook(
        [](nn::Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>&) {
            return std::vector<Tensor>{grad_input[0] * kNaN};
        });
    auto trace = trace_nonfinite(*model);
    const auto lines = error_lines([&] { xg::sum((*model)(xg::randn({5, 3}))).backward(); });
    REQUIRE(!lines.empty());
    CHECK(lines[0] == "trace_nonfinite: Inf/NaN in the backward grad_input[0] of '2' (Linear)");
    // The forward calls, the model's last; then backward: the gradient enters
    // the model (its grad_output, checked first), then the failing layer.
    CHECK(frame_titles(lines) ==
          std::vector<std::string>{"0 Linear (forward)", "1 Tanh (forward)", "2 Linear (forward)",
                                   "Sequential (forward)", "Sequential (backward)",
                                   "2 Linear (backward)"});
    CHECK(has_line_ending(lines, " grad_output[0]"));
    CHECK(lines.back() == "     nan      nan grad_input[0]");
    trace.remove();
    poison.remove();
    CHECK_FALSE(any_hooks(*model));
}

TEST_CASE("trace_nonfinite names the model when the gradient reaching it is NaN") {
    xg::manual_seed(5);
    auto model = mlp();
    auto trace = trace_nonfinite(*model, 3);
    const auto lines = error_lines([&] {
        Tensor y = (*model)(xg::randn({5, 3}));
        y.register_hook([](const Tensor& grad) { return grad * kNaN; });
        xg::sum(y).backward();
    });
    REQUIRE(!lines.empty());
    CHECK(lines[0] ==
          "trace_nonfinite: Inf/NaN in the backward grad_output[0] of the model (Sequential)");
    CHECK(frame_titles(lines) == std::vector<std::string>{"3 Tanh (forward)",
                                                          "Sequential (forward)",
                                                          "Sequential (backward)"});
    trace.remove();
}

TEST_CASE("trace_nonfinite leaves a finite model's results alone") {
    xg::manual_seed(6);
    auto model = sequential({std::make_shared<nn::FeedForward>(4, 8, 0.0),
                             std::make_shared<nn::LayerNorm>(xg::Shape{4}),
                             nn::FeedForward::swiglu(4, 8, 0.0)});
    model->double_();
    const Tensor x = xg::randn({3, 4}, xg::kFloat64);
    auto gradients = [&] {
        model->zero_grad();
        xg::sum((*model)(x) * (*model)(x)).backward();
        std::vector<Tensor> grads;
        for (const Tensor& p : model->parameters()) grads.push_back(p.grad().clone());
        return grads;
    };
    const std::vector<Tensor> plain = gradients();
    auto trace = trace_nonfinite(*model);
    std::vector<Tensor> traced;
    CHECK_NOTHROW(traced = gradients());
    REQUIRE(traced.size() == plain.size());
    for (std::size_t i = 0; i < plain.size(); ++i)
        CHECK(test::close(test::values(traced[i]), test::values(plain[i]), 1e-12, 1e-14));
    trace.remove();
    CHECK_FALSE(any_hooks(*model));
}

TEST_CASE("trace_nonfinite passes calls with several inputs and tuple outputs") {
    xg::manual_seed(7);
    auto layer = std::make_shared<nn::TransformerEncoderLayer>(8, 2, 16, 0.0, "relu", 1e-5, true);
    const Tensor x = xg::randn({2, 5, 8});
    {
        auto trace = trace_nonfinite(*layer);
        CHECK_NOTHROW(xg::sum((*layer)(x)).backward());
        trace.remove();
    }
    auto poison = poison_output(*layer->linear1);
    auto trace = trace_nonfinite(*layer);
    const auto lines = error_lines([&] { (*layer)(x); });
    REQUIRE(!lines.empty());
    CHECK(lines[0] == "trace_nonfinite: Inf/NaN in the forward output of 'linear1' (Linear)");
    // Among the frames, MultiheadAttention's: query, key and value, then its
    // output (the weights are None with need_weights = false).
    CHECK(has_line_ending(lines, " input[2]"));
    CHECK(std::find(lines.begin(), lines.end(),
                    std::string(18, ' ') + "self_attn MultiheadAttention (forward)") !=
          lines.end());
    trace.remove();
    poison.remove();
}

TEST_CASE("remove() takes every hook away, also from a graph already built") {
    xg::manual_seed(8);
    auto model = mlp();
    auto trace = trace_nonfinite(*model);
    CHECK(any_hooks(*model));
    Tensor y = (*model)(xg::randn({5, 3}));  // its graph holds the tracer's backward hooks
    trace.remove();
    CHECK_FALSE(any_hooks(*model));
    y.register_hook([](const Tensor& grad) { return grad * kNaN; });
    CHECK_NOTHROW(xg::sum(y).backward());
    auto poison = poison_output(*model->get_submodule("0"));
    CHECK_NOTHROW((*model)(xg::randn({5, 3})));
    poison.remove();
    trace.remove();  // a second remove() does nothing
}

TEST_CASE("the model still works after trace_nonfinite has thrown") {
    xg::manual_seed(9);
    auto model = mlp();
    auto trace = trace_nonfinite(*model);
    const Tensor x = xg::randn({5, 3});
    {
        auto poison = poison_output(*model->get_submodule("2"));  // caught at Tanh 3
        CHECK_THROWS_AS((*model)(x), xg::Error);
        poison.remove();
    }
    CHECK_NOTHROW(xg::sum((*model)(x)).backward());
    {
        // After the tracer's pre hook: Linear 2's backward turns it into a NaN grad_input.
        auto poison = model->get_submodule("2")->register_full_backward_pre_hook(
            [](nn::Module&, const std::vector<Tensor>& grad_output) {
                return std::vector<Tensor>{grad_output[0] * kNaN};
            });
        CHECK_THROWS_AS(xg::sum((*model)(x)).backward(), xg::Error);
        poison.remove();
    }
    model->zero_grad();
    CHECK_NOTHROW(xg::sum((*model)(x)).backward());
    for (const Tensor& p : model->parameters()) CHECK(p.grad().defined());
    trace.remove();
    CHECK_FALSE(any_hooks(*model));
}

}  // namespace inspect_test_nonfinite
