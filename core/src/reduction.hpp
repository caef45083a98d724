// Reductions over a set of dims, shared by the reduce family (core/ops/reduce.cpp,
// amax_norm.cpp): the dims a reduction takes, and where each input entry goes.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

#include "internal.hpp"

namespace xg::detail {

// Sorted, de-duplicated, non-negative axes; an empty list means every axis.
inline ArrayShape normalize_dims(const std::vector<int>& dims, std::size_t ndim, const char* op) {
    ArrayShape axes;
    for (int d : dims) axes.push_back(detail::normalize_dim(d, ndim, op));
    if (dims.empty()) {
        for (std::size_t i = 0; i < ndim; ++i) axes.push_back(i);
    }
    std::sort(axes.begin(), axes.end());
    check(std::adjacent_find(axes.begin(), axes.end()) == axes.end(),
          "{}: expected each dim at most once (got {})", op, fmt::join(dims, ", "));
    if (ndim == 0) axes.clear();  // a 0-d tensor takes dim 0 or -1 but has no axis to reduce
    return axes;
}

// A reduction over some axes: the output's shape, and where each input entry
// goes. Inline up to rank 4, so a reduction and the closure that keeps it allocate nothing.
struct Reduction {
    ArrayShape in_shape, out_shape;  // out_shape drops the reduced dims unless keepdim
    DimFlags reduced;                // per input dim
    std::size_t out_numel = 1;

    // f(i, o) for every input offset i and the output offset o it reduces into
    // (the output laid out as the input with its reduced dims of size 1).
    template <class F>
    void for_each(F f) const {
        std::size_t numel = 1;
        for (auto extent : in_shape) numel *= extent;
        if (numel == 0) return;
        if (in_shape.empty()) return f(std::size_t{0}, std::size_t{0});
        const ArrayShape stride = detail::kept_strides(in_shape, reduced);
        const std::size_t last = in_shape.back(), step = stride.back();
        detail::for_each_row(in_shape, stride, [&](std::size_t start, std::size_t offset) {
            for (std::size_t k = 0; k < last; ++k) f(start + k, offset + k * step);
        });
    }
};

inline Reduction make_reduction(std::span<const std::size_t> shape,
                                std::span<const std::size_t> axes, bool keepdim) {
    Reduction r{ArrayShape(shape.begin(), shape.end()), {}, DimFlags(shape.size(), false)};
    for (auto axis : axes) r.reduced[axis] = true;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (!r.reduced[d]) r.out_numel *= shape[d];
        if (!r.reduced[d] || keepdim) r.out_shape.push_back(r.reduced[d] ? 1 : shape[d]);
    }
    return r;
}

}  // namespace xg::detail
