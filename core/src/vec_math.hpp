// exp and erf in a form the compiler vectorises. std::exp and std::erf are
// calls into libm, which GCC only vectorises under -ffast-math (glibc declares
// its SIMD variants for fast-math builds only); in SiLU, sigmoid and GELU that
// scalar call cost more than the rest of the kernel.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace xg::detail {

// e^x for float: x = n ln2 + r with |r| <= ln2 / 2, e^r from its Taylor series
// to r^7 (the first omitted term is below 2^-26 there), times 2^n built in the
// exponent bits. Within 1 ulp of std::exp: tests/core/test_vec_math.cpp checks
// every float in [-104, 89]. Overflow gives inf, underflow 0 or a subnormal, and
// NaN stays NaN, as with std::exp. No branches and no float-to-int conversion of
// a NaN, so every line vectorises and nothing is undefined.
inline float fast_exp(float x) {
    // Outside [-104, 89] e^x is 0 or inf in float; clamping keeps 2^n in range.
    // NaN fails both comparisons and flows through the arithmetic untouched.
    float c = x < -104.0f ? -104.0f : x;
    c = c > 89.0f ? 89.0f : c;
    // Adding 1.5 * 2^23 rounds to an integer, which then sits in the low mantissa bits.
    constexpr float kShifter = 12582912.0f;
    const float shifted = c * 1.44269504088896341f + kShifter;
    const float n = shifted - kShifter;
    const auto ni = static_cast<std::int32_t>(std::bit_cast<std::uint32_t>(shifted) -
                                              std::bit_cast<std::uint32_t>(kShifter));
    // ln2 split in two (Cody and Waite) so n * ln2_hi is exact.
    float r = c - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // 2^n as two factors, each a normal float even for n = -150 or 128.
    const std::int32_t n1 = ni >> 1, n2 = ni - n1;
    const float s1 = std::bit_cast<float>(static_cast<std::uint32_t>(n1 + 127) << 23);
    const float s2 = std::bit_cast<float>(static_cast<std::uint32_t>(n2 + 127) << 23);
    return p * s1 * s2;
}

// erf(x) and e^(-x^2), the Gaussian that erf integrates, together: the erf
// computes the Gaussian on its way, and GELU's gradient needs both.
template <class T>
struct ErfGauss {
    T erf, gauss;
};

// erf for float, within 2 ulp of std::erf (tests/core/test_vec_math.cpp):
// x + x A(x^2) below 0.921875, else 1 - e^(-x^2) B(x - 2), B fitted to
// erfc(x) e^(x^2). scripts/fit_erf.py fits both polynomials and prints them.
// Both branches are computed and one selected, so the loop stays vectorised.
inline ErfGauss<float> fast_erf_gauss(float x) {
    constexpr float kSmall[] = {0.128379166f,   -0.376126349f,    0.112837136f,   -0.0268602408f,
                                0.00520283589f, -0.000816078391f, 8.43876842e-05f};
    constexpr float kLarge[] = {0.255395681f,     -0.106796414f,    0.0418024808f,
                                -0.0154610695f,   0.00544248335f,   -0.00183112023f,
                                0.000588636845f,  -0.000183719327f, 5.88164985e-05f,
                                -1.84289438e-05f, 4.27348323e-06f,  -4.70135234e-07f};
    const float a = std::fabs(x);
    const float a2 = a * a;
    float p = kSmall[6];
    for (int k = 5; k >= 0; --k) p = p * a2 + kSmall[k];
    const float small = a + a * p;
    // Past 3.95 erf rounds to 1, as does 1 - e^(-x^2) B(1.95) there; clamping
    // keeps B finite (NaN stays NaN).
    const float u = (a > 3.95f ? 3.95f : a) - 2.0f;
    float q = kLarge[11];
    for (int k = 10; k >= 0; --k) q = q * u + kLarge[k];
    const float gauss = fast_exp(-a2);
    const float large = 1.0f - gauss * q;
    return {std::copysign(a < 0.921875f ? small : large, x), gauss};
}

inline float fast_erf(float x) { return fast_erf_gauss(x).erf; }

// tanh for float, within 1.2 ulp of the exact value (glibc's tanhf: 2.2;
// tests/core/test_vec_math.cpp):
// x + x^3 A(x^2) below 1, else 1 - 2 / (e^(2x) + 1), which is accurate there
// since the result is at least tanh(1). scripts/fit_tanh.py fits A and prints it.
// Both branches are computed and one selected, so the loop stays vectorised.
inline float fast_tanh(float x) {
    constexpr float kSmall[] = {-0.333332986f,   0.133323804f,  -0.0538817607f,  0.0214916933f,
                                -0.00795282517f, 0.0023058576f, -0.000359643658f};
    const float a = std::fabs(x);
    const float a2 = a * a;
    float p = kSmall[6];
    for (int k = 5; k >= 0; --k) p = p * a2 + kSmall[k];
    const float small = a + a * a2 * p;
    // Past 9.02 tanh rounds to 1; clamping keeps e^(2x) finite (NaN stays NaN).
    const float c = a > 9.5f ? 9.5f : a;
    const float large = 1.0f - 2.0f / (fast_exp(2.0f * c) + 1.0f);
    return std::copysign(a < 1.0f ? small : large, x);
}

// Double keeps libm: gradcheck and the float64 reference paths rely on it, and
// nothing hot runs in double.
inline double fast_exp(double x) { return std::exp(x); }
inline double fast_erf(double x) { return std::erf(x); }
inline ErfGauss<double> fast_erf_gauss(double x) { return {std::erf(x), std::exp(-x * x)}; }
inline double fast_tanh(double x) { return std::tanh(x); }

}  // namespace xg::detail
