// Tests for gradient clipping (nn/src/clip_grad.cpp, xg::nn::utils) against
// hand-computed norms.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/nn/utils.hpp>
#include <xgrad/xgrad.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_clip_grad {

using xg::Tensor;
namespace utils = xg::nn::utils;

namespace {

// Two parameters with gradients [3, -4] (2-norm 5) and [[12]] (2-norm 12): total 13.
struct Grads {
    Tensor a = xg::zeros({2}, xg::kFloat64).requires_grad_();
    Tensor b = xg::zeros({1, 1}, xg::kFloat64).requires_grad_();
    Tensor none = xg::zeros({3}, xg::kFloat64).requires_grad_();  // no gradient
    Grads() {
        a.mutable_grad() = xg::tensor(xt::xarray<double>{3.0, -4.0});
        b.mutable_grad() = xg::full({1, 1}, 12.0, xg::kFloat64);
    }
    std::vector<Tensor> all() const { return {a, none, b}; }
};

}  // namespace

TEST_CASE("clip_grad_norm_ returns the total 2-norm and scales every gradient by max_norm / norm") {
    Grads g;
    const double total = utils::clip_grad_norm_(g.all(), 6.5);
    CHECK(total == 13.0);
    const double coef = 6.5 / (13.0 + 1e-6);
    CHECK(g.a.grad().data<double>()(0) == 3.0 * coef);
    CHECK(g.a.grad().data<double>()(1) == -4.0 * coef);
    CHECK(g.b.grad().data<double>()(0, 0) == 12.0 * coef);
    CHECK_FALSE(g.none.grad().defined());
}

TEST_CASE("clip_grad_norm_ leaves gradients below max_norm unchanged") {
    Grads g;
    CHECK(utils::clip_grad_norm_(g.all(), 100.0) == 13.0);
    CHECK(g.a.grad().data<double>()(1) == -4.0);
    CHECK(g.b.grad().data<double>()(0, 0) == 12.0);
}

TEST_CASE("clip_grad_norm_ with the inf norm and the 1-norm") {
    Grads g;
    CHECK(utils::clip_grad_norm_(g.all(), 6.0, INFINITY) == 12.0);
    CHECK(g.b.grad().data<double>()(0, 0) == 12.0 * (6.0 / (12.0 + 1e-6)));
    Grads h;
    CHECK(utils::clip_grad_norm_(h.all(), 1.0, 1.0) == 19.0);
    CHECK(h.a.grad().data<double>()(0) == 3.0 * (1.0 / (19.0 + 1e-6)));
    Grads k;
    CHECK(utils::clip_grad_norm_(k.all(), 1e9, 3.0) ==
          doctest::Approx(std::cbrt(27.0 + 64.0 + 1728.0)).epsilon(1e-15));
}

TEST_CASE("clip_grad_norm_ on float32, one tensor, no gradients and bad arguments") {
    Tensor w = xg::zeros({2}, xg::kFloat32).requires_grad_();
    w.mutable_grad() = xg::tensor(xt::xarray<float>{0.6f, 0.8f});
    CHECK(utils::clip_grad_norm_(w, 0.5) == doctest::Approx(1.0).epsilon(1e-7));
    CHECK(w.grad().data<float>()(0) == doctest::Approx(0.3).epsilon(1e-6));

    Tensor bare = xg::zeros({2}, xg::kFloat64).requires_grad_();
    CHECK(utils::clip_grad_norm_({bare}, 1.0) == 0.0);
    CHECK_THROWS_WITH_AS(utils::clip_grad_norm_(w, 1.0, 0.0),
                         "clip_grad_norm_: expected norm_type > 0 or inf (got 0)", xg::Error);

    Tensor bad = xg::zeros({2}, xg::kFloat64).requires_grad_();
    bad.mutable_grad() = xg::tensor(xt::xarray<double>{INFINITY, 1.0});
    CHECK_THROWS_WITH_AS(utils::clip_grad_norm_(bad, 1.0, 2.0, true),
                         "clip_grad_norm_: expected a finite total norm of order 2 (got inf)",
                         xg::Error);
    CHECK(bad.grad().data<double>()(1) == 1.0);  // not scaled
}

TEST_CASE("clip_grad_value_ clamps every gradient element") {
    Grads g;
    utils::clip_grad_value_(g.all(), 3.5);
    CHECK(g.a.grad().data<double>() == xt::xarray<double>{3.0, -3.5});
    CHECK(g.b.grad().data<double>()(0, 0) == 3.5);
    CHECK_FALSE(g.none.grad().defined());
    CHECK_THROWS_WITH_AS(utils::clip_grad_value_(g.all(), -1.0),
                         "clip_grad_value_: expected clip_value >= 0 (got -1)", xg::Error);
}

}  // namespace nn_test_clip_grad
