// Anomaly detection (core/src/engine.cpp): with set_detect_anomaly(true) or a
// DetectAnomalyGuard, backward throws at the first node whose backward returns
// NaN, naming that node and where its forward op ran. Inf passes, as in
// PyTorch (torch.autograd.detect_anomaly checks for NaN only); the expected
// node names and message texts are PyTorch 1.13's with our node names.
#include <cmath>
#include <limits>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_anomaly {

using xg::Tensor;
using xg::autograd::DetectAnomalyGuard;

namespace {

// sqrt(x * 0): sqrt's gradient at 0 is Inf, and the multiplication by 0 turns
// it into NaN in MulBackward.
struct SqrtLayer : xg::nn::Module {
    Tensor forward(const Tensor& x) override { return xg::sqrt(x * 0.0); }
};

// Holds a SqrtLayer child named "root", behind a Linear named "proj".
struct Net : xg::nn::Module {
    Net() {
        proj = register_module("proj", std::make_shared<xg::nn::Linear>(2, 2));
        root = register_module("root", std::make_shared<SqrtLayer>());
    }
    Tensor forward(const Tensor& x) override { return (*root)(xg::relu((*proj)(x))); }
    std::shared_ptr<xg::nn::Linear> proj;
    std::shared_ptr<SqrtLayer> root;
};

}  // namespace

TEST_CASE("anomaly mode is off by default and the guard restores it") {
    CHECK_FALSE(xg::autograd::is_anomaly_enabled());
    {
        DetectAnomalyGuard on;
        CHECK(xg::autograd::is_anomaly_enabled());
        {
            DetectAnomalyGuard off(false);
            CHECK_FALSE(xg::autograd::is_anomaly_enabled());
        }
        CHECK(xg::autograd::is_anomaly_enabled());
    }
    CHECK_FALSE(xg::autograd::is_anomaly_enabled());
    xg::autograd::set_detect_anomaly(true);
    CHECK(xg::autograd::is_anomaly_enabled());
    xg::autograd::set_detect_anomaly(false);
}

TEST_CASE("without anomaly mode a NaN gradient passes silently") {
    Tensor x = test::f64({0.0, 4.0}, true);
    xg::sum(xg::sqrt(x * 0.0)).backward();
    CHECK(std::isnan(x.grad().data<double>()(0)));
}

TEST_CASE("anomaly mode lets Inf through, as PyTorch's does") {
    DetectAnomalyGuard guard;
    Tensor x = test::f64({0.0, 0.0}, true);
    xg::sum(xg::sqrt(x)).backward();  // d sqrt / dx = Inf at 0
    CHECK(std::isinf(x.grad().data<double>()(0)));
    CHECK(std::isinf(x.grad().data<double>()(1)));
}

TEST_CASE("anomaly mode names the op whose backward produced NaN, in PyTorch's words") {
    // torch: w * 0, then sqrt: SqrtBackward0 returns Inf (allowed), MulBackward0
    // multiplies it by 0 and is named: "Function 'MulBackward0' returned nan
    // values in its 0th output."
    DetectAnomalyGuard guard;
    Tensor w = test::f64({1.0, 2.0}, true);
    CHECK_THROWS_WITH_AS(xg::sum(xg::sqrt(w * 0.0)).backward(),
                         "Function 'MulBackward' returned nan values in its 0th output. Its "
                         "forward op Mul (gradient shape [2]) was created outside any module.",
                         xg::Error);
}

TEST_CASE("anomaly mode reports NaN from a NaN incoming gradient at the first node it passes") {
    DetectAnomalyGuard guard;
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor w = test::f64({0.0, 1.0}, true);
    // Inf * 0 = NaN in MulBackward's gradient for x (its 0th output); the Inf
    // comes in with the seed gradient.
    Tensor y = x * w;
    Tensor g = test::f64({std::numeric_limits<double>::infinity(), 1.0});
    CHECK_THROWS_WITH_AS(y.backward(g),
                         doctest::Contains("Function 'MulBackward' returned nan values in its 0th"),
                         xg::Error);
}

TEST_CASE("anomaly mode gives the module path of the forward op") {
    xg::manual_seed(0);
    auto net = std::make_shared<Net>();
    net->proj->weight.data<float>() = xt::xarray<float>{{1, 0}, {0, 1}};
    net->proj->bias.data<float>() = xt::xarray<float>{0, 0};
    Tensor x = xg::tensor<float>(xt::xarray<float>{{0, 1}}, true);

    DetectAnomalyGuard guard;
    CHECK_THROWS_WITH_AS(xg::sum((*net)(x)).backward(),
                         "Function 'MulBackward' returned nan values in its 0th output. Its "
                         "forward op Mul (gradient shape [1, 2]) was created in module Net.root.",
                         xg::Error);

    // Inside a container the path follows the registered names.
    auto seq = std::make_shared<xg::nn::Sequential>(
        std::initializer_list<std::shared_ptr<xg::nn::Module>>{net});
    CHECK_THROWS_WITH_AS(xg::sum((*seq)(x)).backward(),
                         doctest::Contains("created in module Sequential.0.root"), xg::Error);
}

TEST_CASE("nodes recorded before anomaly mode was on say so") {
    Tensor x = test::f64({0.0}, true);
    Tensor y = xg::sum(xg::sqrt(x * 0.0));
    DetectAnomalyGuard guard;
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("before anomaly detection was enabled"),
                         xg::Error);
}

TEST_CASE("anomaly mode leaves finite backward passes alone and costs no results") {
    Tensor x = test::f64({0.5, 2.0}, true);
    {
        DetectAnomalyGuard guard;
        xg::sum(xg::sqrt(x) * xg::log(x)).backward();
    }
    Tensor expected_x = test::f64({0.5, 2.0}, true);
    xg::sum(xg::sqrt(expected_x) * xg::log(expected_x)).backward();
    CHECK_VALUES(x.grad(), test::values(expected_x.grad()));
}

}  // namespace core_test_anomaly
