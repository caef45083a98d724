// Integer and bool tensors in the elementwise ops (core/ops/integer.cpp): they
// cannot require grad, so these are plain loops that record no node.
#pragma once

#include <cstdint>
#include <vector>

#include "internal.hpp"

namespace xg::detail {

// f(v) for each value of an int64 tensor, as a new int64 tensor.
template <class F>
Tensor map_integers(const Tensor& x, F f) {
    const auto& in = x.data<std::int64_t>();
    auto out = xt::xarray<std::int64_t>::from_shape(in.shape());
    for (std::size_t i = 0; i < in.size(); ++i) out.data()[i] = f(in.data()[i]);
    return wrap(std::move(out));
}

// x's values repeated out to `shape` (NumPy broadcasting), flat, by a raw loop:
// a broadcast dim advances x by nothing.
std::vector<std::int64_t> expanded(const xt::xarray<std::int64_t>& x, const Shape& shape);

// PyTorch refuses `-` with a bool operand: a mask is inverted with logical_not.
void check_not_bool(const Tensor& t);

}  // namespace xg::detail
