// normal, bernoulli, uniform_ and normal_ (core/src/random.cpp): their
// distributions' moments over many draws (bounds of 6 standard errors, so a
// correct sampler fails about once in 10^8 runs), exact edge cases,
// reproducibility under manual_seed, and the error messages.
#include <cmath>
#include <cstdint>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_random {

using xg::Tensor;

namespace {
constexpr std::size_t kDraws = 200'000;

double mean_of(const Tensor& t) { return xg::mean(t.to(xg::kFloat64)).item<double>(); }
double std_of(const Tensor& t) { return xg::std(t.to(xg::kFloat64)).item<double>(); }
}  // namespace

TEST_CASE("normal(mean, std, shape) draws from N(mean, std^2)") {
    xg::manual_seed(7);
    Tensor x = xg::normal(3.0, 2.0, {kDraws}, xg::kFloat64);
    CHECK(x.dtype() == xg::kFloat64);
    CHECK(x.shape() == xg::Shape{kDraws});
    CHECK(!x.requires_grad());
    const double se = 2.0 / std::sqrt(double(kDraws));
    CHECK(std::abs(mean_of(x) - 3.0) < 6 * se);
    CHECK(std::abs(std_of(x) - 2.0) < 6 * se);  // the sd's standard error is about sd / sqrt(2n)
    CHECK(xg::normal(0.0, 1.0, {2, 3}).dtype() == xg::kFloat32);

    xg::manual_seed(11);
    Tensor a = xg::normal(0.0, 1.0, {5});
    xg::manual_seed(11);
    CHECK(test::identical(a, xg::normal(0.0, 1.0, {5})));
    CHECK_VALUES(xg::normal(4.0, 0.0, {3}), (xt::xarray<double>{4, 4, 4}));
    CHECK_THROWS_WITH_AS(xg::normal(0.0, -1.0, {2}), "normal: expected std >= 0 (got -1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::normal(0.0, 1.0, {2}, xg::kInt64),
                         "normal: expected a floating-point dtype (got int64)", xg::Error);
}

TEST_CASE("bernoulli(p) gives 0 or 1, 1 with probability p, in p's dtype and shape") {
    xg::manual_seed(3);
    Tensor p = xg::full({kDraws}, 0.3, xg::kFloat64);
    Tensor draws = xg::bernoulli(p);
    CHECK(draws.dtype() == xg::kFloat64);
    CHECK(xg::all(xg::logical_or(xg::eq(draws, 0.0), xg::eq(draws, 1.0))).item<bool>());
    CHECK(std::abs(mean_of(draws) - 0.3) < 6 * std::sqrt(0.3 * 0.7 / double(kDraws)));

    // Probabilities 0 and 1 are certain.
    Tensor certain = xg::tensor<float>(xt::xarray<float>{{0, 1, 1}, {1, 0, 0}});
    CHECK_VALUES(xg::bernoulli(certain), test::values(certain));
    Tensor like = xg::bernoulli(xg::zeros({4, 5}, xg::kFloat64), 1.0);
    CHECK(like.shape() == xg::Shape{4, 5});
    CHECK(like.dtype() == xg::kFloat64);
    CHECK(xg::sum(like).item<double>() == 20.0);

    CHECK_THROWS_WITH_AS(xg::bernoulli(xg::full({2}, 1.5)),
                         "bernoulli: expected every probability in [0, 1] (got 1.5)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::bernoulli(xg::zeros({2}), -0.1),
                         "bernoulli: expected a probability in [0, 1] (got -0.1)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::bernoulli(xg::zeros({2}, xg::kInt64)),
                         "bernoulli: expected a floating-point tensor (got int64)", xg::Error);
}

TEST_CASE("uniform_ and normal_ refill a tensor in place, keeping its handle, shape and dtype") {
    xg::manual_seed(5);
    Tensor w = xg::zeros({kDraws}, xg::kFloat64).requires_grad_(true);
    Tensor alias = w;
    w.uniform_(-2.0, 4.0);
    CHECK(alias.impl() == w.impl());
    CHECK(w.requires_grad());
    CHECK(w.grad_fn_name().empty());  // no history, as under torch.no_grad
    CHECK(xg::min(w).item<double>() >= -2.0);
    CHECK(xg::max(w).item<double>() < 4.0);
    const double se = 6.0 / std::sqrt(12.0 * double(kDraws));  // U(a, b) has sd (b - a) / sqrt(12)
    CHECK(std::abs(mean_of(w) - 1.0) < 6 * se);

    Tensor v = xg::zeros({kDraws});
    CHECK(&v.normal_(1.0, 0.5) == &v);
    CHECK(v.dtype() == xg::kFloat32);
    CHECK(std::abs(mean_of(v) - 1.0) < 6 * 0.5 / std::sqrt(double(kDraws)));

    CHECK_THROWS_WITH_AS(w.uniform_(1.0, 0.0), "uniform_: expected from <= to (got 1 and 0)",
                         xg::Error);
    Tensor ints = xg::zeros({2}, xg::kInt64);
    CHECK_THROWS_WITH_AS(ints.uniform_(), "uniform_: expected a floating-point dtype (got int64)",
                         xg::Error);
}

}  // namespace core_test_random
