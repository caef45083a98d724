// Linear: PyTorch's init, forward on any rank vs PyTorch, gradients, printing, clone.
#include <cmath>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_linear {

using reference::lookup;
namespace ref = reference::layers;

namespace {
std::shared_ptr<xg::nn::Linear> reference_linear() {
    auto lin = std::make_shared<xg::nn::Linear>(4, 3);
    lin->to(xg::kFloat64);
    lin->load_state_dict({{"weight", lookup(ref::linear, "weight").tensor()},
                          {"bias", lookup(ref::linear, "bias").tensor()}});
    return lin;
}
}  // namespace

TEST_CASE("Linear registers weight [out, in] and bias [out], initialised uniform in ±1/sqrt(in)") {
    xg::manual_seed(0);
    xg::nn::Linear lin(16, 32);
    CHECK(lin.weight.shape() == xg::Shape{32, 16});
    CHECK(lin.bias.shape() == xg::Shape{32});
    CHECK(lin.weight.dtype() == xg::kFloat32);
    CHECK(lin.weight.requires_grad());
    CHECK(test::parameter_names(lin) == std::vector<std::string>{"weight", "bias"});
    // The members are the registered handles, not copies.
    CHECK(lin.named_parameters()[0].second.impl() == lin.weight.impl());
    CHECK(lin.named_parameters()[1].second.impl() == lin.bias.impl());
    const double bound = 1.0 / std::sqrt(16.0);
    for (const xg::Tensor& t : {lin.weight, lin.bias}) {
        auto v = test::values(t);
        CHECK(xt::amax(v)() <= bound);
        CHECK(xt::amin(v)() >= -bound);
    }
    // 512 draws of U(-1/4, 1/4) spread over the interval: mean near 0, std near bound/sqrt(3).
    auto w = test::values(lin.weight);
    CHECK(std::abs(xt::mean(w)()) < 0.03);
    CHECK(xt::stddev(w)() == doctest::Approx(bound / std::sqrt(3.0)).epsilon(0.1));
}

TEST_CASE("Linear without bias has no bias parameter and no bias key") {
    xg::nn::Linear lin(3, 2, false);
    CHECK_FALSE(lin.bias.defined());
    CHECK(lin.parameters().size() == 1);
    CHECK(lin.state_dict().keys() == std::vector<std::string>{"weight"});
    xg::Tensor y = lin(xg::ones({5, 3}));
    CHECK(y.shape() == xg::Shape{5, 2});
    CHECK_VALUES_TOL(y, test::values(xg::matmul(xg::ones({5, 3}), xg::transpose(lin.weight, 0, 1))),
                     1e-6, 1e-7);
}

TEST_CASE("Linear init is reproducible under manual_seed") {
    xg::manual_seed(42);
    xg::nn::Linear a(5, 7);
    xg::manual_seed(42);
    xg::nn::Linear b(5, 7);
    CHECK_VALUES(a.weight, test::values(b.weight));
    CHECK_VALUES(a.bias, test::values(b.bias));
    xg::nn::Linear c(5, 7);
    CHECK_FALSE(test::close(test::values(c.weight), test::values(a.weight)));
}

TEST_CASE("Linear matches PyTorch on 1-D and 3-D inputs") {
    auto lin = reference_linear();
    CHECK_VALUES((*lin)(lookup(ref::linear, "input1").tensor()),
                 lookup(ref::linear, "output1").array());
    CHECK_VALUES((*lin)(lookup(ref::linear, "input3").tensor()),
                 lookup(ref::linear, "output3").array());
    // float32: the same weights rounded, within float32 precision.
    lin->to(xg::kFloat32);
    CHECK_VALUES_TOL((*lin)(lookup(ref::linear, "input3").tensor(xg::kFloat32)),
                     lookup(ref::linear, "output3").array(), 1e-5, 1e-6);
}

TEST_CASE("Linear gradcheck in float64: input, weight and bias") {
    auto lin = reference_linear();
    xg::Tensor x = test::randn64({2, 3, 4}, 1);
    CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return (*lin)(in[0]); }, {x}));
    // Weight and bias as gradcheck inputs: the same computation through xg::linear.
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) { return xg::linear(in[0], in[1], in[2]); },
        {x, lin->weight.detach(), lin->bias.detach()}));
    CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return (*lin)(in[0]); },
                          {test::randn64({4}, 2)}));
}

TEST_CASE("Linear rejects an input whose last dimension is not in_features") {
    xg::nn::Linear lin(4, 3);
    CHECK_THROWS_WITH_AS(lin(xg::ones({2, 5})),
                         "linear: expected input [..., 4] for weight [3, 4] (got [2, 5])",
                         xg::Error);
}

TEST_CASE("Linear prints as PyTorch") {
    CHECK(xg::nn::Linear(4, 8).repr() == lookup(ref::reprs, "linear"));
    CHECK(xg::nn::Linear(4, 8, false).repr() == lookup(ref::reprs, "linear_no_bias"));
}

TEST_CASE("Linear clone is a deep copy with the same configuration and leaves the RNG alone") {
    xg::manual_seed(3);
    auto lin = std::make_shared<xg::nn::Linear>(3, 2, false);
    std::string state = xg::get_rng_state();
    auto copy = std::dynamic_pointer_cast<xg::nn::Linear>(lin->clone());
    REQUIRE(copy);
    CHECK(xg::get_rng_state() == state);
    CHECK(copy->repr() == lin->repr());
    CHECK_VALUES(copy->weight, test::values(lin->weight));
    CHECK(copy->weight.impl() != lin->weight.impl());
    CHECK(copy->named_parameters()[0].second.impl() == copy->weight.impl());
}

}  // namespace nn_test_linear
