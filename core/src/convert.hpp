// Element conversions between every dtype, with PyTorch's CPU results: the
// rounding, NaN, infinity and overflow rules of Tensor::to (convert.cpp).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "internal.hpp"

namespace xg::detail {

template <class T>
inline constexpr bool kSixteenBit = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// A float or double truncated towards zero into int64, or into int32 for the
// narrower integers, as x86's cvtt instructions do (PyTorch's static_cast):
// NaN and values out of range give the most negative value, where a plain
// cast would be undefined.
template <class I, class F>
I truncated(F value) {
    constexpr F low = static_cast<F>(std::numeric_limits<I>::min());  // -2^(n-1), exact
    if (!(value >= low && value < -low)) return std::numeric_limits<I>::min();
    return static_cast<I>(value);
}

// One element of type From as type To. Floats become 16-bit floats through
// float32 (a double is rounded twice, as c10::Half(double) does); floats
// become integers by truncation (int64 and uint8 through int64, the others
// through int32, then wrapping); integers wrap, as C++20 defines.
template <class To, class From>
To convert_element(From value) {
    if constexpr (std::is_same_v<To, From>) {
        return value;
    } else if constexpr (kSixteenBit<From>) {
        return convert_element<To>(static_cast<float>(value));
    } else if constexpr (kSixteenBit<To>) {
        return To(static_cast<float>(value));
    } else if constexpr (std::is_same_v<To, bool>) {
        return value != From(0);
    } else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<From>) {
        // uint8 goes through int64, as PyTorch 1.13 does: 2^32 + 1.0 is 1, not 0.
        if constexpr (sizeof(To) == 8 || std::is_same_v<To, std::uint8_t>)
            return static_cast<To>(truncated<std::int64_t>(value));
        return static_cast<To>(truncated<std::int32_t>(value));
    } else {
        return static_cast<To>(value);
    }
}

// How a NaN float32 becomes a bfloat16. Tensor::to goes through PyTorch's
// vectorised kernel, which writes 0xFFFF; an op's result is rounded by the
// scalar rule, 0x7FC0.
enum class NanRounding { Vectorised, Scalar };

// t's values as `dtype` (t itself when it has that dtype). Between floating
// dtypes it is differentiable: the gradient is converted back.
Tensor converted(const Tensor& t, Dtype dtype, NanRounding nan);

}  // namespace xg::detail
