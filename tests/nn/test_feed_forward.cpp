// FeedForward: every variant and bias combination vs PyTorch (values and gradients,
// float64 and float32, 2-D and 3-D inputs), structure, gradcheck, MC dropout, printing.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

#include "helpers.hpp"
#include "nn/reference/feed_forward_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_feed_forward {

using reference::lookup;
namespace ref = reference::feed_forward;
namespace nn = xg::nn;

namespace {

std::shared_ptr<nn::FeedForward> build(const ref::Case& c, std::size_t d_model = ref::d_model,
                                       std::size_t d_ff = ref::d_ff, double dropout = 0.1) {
    const std::string& v = c.variant;
    if (v == "glu") return nn::FeedForward::glu(d_model, d_ff, dropout);
    if (v == "bilinear") return nn::FeedForward::bilinear(d_model, d_ff, dropout);
    if (v == "reglu") return nn::FeedForward::reglu(d_model, d_ff, dropout);
    if (v == "geglu") return nn::FeedForward::geglu(d_model, d_ff, dropout);
    if (v == "swiglu") return nn::FeedForward::swiglu(d_model, d_ff, dropout);
    std::shared_ptr<nn::Module> act;
    if (v == "relu")
        act = std::make_shared<nn::ReLU>();
    else if (v == "gelu")
        act = std::make_shared<nn::GELU>();
    else if (v == "tanh")  // no PyTorch case: the fused-vs-separate tests only
        act = std::make_shared<nn::Tanh>();
    else
        act = std::make_shared<nn::GELU>("tanh");
    return std::make_shared<nn::FeedForward>(d_model, d_ff, dropout, act, c.is_gated, c.bias1,
                                             c.bias2, c.bias_gate);
}

std::string describe(const ref::Case& c) {
    return fmt::format("{} gated={} bias1={} bias2={} bias_gate={} {} rank {}", c.variant,
                       c.is_gated, c.bias1, c.bias2, c.bias_gate, c.float32 ? "float32" : "float64",
                       c.rank);
}

}  // namespace

TEST_CASE("FeedForward matches PyTorch for every variant and bias combination") {
    REQUIRE(ref::cases().size() == 100);
    for (const auto& c : ref::cases()) {
        INFO(describe(c));
        const xg::Dtype dtype = c.float32 ? xg::kFloat32 : xg::kFloat64;
        // float32: PyTorch and xgrad round the same float64 weights, then sum in different orders.
        const double rtol = c.float32 ? 2e-5 : 1e-10, atol = c.float32 ? 2e-6 : 1e-12;
        auto ffn = build(c);
        ffn->to(dtype);
        // The same keys, in the same order, as the Python module's state_dict.
        CHECK(ffn->state_dict().keys() == c.state_dict_keys);
        xg::StateDict sd;
        for (const auto& key : c.state_dict_keys)
            sd.insert_or_assign(key, lookup(ref::weights, key).tensor());
        ffn->load_state_dict(sd);
        ffn->eval();  // p = 0.1, but MonteCarloDropout is the identity in eval mode

        const std::size_t io = c.rank == 2 ? 0 : 1;
        xg::Tensor x = ref::inputs[io].tensor(dtype, true);
        xg::Tensor y = (*ffn)(x);
        CHECK(y.dtype() == dtype);
        CHECK_VALUES_TOL(y, c.output.array(), rtol, atol);
        xg::sum(y * ref::upstream[io].tensor(dtype)).backward();
        CHECK_VALUES_TOL(x.grad(), c.grad_input.array(), rtol, atol);
        auto params = ffn->named_parameters();
        REQUIRE(params.size() == c.grads.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            INFO(params[i].first);
            CHECK(params[i].first == c.grads[i].first);
            CHECK_VALUES_TOL(params[i].second.grad(), c.grads[i].second.array(), rtol, atol);
        }
    }
}

