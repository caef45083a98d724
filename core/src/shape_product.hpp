// The number of entries a shape holds, for the shape ops (core/ops/shape.cpp,
// rearrange.cpp) that size their copies by it.
#pragma once

#include <cstddef>
#include <functional>
#include <numeric>
#include <span>

#include "xgrad/tensor.hpp"

namespace xg::detail {

inline std::size_t product(std::span<const std::size_t> shape) {
    return std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>());
}

}  // namespace xg::detail
