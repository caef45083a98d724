// The two 16-bit floating-point element types, as PyTorch's c10::Half and
// c10::BFloat16: storage formats whose arithmetic happens in float32. Each
// holds its bits; reading one gives the float it stands for exactly, and
// making one from a float rounds to nearest, ties to even.
#pragma once

#include <bit>
#include <cstdint>

namespace xg {

// IEEE 754 binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
struct Half {
    std::uint16_t bits = 0;

    Half() = default;
    explicit Half(float value) : bits(from_float(value)) {}
    static Half from_bits(std::uint16_t bits) {
        Half h;
        h.bits = bits;
        return h;
    }
    operator float() const { return to_float(bits); }  // exact: every half is a float

    static std::uint16_t from_float(float value) {
        const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
        const std::uint32_t sign = (x >> 16) & 0x8000u, magnitude = x & 0x7FFFFFFFu;
        if (magnitude > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u);  // NaN
        // 65520 is halfway between the largest half (65504) and 2^16: ties go
        // to the even side, which is infinity.
        if (magnitude >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);
        if (magnitude < 0x38800000u) {
            // Below 2^-14 a half is a multiple of 2^-24. Adding 0.5f, whose
            // last mantissa bit is worth 2^-24, rounds to that grid (to
            // nearest even, as the FPU does) and leaves the multiple in the
            // low mantissa bits.
            const float shifted = std::bit_cast<float>(magnitude) + 0.5f;
            return static_cast<std::uint16_t>(
                sign | (std::bit_cast<std::uint32_t>(shifted) - 0x3F000000u));
        }
        // Rebias the exponent (127 -> 15) and drop 13 mantissa bits, rounding
        // to nearest even: add just under half, plus one if the kept part is odd.
        const std::uint32_t odd = (magnitude >> 13) & 1u;
        return static_cast<std::uint16_t>(sign | ((magnitude - 0x38000000u + 0xFFFu + odd) >> 13));
    }

    static float to_float(std::uint16_t h) {
        const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
        const std::uint32_t exponent = (h >> 10) & 0x1Fu, mantissa = h & 0x3FFu;
        if (exponent == 0x1F) {
            // Infinity, or NaN with its payload; a NaN comes back quiet, as
            // PyTorch's conversion (an arithmetic one) makes it.
            const std::uint32_t quiet = mantissa != 0 ? 0x400000u : 0u;
            return std::bit_cast<float>(sign | 0x7F800000u | quiet | (mantissa << 13));
        }
        if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
            const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
            return sign ? -magnitude : magnitude;
        }
        return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }
};

// bfloat16: the top half of a float32 (8 exponent bits, 7 mantissa bits).
struct BFloat16 {
    std::uint16_t bits = 0;

    BFloat16() = default;
    explicit BFloat16(float value) : bits(from_float(value)) {}
    static BFloat16 from_bits(std::uint16_t bits) {
        BFloat16 b;
        b.bits = bits;
        return b;
    }
    operator float() const { return to_float(bits); }

    // Rounds to nearest even; a NaN becomes PyTorch's canonical 0x7FC0.
    static std::uint16_t from_float(float value) {
        const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
        if ((x & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;
        const std::uint32_t odd = (x >> 16) & 1u;
        return static_cast<std::uint16_t>((x + 0x7FFFu + odd) >> 16);
    }
    static float to_float(std::uint16_t b) {
        return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
    }
};

}  // namespace xg