TEST_CASE("FeedForward registers layer1, layer2, dropout, activation, then linear_v when gated") {
    nn::FeedForward plain(8, 32);
    CHECK(test::child_names(plain) ==
          std::vector<std::string>{"layer1", "layer2", "dropout", "activation"});
    CHECK(plain.state_dict().keys() ==
          std::vector<std::string>{"layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"});
    CHECK(plain.linear_v == nullptr);
    CHECK(plain.dropout->p == doctest::Approx(0.1));
    CHECK(plain.activation->name() == "ReLU");
    CHECK(plain.layer1->weight.shape() == xg::Shape{32, 8});
    CHECK(plain.layer2->weight.shape() == xg::Shape{8, 32});

    nn::FeedForward gated(8, 32, 0.0, std::make_shared<nn::SiLU>(), true, true, false, true);
    CHECK(test::child_names(gated) ==
          std::vector<std::string>{"layer1", "layer2", "dropout", "activation", "linear_v"});
    CHECK(gated.state_dict().keys() == std::vector<std::string>{"layer1.weight", "layer1.bias",
                                                                "layer2.weight", "linear_v.weight",
                                                                "linear_v.bias"});
    // The public members are the registered children.
    CHECK(gated.get_submodule("linear_v") == gated.linear_v);
    CHECK(gated.get_submodule("dropout") == gated.dropout);
    CHECK(gated.get_submodule("activation") == gated.activation);
    CHECK(gated.get_parameter("layer1.weight").impl() == gated.layer1->weight.impl());
}

TEST_CASE("the named GLU variants are gated, bias-free, and differ only in their gate") {
    const std::vector<std::pair<std::shared_ptr<nn::FeedForward>, std::string>> variants = {
        {nn::FeedForward::glu(4, 6), "Sigmoid"},      {nn::FeedForward::bilinear(4, 6), "Identity"},
        {nn::FeedForward::reglu(4, 6), "ReLU"},       {nn::FeedForward::geglu(4, 6), "GELU"},
        {nn::FeedForward::swiglu(4, 6, 0.2), "SiLU"},
    };
    for (const auto& [ffn, gate] : variants) {
        // CAPTURE's lambda cannot name a binding in clang 14.
        const std::string& expected_gate = gate;
        CAPTURE(expected_gate);
        CHECK(ffn->is_gated);
        CHECK(ffn->activation->name() == gate);
        CHECK(ffn->parameters().size() == 3);
        CHECK(test::parameter_names(*ffn) ==
              std::vector<std::string>{"layer1.weight", "layer2.weight", "linear_v.weight"});
    }
    CHECK(variants[4].first->dropout->p == doctest::Approx(0.2));
    CHECK(variants[0].first->dropout->p == doctest::Approx(0.1));
}

TEST_CASE("FeedForward works on inputs of any rank over the last dimension") {
    auto ffn = nn::FeedForward::swiglu(4, 8, 0.0);
    for (const xg::Shape& shape :
         {xg::Shape{4}, xg::Shape{3, 4}, xg::Shape{2, 3, 4}, xg::Shape{2, 1, 3, 4}}) {
        CHECK((*ffn)(xg::randn(shape)).shape() == shape);
    }
    // Row-wise: a row of a batch equals that row run alone as a 1-D input.
    xg::Tensor x = xg::randn({3, 4});
    xg::Tensor batch = (*ffn)(x);
    xt::xarray<float> row = xt::row(x.data<float>(), 1);
    CHECK_VALUES_TOL((*ffn)(xg::tensor<float>(row)),
                     xt::xarray<double>(xt::row(test::values(batch), 1)), 1e-5, 1e-6);
    CHECK_THROWS_AS((*ffn)(xg::ones({2, 5})), xg::Error);
}

TEST_CASE("every FeedForward variant gradchecks in float64") {
    const std::vector<std::string> variants = {"relu",     "gelu",  "gelu_tanh", "tanh",  "glu",
                                               "bilinear", "reglu", "geglu",     "swiglu"};
    for (const auto& variant : variants) {
        for (bool gated : {false, true}) {
            const bool named = variant != "relu" && variant != "gelu" && variant != "gelu_tanh" &&
                               variant != "tanh";
            if (named && !gated) continue;  // the named variants are always gated
            ref::Case c{variant, gated, true, true, true, false, 2, {}, {}, {}, {}};
            CAPTURE(variant);
            CAPTURE(gated);
            xg::manual_seed(21);
            auto ffn = build(c, 3, 5, 0.0);
            ffn->to(xg::kFloat64);
            CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return (*ffn)(in[0]); },
                                  {test::randn64({2, 2, 3}, 5)}));
        }
    }
}

