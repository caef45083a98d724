// fast_exp and fast_erf (core/src/vec_math.hpp) against libm, at most 1 ulp
// apart, fast_erf_gauss's e^(-x^2) against exp, and fast_tanh against the
// exact tanh, at most 1.2 ulp,
// over a sweep of the whole range where exp is neither 0 nor inf in float, and
// the same special values.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <utility>

#include <doctest/doctest.h>

#include "vec_math.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_vec_math {

namespace {

// Distance in units in the last place between two finite floats of one sign.
std::int64_t ulps(float a, float b) {
    return std::abs(std::int64_t(std::bit_cast<std::int32_t>(a)) -
                    std::int64_t(std::bit_cast<std::int32_t>(b)));
}

// The largest distance between f(x) and reference(x), in ulps of the reference
// rounded to float, over every 151st bit pattern below `end`, both signs; and where.
template <class F, class R>
std::pair<double, float> worst_ulps(F f, R reference, std::uint32_t end) {
    double worst = 0;
    float worst_at = 0;
    for (std::uint32_t bits = 0; bits < end; bits += 151) {
        for (float x : {std::bit_cast<float>(bits), -std::bit_cast<float>(bits)}) {
            const double expected = reference(x);
            const float rounded = float(expected);
            double ulp = std::max(std::abs(std::nextafter(rounded, 2.0f) - rounded), 1e-45f);
            double d = std::abs(double(f(x)) - expected) / ulp;
            if (d > worst) worst = d, worst_at = x;
        }
    }
    return {worst, worst_at};
}

}  // namespace

TEST_CASE("fast_exp is within 1 ulp of std::exp from -104 to 89") {
    // Every 61st bit pattern of both signs: ~37 million inputs, all binades,
    // including the subnormal results below e^-87.3.
    std::int64_t worst = 0;
    float worst_at = 0;
    long checked = 0;
    for (std::uint32_t sign : {0u, 0x80000000u}) {
        for (std::uint32_t bits = 0; bits < 0x7f800000u; bits += 61) {
            float x = std::bit_cast<float>(bits | sign);
            if (x < -104.0f || x > 89.0f) continue;
            float expected = std::exp(x);
            if (std::isinf(expected)) continue;  // checked below
            std::int64_t d = ulps(xg::detail::fast_exp(x), expected);
            if (d > worst) worst = d, worst_at = x;
            ++checked;
        }
    }
    INFO("worst at x = ", worst_at);
    CHECK(checked > 30'000'000);
    CHECK(worst <= 1);
}

TEST_CASE("fast_exp gives std::exp's special values") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(xg::detail::fast_exp(0.0f) == 1.0f);
    CHECK(xg::detail::fast_exp(-0.0f) == 1.0f);
    CHECK(xg::detail::fast_exp(inf) == inf);
    CHECK(xg::detail::fast_exp(-inf) == 0.0f);
    CHECK(xg::detail::fast_exp(88.73f) == inf);  // just above ln(FLT_MAX)
    CHECK(xg::detail::fast_exp(1000.0f) == inf);
    CHECK(xg::detail::fast_exp(-1000.0f) == 0.0f);
    CHECK(xg::detail::fast_exp(-104.0f) == 0.0f);
    CHECK(xg::detail::fast_exp(-103.9f) == std::exp(-103.9f));  // the smallest subnormal
    CHECK(std::isnan(xg::detail::fast_exp(std::numeric_limits<float>::quiet_NaN())));
    CHECK(std::isnan(xg::detail::fast_exp(-std::numeric_limits<float>::quiet_NaN())));
    CHECK(xg::detail::fast_exp(1.0) == std::exp(1.0));  // double goes to libm
}

