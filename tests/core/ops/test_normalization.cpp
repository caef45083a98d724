// Tests for the normalization ops (core/ops/normalization.cpp): layer_norm by hand
// and against its definition from primitives, values and gradients; float64
// gradchecks with respect to input, weight and bias; and its error messages. The
// LayerNorm module is tested in tests/nn/test_layer_norm.cpp.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_normalization {

using xg::Tensor;

TEST_CASE("layer_norm normalizes over the trailing dims, then scales and shifts, by hand") {
    // Row [1, 2, 3]: mean 2, variance 2/3. Row [-1, -1, 5]: mean 1, variance 8.
    Tensor x = test::f64({{1, 2, 3}, {-1, -1, 5}});
    const double a = std::sqrt(1.5), b = std::sqrt(0.5);
    CHECK_VALUES(xg::layer_norm(x, {3}, Tensor(), Tensor(), 0.0),
                 (xt::xarray<double>{{-a, 0, a}, {-b, -b, 2 * b}}));
    // weight [2, 1, -1], bias [0.5, 0, 1]
    CHECK_VALUES(xg::layer_norm(x, {3}, test::f64({2, 1, -1}), test::f64({0.5, 0, 1}), 0.0),
                 (xt::xarray<double>{{-2 * a + 0.5, 0, -a + 1}, {-2 * b + 0.5, -b, -2 * b + 1}}));
    CHECK_VALUES(xg::layer_norm(x, {3}, test::f64({2, 1, -1}), Tensor(), 0.0),
                 (xt::xarray<double>{{-2 * a, 0, -a}, {-2 * b, -b, -2 * b}}));
    CHECK_VALUES(xg::layer_norm(x, {3}, Tensor(), test::f64({0.5, 0, 1}), 0.0),
                 (xt::xarray<double>{{-a + 0.5, 0, a + 1}, {-b + 0.5, -b, 2 * b + 1}}));
    // Over both dims: mean 1.5, variance 27.5 / 6.
    const double s = std::sqrt(27.5 / 6);
    CHECK_VALUES(xg::layer_norm(x, {2, 3}, Tensor(), Tensor(), 0.0),
                 (xt::xarray<double>{{-0.5 / s, 0.5 / s, 1.5 / s}, {-2.5 / s, -2.5 / s, 3.5 / s}}));
    // eps inside the square root: a constant row normalizes to 0, not NaN.
    CHECK_VALUES(xg::layer_norm(test::f64({{5, 5, 5}}), {3}, Tensor(), test::f64({1, 2, 3})),
                 (xt::xarray<double>{{1, 2, 3}}));
    // float32 in, float32 out.
    Tensor y32 = xg::layer_norm(x.to(xg::kFloat32), {3}, Tensor(), Tensor(), 0.0);
    CHECK(y32.dtype() == xg::kFloat32);
    CHECK_VALUES_TOL(y32, (xt::xarray<double>{{-a, 0, a}, {-b, -b, 2 * b}}), 1e-6, 1e-6);
}

