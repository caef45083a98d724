// Tests for the LayerNorm module (nn/src/layer_norm.cpp): values and gradients vs
// PyTorch, gradcheck, shape checks, printing. The layer_norm op it runs is tested in
// tests/core/ops/test_normalization.cpp.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_layer_norm {

using reference::lookup;
namespace ref = reference::layers;

TEST_CASE("LayerNorm has weight ones and bias zeros of the normalized shape") {
    xg::nn::LayerNorm ln({2, 3});
    CHECK(test::parameter_names(ln) == std::vector<std::string>{"weight", "bias"});
    CHECK_VALUES(ln.weight, xt::ones<double>({2, 3}));
    CHECK_VALUES(ln.bias, xt::zeros<double>({2, 3}));
    CHECK(ln.eps == 1e-5);
    xg::nn::LayerNorm plain({4}, 1e-6, false);
    CHECK(plain.parameters().empty());
    CHECK(plain.state_dict().empty());
}

TEST_CASE("LayerNorm over the last dim matches PyTorch: output and gradients") {
    const auto& r = ref::layer_norm_affine;
    xg::nn::LayerNorm ln({4});
    ln.to(xg::kFloat64);
    ln.load_state_dict(
        {{"weight", lookup(r, "weight").tensor()}, {"bias", lookup(r, "bias").tensor()}});
    xg::Tensor x = lookup(r, "input").tensor(xg::kFloat64, true);
    xg::Tensor y = ln(x);
    CHECK_VALUES(y, lookup(r, "output").array());
    xg::sum(y * lookup(r, "upstream").tensor()).backward();
    CHECK_VALUES(x.grad(), lookup(r, "grad_input").array());
    CHECK_VALUES(ln.weight.grad(), lookup(r, "grad_weight").array());
    CHECK_VALUES(ln.bias.grad(), lookup(r, "grad_bias").array());

    ln.to(xg::kFloat32);
    CHECK_VALUES_TOL(ln(lookup(r, "input").tensor(xg::kFloat32)), lookup(r, "output").array(), 1e-5,
                     1e-5);
}

TEST_CASE("LayerNorm over the last two dims without affine matches PyTorch") {
    const auto& r = ref::layer_norm_plain;
    xg::nn::LayerNorm ln({3, 4}, 1e-6, false);
    xg::Tensor x = lookup(r, "input").tensor(xg::kFloat64, true);
    xg::Tensor y = ln(x);
    CHECK_VALUES(y, lookup(r, "output").array());
    xg::sum(y * lookup(r, "upstream").tensor()).backward();
    CHECK_VALUES(x.grad(), lookup(r, "grad_input").array());
}

TEST_CASE("LayerNorm gradchecks in float64 with respect to input, weight and bias") {
    auto ln = std::make_shared<xg::nn::LayerNorm>(xg::Shape{5});
    ln->to(xg::kFloat64);
    // Point the members at gradcheck's inputs, so weight and bias are checked too.
    CHECK(test::gradcheck(
        [&](const std::vector<xg::Tensor>& in) {
            ln->weight = in[1];
            ln->bias = in[2];
            return (*ln)(in[0]);
        },
        {test::randn64({2, 3, 5}, 1), test::randn64({5}, 2), test::randn64({5}, 3)}));
    auto plain = std::make_shared<xg::nn::LayerNorm>(xg::Shape{2, 3}, 1e-5, false);
    CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return (*plain)(in[0]); },
                          {test::randn64({4, 2, 3}, 4)}));
}

TEST_CASE("LayerNorm rejects inputs whose trailing dims differ from normalized_shape") {
    xg::nn::LayerNorm ln({3, 4});
    CHECK_THROWS_WITH_AS(ln(xg::ones({2, 4, 3})),
                         "LayerNorm: expected input with shape [*, 3, 4] (got [2, 4, 3])",
                         xg::Error);
    CHECK_THROWS_AS(ln(xg::ones({4})), xg::Error);
    CHECK_THROWS_AS(xg::nn::LayerNorm(xg::Shape{}), xg::Error);
}

TEST_CASE("LayerNorm prints as PyTorch and clones") {
    CHECK(xg::nn::LayerNorm({8}).repr() == lookup(ref::reprs, "layer_norm"));
    CHECK(xg::nn::LayerNorm({2, 3}, 1e-6, false).repr() == lookup(ref::reprs, "layer_norm_2d"));
    auto ln = std::make_shared<xg::nn::LayerNorm>(xg::Shape{3});
    ln->weight.data<float>()(1) = 2.5f;
    auto copy = std::dynamic_pointer_cast<xg::nn::LayerNorm>(ln->clone());
    REQUIRE(copy);
    CHECK_VALUES(copy->weight, test::values(ln->weight));
    CHECK(copy->weight.impl() != ln->weight.impl());
}

}  // namespace nn_test_layer_norm
