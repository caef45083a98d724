// fast_exp (core/src/vec_math.hpp) against libm's expf: at most 1 ulp apart
// over a sweep of the whole range where exp is neither 0 nor inf in float, and
// the same special values.
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>

#include <doctest/doctest.h>

#include "../../core/src/vec_math.hpp"

namespace {

// Distance in units in the last place between two finite floats of one sign.
std::int64_t ulps(float a, float b) {
    return std::abs(std::int64_t(std::bit_cast<std::int32_t>(a)) -
                    std::int64_t(std::bit_cast<std::int32_t>(b)));
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