TEST_CASE("the fused layer_norm op equals its definition from primitives, values and gradients") {
    for (xg::Dtype dtype : {xg::kFloat64, xg::kFloat32}) {
        xg::Tensor x = test::randn64({3, 2, 4}, 11).to(dtype).requires_grad_(true);
        xg::Tensor w = test::randn64({2, 4}, 12).to(dtype).requires_grad_(true);
        xg::Tensor b = test::randn64({2, 4}, 13).to(dtype).requires_grad_(true);
        xg::Tensor up = test::randn64({3, 2, 4}, 14).to(dtype);
        xg::Tensor fused = xg::layer_norm(x, {2, 4}, w, b, 1e-5);
        CHECK(fused.grad_fn_name() == "LayerNormBackward");
        xg::sum(fused * up).backward();
        std::vector<xt::xarray<double>> grads = {test::values(x.grad()), test::values(w.grad()),
                                                 test::values(b.grad())};
        x.mutable_grad() = w.mutable_grad() = b.mutable_grad() = xg::Tensor();
        xg::Tensor centered = x - xg::mean(x, {-1, -2}, true);
        xg::Tensor composed =
            centered / xg::sqrt(xg::mean(centered * centered, {-1, -2}, true) + 1e-5) * w + b;
        xg::sum(composed * up).backward();
        const double tol = dtype == xg::kFloat64 ? 1e-12 : 1e-5;
        CHECK_VALUES_TOL(fused, test::values(composed), tol, tol);
        CHECK_VALUES_TOL(x.grad(), grads[0], tol, tol);
        CHECK_VALUES_TOL(w.grad(), grads[1], tol, tol);
        CHECK_VALUES_TOL(b.grad(), grads[2], tol, tol);
    }
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) {
            return xg::layer_norm(in[0], {3}, in[1], in[2], 1e-3);
        },
        {test::randn64({4, 3}, 1), test::randn64({3}, 2), test::randn64({3}, 3)}));
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) {
            return xg::layer_norm(in[0], {2, 3});
        },
        {test::randn64({2, 3}, 4)}));
    CHECK_THROWS_WITH_AS(xg::layer_norm(xg::ones({2, 3}), {3}, xg::ones({2})),
                         "layer_norm: expected weight and bias of shape [3] (got [2])", xg::Error);
}

TEST_CASE("layer_norm gradchecks in float64 with respect to input, weight and bias") {
    // Over the last two of three dims, with weight and bias, either or neither.
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::layer_norm(in[0], {3, 4}, in[1], in[2]);
        },
        {test::randn64({2, 3, 4}, 31), test::randn64({3, 4}, 32), test::randn64({3, 4}, 33)}));
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) { return xg::layer_norm(in[0], {4}, in[1]); },
        {test::randn64({2, 3, 4}, 34), test::randn64({4}, 35)}));
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) { return xg::layer_norm(in[0], {4}, Tensor(), in[1]); },
        {test::randn64({3, 4}, 36), test::randn64({4}, 37)}));
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::layer_norm(in[0], {2, 3, 4});
        },
        {test::randn64({2, 3, 4}, 38)}));
    // Only weight and bias need a gradient: the input is a constant.
    Tensor x = test::randn64({3, 4}, 39);
    CHECK(test::gradcheck(
        [&](const std::vector<Tensor>& in) { return xg::layer_norm(x, {4}, in[0], in[1]); },
        {test::randn64({4}, 40), test::randn64({4}, 41)}));
}

TEST_CASE("layer_norm error messages") {
    CHECK_THROWS_WITH_AS(xg::layer_norm(xg::ones({2, 4}), {3}),
                         "layer_norm: expected input with shape [*, 3] (got [2, 4])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::layer_norm(xg::ones({2, 4, 3}), {3, 4}),
                         "layer_norm: expected input with shape [*, 3, 4] (got [2, 4, 3])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::layer_norm(xg::ones({3}), {2, 3}),
                         "layer_norm: expected input with shape [*, 2, 3] (got [3])", xg::Error);
    CHECK_THROWS_AS(xg::layer_norm(xg::ones({2, 3}), xg::Shape{}), xg::Error);
    CHECK_THROWS_WITH_AS(xg::layer_norm(xg::ones({2, 3}), {3}, Tensor(), xg::ones({3, 1})),
                         "layer_norm: expected weight and bias of shape [3] (got [3, 1])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::layer_norm(xg::ones({2, 3}), {3}, xg::ones({3}, xg::kFloat64)),
        "layer_norm: expected operands of the same dtype (got float32 and float64)", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::layer_norm(xg::ones({2, 3}, xg::kFloat64), {3}, Tensor(), xg::ones({3})),
        "layer_norm: expected operands of the same dtype (got float64 and float32)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::layer_norm(xg::ones({2, 3}, xg::kInt64), {3}),
                         "layer_norm: expected a floating-point tensor (got int64)", xg::Error);
}

}  // namespace core_ops_test_normalization