TEST_CASE("fast_erf is within 1 ulp of std::erf, and keeps its special values") {
    // Up to 5: erf is 1 in float from 3.92 on.
    const std::pair<double, float> sweep =
        worst_ulps([](float x) { return xg::detail::fast_erf(x); },
                   [](float x) { return double(std::erf(x)); }, 0x40a00000u);
    const double worst =
        sweep.first;  // plain names: INFO's lambda cannot capture bindings in clang 14
    const float worst_at = sweep.second;
    INFO("worst at x = ", worst_at);
    CHECK(worst <= 1.0);

    const float inf = std::numeric_limits<float>::infinity();
    CHECK(xg::detail::fast_erf(inf) == 1.0f);
    CHECK(xg::detail::fast_erf(-inf) == -1.0f);
    CHECK(xg::detail::fast_erf(100.0f) == 1.0f);
    CHECK(std::signbit(xg::detail::fast_erf(-0.0f)));
    CHECK(std::isnan(xg::detail::fast_erf(std::numeric_limits<float>::quiet_NaN())));
    CHECK(xg::detail::fast_erf(0.5) == std::erf(0.5));  // double goes to libm
}

TEST_CASE("fast_erf_gauss gives fast_erf's erf and e^(-x^2) as exactly as x^2 rounds") {
    // x^2 rounded to float is off by up to 2^-24 x^2, which moves e^(-x^2) by
    // as much relatively: up to x^2 of its ulps. fast_exp adds one. Up to 10.5,
    // past which e^(-x^2) is 0 in float.
    double worst = 0;
    float worst_at = 0;
    long other_erf = 0;  // counted, not checked each time: 14 million inputs
    for (std::uint32_t bits = 0; bits < 0x41280000u; bits += 151) {
        for (float x : {std::bit_cast<float>(bits), -std::bit_cast<float>(bits)}) {
            const auto [erf, gauss] = xg::detail::fast_erf_gauss(x);
            other_erf += std::bit_cast<std::uint32_t>(erf) !=
                         std::bit_cast<std::uint32_t>(xg::detail::fast_erf(x));
            const double expected = std::exp(-double(x) * double(x));
            const float rounded = float(expected);
            const double ulp = std::max(std::abs(std::nextafter(rounded, 2.0f) - rounded), 1e-45f);
            const double excess = std::abs(gauss - expected) / ulp - double(x) * double(x);
            if (excess > worst) worst = excess, worst_at = x;
        }
    }
    INFO("worst at x = ", worst_at);
    CHECK(worst <= 2.0);
    CHECK(other_erf == 0);

    const float inf = std::numeric_limits<float>::infinity();
    CHECK(xg::detail::fast_erf_gauss(0.0f).gauss == 1.0f);
    CHECK(xg::detail::fast_erf_gauss(inf).gauss == 0.0f);
    CHECK(xg::detail::fast_erf_gauss(-inf).gauss == 0.0f);
    CHECK(std::isnan(xg::detail::fast_erf_gauss(std::numeric_limits<float>::quiet_NaN()).gauss));
    const auto in_double = xg::detail::fast_erf_gauss(0.5);  // double goes to libm
    CHECK(in_double.erf == std::erf(0.5));
    CHECK(in_double.gauss == std::exp(-0.25));
}

TEST_CASE("fast_tanh is within 1.2 ulp of the exact tanh, and keeps its special values") {
    // Against tanh in double: glibc's float tanh is itself up to 2.2 ulp off
    // over this sweep. Up to 10: tanh is 1 in float from 9.02 on.
    const std::pair<double, float> sweep =
        worst_ulps([](float x) { return xg::detail::fast_tanh(x); },
                   [](float x) { return std::tanh(double(x)); }, 0x41200000u);
    const double worst =
        sweep.first;  // plain names: INFO's lambda cannot capture bindings in clang 14
    const float worst_at = sweep.second;
    INFO("worst at x = ", worst_at, ": ", worst, " ulp");
    CHECK(worst <= 1.2);

    const float inf = std::numeric_limits<float>::infinity();
    CHECK(xg::detail::fast_tanh(inf) == 1.0f);
    CHECK(xg::detail::fast_tanh(-inf) == -1.0f);
    CHECK(xg::detail::fast_tanh(100.0f) == 1.0f);
    CHECK(xg::detail::fast_tanh(9.5f) == std::tanh(9.5f));
    CHECK(std::signbit(xg::detail::fast_tanh(-0.0f)));
    CHECK(std::isnan(xg::detail::fast_tanh(std::numeric_limits<float>::quiet_NaN())));
    CHECK(xg::detail::fast_tanh(0.5) == std::tanh(0.5));  // double goes to libm
}

}  // namespace core_test_vec_math
