// Small helpers shared by the core tests: reading a tensor's values as float64,
// comparing them with expected arrays (shape first, since xt::allclose broadcasts),
// building float64 tensors, and running gradcheck.
#pragma once

#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>

namespace test {

using Fn = std::function<xg::Tensor(const std::vector<xg::Tensor>&)>;

// A tensor's values as float64, read straight from storage (no op, no graph), so a
// bug in to() cannot hide a bug in the op under test.
inline xt::xarray<double> values(const xg::Tensor& t) {
    switch (t.dtype()) {
        case xg::kFloat32: return xt::cast<double>(t.data<float>());
        case xg::kFloat64: return t.data<double>();
        case xg::kInt64: return xt::cast<double>(t.data<std::int64_t>());
    }
    return {};
}

inline xg::Shape shape_of(const xt::xarray<double>& a) {
    return xg::Shape(a.shape().begin(), a.shape().end());
}

// Same shape (exactly, no broadcasting) and elementwise close.
inline bool close(const xt::xarray<double>& actual, const xt::xarray<double>& expected,
                  double rtol = 1e-7, double atol = 1e-9) {
    return shape_of(actual) == shape_of(expected) && xt::allclose(actual, expected, rtol, atol);
}

// Shape and row-major values at full precision. (Not xtensor's xio.hpp: g++ 12
// raises a false -Wrestrict warning inside it.)
inline std::string show(const xt::xarray<double>& a) {
    std::ostringstream os;
    os.precision(17);
    os << xg::shape_str(shape_of(a)) << " {";
    for (std::size_t k = 0; k < a.size(); ++k) os << (k ? ", " : "") << a.data()[k];
    os << "}";
    return os.str();
}

// A float64 tensor from nested braces: test::f64({{1, 2}, {3, 4}}).
inline xg::Tensor f64(const xt::xarray<double>& v, bool requires_grad = false) {
    return xg::tensor<double>(v, requires_grad);
}
inline xg::Tensor f32(const xt::xarray<float>& v, bool requires_grad = false) {
    return xg::tensor<float>(v, requires_grad);
}
inline xg::Tensor i64(const xt::xarray<std::int64_t>& v) { return xg::tensor<std::int64_t>(v); }
// A column [n, 1]: braces like {{1}, {2}} are ambiguous to xtensor (1-D or 2-D?).
inline xt::xarray<double> column(const xt::xarray<double>& v) {
    xt::xarray<double> c = v;
    c.reshape({v.size(), 1});
    return c;
}

// Reproducible float64 inputs for gradchecks.
inline xg::Tensor randn64(const xg::Shape& shape, std::uint64_t seed = 0) {
    xg::manual_seed(seed);
    return xg::randn(shape, xg::kFloat64);
}
// Strictly positive inputs in [lo, lo + 1) for log, sqrt and fractional pow.
inline xg::Tensor positive64(const xg::Shape& shape, double lo = 0.5, std::uint64_t seed = 0) {
    xg::manual_seed(seed);
    xt::xarray<double> v = xg::rand(shape, xg::kFloat64).data<double>() + lo;
    return xg::tensor<double>(v);
}

// gradcheck with the library defaults, as a function: lambdas with commas are
// unsafe inside a macro's argument list, so call sites read CHECK(test::gradcheck(...)).
inline bool gradcheck(const Fn& fn, const std::vector<xg::Tensor>& inputs) {
    return xg::autograd::gradcheck(fn, inputs);
}

}  // namespace test

// CHECK that a tensor has exactly the expected shape and values; on failure print both.
#define CHECK_VALUES(actual, expected)                                   \
    do {                                                                 \
        const xt::xarray<double> check_values_a_ = test::values(actual); \
        const xt::xarray<double> check_values_e_ = (expected);           \
        INFO("actual:   ", test::show(check_values_a_));                 \
        INFO("expected: ", test::show(check_values_e_));                 \
        CHECK(test::close(check_values_a_, check_values_e_));            \
    } while (false)

// Same, with a tolerance for float32 results.
#define CHECK_VALUES_TOL(actual, expected, rtol, atol)                    \
    do {                                                                  \
        const xt::xarray<double> check_values_a_ = test::values(actual);  \
        const xt::xarray<double> check_values_e_ = (expected);            \
        INFO("actual:   ", test::show(check_values_a_));                  \
        INFO("expected: ", test::show(check_values_e_));                  \
        CHECK(test::close(check_values_a_, check_values_e_, rtol, atol)); \
    } while (false)