TEST_CASE("FeedForward calls its submodules through operator(), so their hooks fire") {
    auto ffn = nn::FeedForward::geglu(4, 8, 0.0);
    std::vector<std::string> order;
    std::vector<xg::RemovableHandle> handles;
    for (const auto& [name, child] : ffn->named_children()) {
        handles.push_back(child->register_forward_hook(
            [&order, name = name](nn::Module&, const xg::Tensor&, const xg::Tensor&) {
                order.push_back(name);
            }));
    }
    (*ffn)(xg::randn({2, 4}));
    CHECK(order ==
          std::vector<std::string>{"layer1", "activation", "linear_v", "dropout", "layer2"});
}

namespace {

// Every node name in y's graph.
std::set<std::string> graph_names(const xg::Tensor& y) {
    std::set<std::string> names;
    std::vector<std::shared_ptr<xg::autograd::Node>> pending{y.grad_fn()};
    while (!pending.empty()) {
        auto node = pending.back();
        pending.pop_back();
        if (!node) continue;
        names.emplace(node->name);
        for (const auto& next : node->next) pending.push_back(next);
    }
    return names;
}

// Output and every parameter gradient of one training step from seed 5.
std::vector<xt::xarray<double>> step(nn::FeedForward& ffn, const xg::Tensor& x) {
    ffn.zero_grad();
    xg::manual_seed(5);
    xg::Tensor y = ffn(x);
    xg::sum(y * y).backward();
    std::vector<xt::xarray<double>> out{test::values(y)};
    for (const auto& p : ffn.parameters()) out.push_back(test::values(p.grad()));
    return out;
}

struct MyReLU : nn::ReLU {
    xg::Tensor forward(const xg::Tensor& x) override { return xg::relu(x) * 2.0; }
};

}  // namespace

TEST_CASE("FeedForward fuses activation, gate and dropout unless a hook could see them") {
    const std::vector<std::string> variants = {"relu",     "gelu",  "gelu_tanh", "tanh",  "glu",
                                               "bilinear", "reglu", "geglu",     "swiglu"};
    xg::Tensor x = xg::randn({6, 4});
    for (const auto& variant : variants) {
        for (bool gated : {false, true}) {
            const bool named = variant != "relu" && variant != "gelu" && variant != "gelu_tanh" &&
                               variant != "tanh";
            if (named && !gated) continue;
            CAPTURE(variant);
            CAPTURE(gated);
            ref::Case c{variant, gated, true, true, true, false, 2, {}, {}, {}, {}};
            xg::manual_seed(3);
            auto ffn = build(c, 4, 16, 0.25);
            CHECK(graph_names((*ffn)(x)).count("FfnActBackward") == 1);
            auto fused = step(*ffn, x);

            // A hook on either part, or a global one, needs the separate ops.
            auto check_separate = [&] {
                std::set<std::string> names = graph_names((*ffn)(x));
                CHECK(names.count("FfnActBackward") == 0);
                CHECK(names.count("DropoutBackward") == 1);
                auto separate = step(*ffn, x);
                REQUIRE(separate.size() == fused.size());
                for (std::size_t i = 0; i < fused.size(); ++i)  // same values to the last bit
                    CHECK(xt::all(xt::equal(fused[i], separate[i])));
            };
            int calls = 0;
            auto count = [&calls](nn::Module&, const xg::Tensor&, const xg::Tensor&) { ++calls; };
            {
                auto hook = ffn->dropout->register_forward_hook(count);
                check_separate();
                hook.remove();
            }
            {
                auto hook = ffn->activation->register_forward_hook(count);
                check_separate();
                hook.remove();
            }
            {
                auto hook = nn::register_module_forward_hook(count);
                check_separate();
                hook.remove();
            }
            CHECK(calls > 0);
            CHECK(graph_names((*ffn)(x)).count("FfnActBackward") == 1);  // hooks removed
        }
    }
}

TEST_CASE("FeedForward backward twice with retain_graph doubles every gradient") {
    // Backward may write gradients over saved buffers only when the graph is
    // freed after it; with retain_graph the second pass must see them intact.
    for (auto ffn :
         {nn::FeedForward::swiglu(4, 16, 0.3), std::make_shared<nn::FeedForward>(4, 16, 0.3)}) {
        xg::Tensor x = xg::randn({5, 4});
        xg::manual_seed(8);
        xg::Tensor loss = xg::sum((*ffn)(x) * (*ffn)(x));
        loss.backward(xg::Tensor(), true);
        std::vector<xt::xarray<double>> once;
        for (const auto& p : ffn->parameters()) once.push_back(test::values(p.grad()));
        loss.backward();
        std::size_t i = 0;
        for (const auto& p : ffn->parameters()) CHECK_VALUES(p.grad(), 2.0 * once[i++]);
    }
}

