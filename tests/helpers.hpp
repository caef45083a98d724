// Helpers shared by the tests, in namespace test: reading a tensor's values as
// float64 and comparing them with expected arrays (shape first, since
// xt::allclose broadcasts), building tensors, running gradcheck, naming a
// module's parameters and children, and reading a file's bytes. The optimizer
// tests' least-squares problem is optim/problem.hpp, beside its data.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>

namespace test {

// ---- Reading and comparing values ----

// A tensor's values as float64, read straight from storage (no op, no graph), so a
// bug in to() cannot hide a bug in the op under test.
xt::xarray<double> values(const xg::Tensor& t);

xg::Shape shape_of(const xt::xarray<double>& a);

// Same shape (exactly, no broadcasting) and elementwise close.
bool close(const xt::xarray<double>& actual, const xt::xarray<double>& expected, double rtol = 1e-7,
           double atol = 1e-9);

// Largest |a - e| / max(|e|, 1) over every element (relative for large values,
// absolute near 0, where float32 rounding of cancelling terms dominates).
double rel_error(const xt::xarray<double>& a, const xt::xarray<double>& e);

// Shape and row-major values at full precision. (Not xtensor's xio.hpp: g++ 12
// raises a false -Wrestrict warning inside it.)
std::string show(const xt::xarray<double>& a);

// Bitwise equality of two float tensors' values (same dtype and shape).
bool identical(const xg::Tensor& a, const xg::Tensor& b);

// How many elements of t are exactly zero.
std::size_t count_zeros(const xg::Tensor& t);

// Runs a shell command (a Python checker), returning its exit status and its
// output, stderr included, for the failure message.
struct CommandResult {
    int status;
    std::string output;
};
CommandResult run_command(const std::string& command);

// CHECKs that `got` has `expected`'s keys in order, each tensor with the same
// dtype, shape and bytes (shown in hex when they differ).
void check_same_bits(const xg::StateDict& got, const xg::StateDict& expected);

// ---- Building tensors ----

// A float64 tensor from nested braces: test::f64({{1, 2}, {3, 4}}).
xg::Tensor f64(const xt::xarray<double>& v, bool requires_grad = false);
xg::Tensor f32(const xt::xarray<float>& v, bool requires_grad = false);
xg::Tensor i64(const xt::xarray<std::int64_t>& v);
// A column [n, 1]: braces like {{1}, {2}} are ambiguous to xtensor (1-D or 2-D?).
xt::xarray<double> column(const xt::xarray<double>& v);

// arange(24) as a float64 [2, 3, 4]: element (i, j, k) = 12 i + 4 j + k, easy to sum by hand.
xg::Tensor arange234();

// A dtype-T tensor from a C array of doubles: test::matrix<float>(optim_ref::x).
template <class T, std::size_t R, std::size_t C>
xg::Tensor matrix(const double (&v)[R][C], bool requires_grad = false) {
    auto a = xt::xarray<T>::from_shape({R, C});
    for (std::size_t i = 0; i < R; ++i) {
        for (std::size_t j = 0; j < C; ++j) a(i, j) = static_cast<T>(v[i][j]);
    }
    return xg::tensor(std::move(a), requires_grad);
}
template <class T, std::size_t N>
xg::Tensor vector(const double (&v)[N], bool requires_grad = false) {
    auto a = xt::xarray<T>::from_shape({N});
    for (std::size_t i = 0; i < N; ++i) a(i) = static_cast<T>(v[i]);
    return xg::tensor(std::move(a), requires_grad);
}

// Reproducible float64 inputs for gradchecks.
xg::Tensor randn64(const xg::Shape& shape, std::uint64_t seed = 0);
// Strictly positive inputs in [lo, lo + 1) for log, sqrt and fractional pow.
xg::Tensor positive64(const xg::Shape& shape, double lo = 0.5, std::uint64_t seed = 0);

// |x| in [0.5, 1.5) with alternating signs, float64: no ties, zeros or
// near-zeros, where |x|, its powers and the extremes (amax, norm) have kinks.
xg::Tensor away_from_kinks(const xg::Shape& shape, std::uint64_t seed);

// 130 x 127 values in [lo, lo + width), [-3, 3) by default, with exact zeros
// sprinkled in (the kinks): > 64 KiB even in float32, so the kernels' outputs
// and gradients go through the buffer cache, and more than four 4096-element
// dropout-mask slices without being a multiple of one. A plain loop: test code
// is compiled without optimisation, where an xtensor expression of this size
// takes a second.
template <class T>
xt::xarray<T> large_inputs(std::uint64_t seed, T lo = T(-3), T width = T(6)) {
    xg::manual_seed(seed);
    const xg::Tensor r = xg::rand({130, 127}, xg::kFloat64);
    const double* u = r.data<double>().data();
    auto v = xt::xarray<T>::from_shape({130, 127});
    for (std::size_t i = 0; i < v.size(); ++i)
        v.data()[i] = static_cast<T>(u[i] * double(width) + double(lo));
    for (std::size_t i = 0; i < v.size(); i += 97) v.data()[i] = T(0);
    return v;
}

// ---- gradcheck ----

using Fn = std::function<xg::Tensor(const std::vector<xg::Tensor>&)>;

// gradcheck with the library defaults, as a function: lambdas with commas are
// unsafe inside a macro's argument list, so call sites read CHECK(test::gradcheck(...)).
bool gradcheck(const Fn& fn, const std::vector<xg::Tensor>& inputs);
// The same for second derivatives (xg::autograd::gradgradcheck).
bool gradgradcheck(const Fn& fn, const std::vector<xg::Tensor>& inputs);

// ---- Modules ----

std::vector<std::string> parameter_names(const xg::nn::Module& module);

std::vector<std::string> child_names(const xg::nn::Module& module);

// A leaf holding a copy of t's values.
xg::Tensor copy_param(const xg::Tensor& t);

// w (row-major) then b, as float64.
template <class T>
std::vector<double> flat_values(const xg::Tensor& w, const xg::Tensor& b) {
    std::vector<double> out;
    for (T v : w.data<T>()) out.push_back(static_cast<double>(v));
    for (T v : b.data<T>()) out.push_back(static_cast<double>(v));
    return out;
}

// ---- Files ----

// A file's whole contents.
std::string read_bytes(const std::filesystem::path& path);

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
