// Comparisons and logic (core/ops/compare.cpp): kBool results without grad,
// broadcasting, scalars, NaN, mixed dtypes, any / all by dim; hand-computed as
// PyTorch gives them.
#include <cmath>
#include <limits>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_compare {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

xt::xarray<double> flags(const xg::Tensor& t) {
    REQUIRE(t.dtype() == xg::kBool);
    CHECK_FALSE(t.requires_grad());
    return test::values(t);
}
}  // namespace

TEST_CASE("comparisons: tensor and scalar operands, broadcasting, NaN never equal") {
    xg::Tensor a = test::f64({{1.0, 2.0, kNaN}, {4.0, 5.0, 6.0}}, true);
    xg::Tensor row = test::f64({1.0, 5.0, kNaN});
    CHECK(flags(xg::eq(a, row)) == xt::xarray<double>{{1, 0, 0}, {0, 1, 0}});
    CHECK(flags(xg::ne(a, row)) == xt::xarray<double>{{0, 1, 1}, {1, 0, 1}});
    CHECK(flags(xg::lt(a, 4.0)) == xt::xarray<double>{{1, 1, 0}, {0, 0, 0}});
    CHECK(flags(xg::le(a, 4.0)) == xt::xarray<double>{{1, 1, 0}, {1, 0, 0}});
    CHECK(flags(xg::gt(a, row)) == xt::xarray<double>{{0, 0, 0}, {1, 0, 0}});
    CHECK(flags(xg::ge(a, 2.0)) == xt::xarray<double>{{0, 1, 0}, {1, 1, 1}});
    // Mixed dtypes compare as numbers: int64 3 == float32 3.0, and 1 < 1.5 for an int tensor.
    xg::Tensor ints = test::i64({1, 3});
    CHECK(flags(xg::eq(ints, test::f32({1.5f, 3.0f}))) == xt::xarray<double>{0, 1});
    CHECK(flags(xg::lt(ints, 1.5)) == xt::xarray<double>{1, 0});
    CHECK_THROWS_WITH_AS(xg::eq(a, test::f64({1.0, 2.0})), doctest::Contains("eq"), xg::Error);
}

TEST_CASE("logic: nonzero is true (NaN too), isnan / isinf / isfinite, any and all") {
    xg::Tensor x = test::f64({0.0, -2.0, kNaN, kInf, -kInf});
    CHECK(flags(xg::logical_not(x)) == xt::xarray<double>{1, 0, 0, 0, 0});
    CHECK(flags(xg::logical_and(x, test::f64({1.0}))) == xt::xarray<double>{0, 1, 1, 1, 1});
    CHECK(flags(xg::logical_or(x, xg::zeros({5}, xg::kFloat64))) ==
          xt::xarray<double>{0, 1, 1, 1, 1});
    CHECK(flags(xg::isnan(x)) == xt::xarray<double>{0, 0, 1, 0, 0});
    CHECK(flags(xg::isinf(x)) == xt::xarray<double>{0, 0, 0, 1, 1});
    CHECK(flags(xg::isfinite(x)) == xt::xarray<double>{1, 1, 0, 0, 0});
    CHECK(flags(xg::isfinite(test::i64({7}))) == xt::xarray<double>{1});
    xg::Tensor m = test::f64({{0.0, 1.0, 0.0}, {0.0, 0.0, 0.0}});
    CHECK(flags(xg::any(m)).dimension() == 0);
    CHECK(flags(xg::any(m))() == 1.0);
    CHECK(flags(xg::all(m))() == 0.0);
    CHECK(flags(xg::any(m, 1)) == xt::xarray<double>{1, 0});
    CHECK(flags(xg::all(xg::eq(m, 0.0), -2, true)) == xt::xarray<double>{{1, 0, 1}});
    CHECK(flags(xg::all(xg::zeros({0})))() == 1.0);  // empty: all true, any false
    CHECK(flags(xg::any(xg::zeros({0})))() == 0.0);
    CHECK_THROWS_WITH_AS(xg::any(m, 2), doctest::Contains("any"), xg::Error);
}

}  // namespace core_ops_test_compare