TEST_CASE("FeedForward calls a custom activation class, and runs separately in anomaly mode") {
    auto ffn = std::make_shared<nn::FeedForward>(4, 8, 0.0, std::make_shared<MyReLU>());
    xg::Tensor x = xg::randn({2, 4});
    xg::Tensor h = (*ffn->layer1)(x);
    CHECK_VALUES_TOL((*ffn)(x), test::values((*ffn->layer2)(xg::relu(h) * 2.0)), 1e-6, 1e-6);
    auto plain = std::make_shared<nn::FeedForward>(4, 8, 0.1);
    xg::autograd::DetectAnomalyGuard anomaly;
    CHECK(graph_names((*plain)(x)).count("ReluBackward") == 1);
}

TEST_CASE("FeedForward dropout: identity in eval, sampling in training and under MC dropout") {
    xg::manual_seed(2);
    auto ffn = std::make_shared<nn::FeedForward>(4, 64, 0.5);
    xg::Tensor x = xg::randn({3, 4});
    ffn->eval();
    xg::Tensor a = (*ffn)(x), b = (*ffn)(x);
    CHECK_VALUES(a, test::values(b));
    ffn->dropout->enable_mc_dropout(true);
    xg::Tensor c = (*ffn)(x), d = (*ffn)(x);
    CHECK_FALSE(test::close(test::values(c), test::values(d)));
    // Reproducible: the same seed gives the same Monte Carlo samples.
    xg::manual_seed(9);
    xg::Tensor e = (*ffn)(x);
    xg::manual_seed(9);
    CHECK_VALUES((*ffn)(x), test::values(e));
    ffn->dropout->enable_mc_dropout(false);
    CHECK_VALUES((*ffn)(x), test::values(a));
    ffn->train();
    CHECK_FALSE(test::close(test::values((*ffn)(x)), test::values(a)));
}

TEST_CASE("FeedForward prints as the Python FeedForward") {
    CHECK(nn::FeedForward(4, 6).repr() == lookup(ref::reprs, "default"));
    CHECK(nn::FeedForward(4, 6, 0.0, std::make_shared<nn::GELU>("tanh"), true, true, true, false)
              .repr() == lookup(ref::reprs, "gelu_gated_no_gate_bias"));
    CHECK(nn::FeedForward::glu(4, 6, 0.25)->repr() == lookup(ref::reprs, "glu"));
    CHECK(nn::FeedForward::bilinear(4, 6, 0.25)->repr() == lookup(ref::reprs, "bilinear"));
    CHECK(nn::FeedForward::reglu(4, 6, 0.25)->repr() == lookup(ref::reprs, "reglu"));
    CHECK(nn::FeedForward::geglu(4, 6, 0.25)->repr() == lookup(ref::reprs, "geglu"));
    CHECK(nn::FeedForward::swiglu(4, 6, 0.25)->repr() == lookup(ref::reprs, "swiglu"));
}

TEST_CASE("FeedForward clone: same configuration and values, independent tensors, MC flag kept") {
    auto ffn = std::make_shared<nn::FeedForward>(4, 8, 0.3, std::make_shared<nn::GELU>("tanh"),
                                                 true, false, true, false);
    ffn->dropout->enable_mc_dropout(true);
    auto copy = std::dynamic_pointer_cast<nn::FeedForward>(ffn->clone());
    REQUIRE(copy);
    CHECK(copy->repr() == ffn->repr());
    CHECK(copy->dropout->mc_dropout_enabled());
    CHECK(copy->activation != ffn->activation);
    CHECK(copy->get_submodule("activation") == copy->activation);
    CHECK(copy->get_parameter("linear_v.weight").impl() == copy->linear_v->weight.impl());
    CHECK(copy->linear_v->weight.impl() != ffn->linear_v->weight.impl());
    ffn->eval();
    copy->eval();
    ffn->dropout->enable_mc_dropout(false);
    copy->dropout->enable_mc_dropout(false);
    xg::Tensor x = xg::randn({2, 4});
    CHECK_VALUES((*copy)(x), test::values((*ffn)(x)));
}

namespace {
// A Linear that doubles its output: stands in for a user's layer (LoRA, quantised...).
struct DoublingLinear : nn::Linear {
    using nn::Linear::Linear;
    xg::Tensor forward(const xg::Tensor& x) override { return nn::Linear::forward(x) * 2.0; }
};
}  // namespace

TEST_CASE("FeedForward follows set_submodule: forward and the members use the new part") {
    xg::manual_seed(4);
    auto ffn = std::make_shared<nn::FeedForward>(4, 8, 0.1);
    ffn->eval();
    xg::Tensor x = xg::randn({3, 4});
    auto gelu = std::make_shared<nn::GELU>();
    ffn->set_submodule("activation", gelu);
    CHECK(ffn->activation == gelu);
    CHECK_VALUES_TOL((*ffn)(x), test::values((*ffn->layer2)(xg::gelu((*ffn->layer1)(x)))), 1e-6,
                     1e-6);

    auto doubling = std::make_shared<DoublingLinear>(4, 8);
    ffn->set_submodule("layer1", doubling);
    CHECK(ffn->layer1 == doubling);
    CHECK(ffn->get_parameter("layer1.weight").impl() == doubling->weight.impl());
    xg::Tensor h = (*ffn->layer1)(x);  // already doubled
    CHECK_VALUES_TOL((*ffn)(x), test::values((*ffn->layer2)(xg::gelu(h))), 1e-6, 1e-6);

    auto mc = std::make_shared<nn::MonteCarloDropout>(0.5);
    ffn->set_submodule("dropout", mc);
    CHECK(ffn->dropout == mc);
    mc->enable_mc_dropout(true);  // on the new module only: eval forward samples
    CHECK_FALSE(test::close(test::values((*ffn)(x)), test::values((*ffn)(x))));
    auto gated = nn::FeedForward::swiglu(4, 8, 0.0);
    auto v = std::make_shared<nn::Linear>(4, 8, true);
    gated->set_submodule("linear_v", v);
    CHECK(gated->linear_v == v);
    gated->eval();
    CHECK_VALUES_TOL((*gated)(x),
                     test::values((*gated->layer2)(xg::silu((*gated->layer1)(x)) * (*v)(x))), 1e-6,
                     1e-6);
}

TEST_CASE("FeedForward refuses a part of the wrong type and stays unchanged") {
    auto ffn = std::make_shared<nn::FeedForward>(4, 8, 0.1);
    std::string before = ffn->repr();
    auto layer1 = ffn->layer1;
    CHECK_THROWS_WITH_AS(ffn->set_submodule("layer1", std::make_shared<nn::Tanh>()),
                         "FeedForward: expected a Linear (or subclass) for 'layer1' (got Tanh)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(ffn->set_submodule("layer2", nullptr),
                         "FeedForward: expected a Linear (or subclass) for 'layer2' (got None)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        ffn->set_submodule("dropout", std::make_shared<nn::Dropout>(0.2)),
        "FeedForward: expected a MonteCarloDropout (or subclass) for 'dropout' (got Dropout)",
        xg::Error);
    CHECK_THROWS_WITH_AS(ffn->set_submodule("activation", nullptr),
                         "FeedForward: expected a module for 'activation' (got None)", xg::Error);
    CHECK(ffn->repr() == before);
    CHECK(ffn->layer1 == layer1);
    CHECK(ffn->get_submodule("layer1") == layer1);
    ffn->set_submodule("extra", std::make_shared<nn::Tanh>());  // other names are not members
    CHECK(test::child_names(*ffn).back() == "extra");
}

TEST_CASE("FeedForward clone keeps a replaced part, and the clone's members are its children") {
    auto ffn = std::make_shared<nn::FeedForward>(4, 8, 0.0);
    ffn->set_submodule("layer1", std::make_shared<nn::Linear>(4, 8, false));
    ffn->set_submodule("activation", std::make_shared<nn::SiLU>());
    auto copy = std::dynamic_pointer_cast<nn::FeedForward>(ffn->clone());
    REQUIRE(copy);
    CHECK(copy->repr() == ffn->repr());
    CHECK_FALSE(copy->layer1->bias.defined());
    CHECK(copy->layer1 == copy->get_submodule("layer1"));
    CHECK(copy->activation == copy->get_submodule("activation"));
    CHECK(copy->activation->name() == "SiLU");
    ffn->eval();
    copy->eval();
    xg::Tensor x = xg::randn({2, 4});
    CHECK_VALUES((*copy)(x), test::values((*ffn)(x)));
}

}  // namespace nn_test_feed_forward
