// Sums over some axes and their gradient, spreading back: the reductions
// behind sum and mean, and a broadcast operand's gradient (internal.hpp).
//
// Two shapes of reduction are the common ones, a bias's gradient ([rows, n]
// summed over rows) and a sum over trailing dims; each of those is split
// across threads (for_columns, parallel_rows), every output element summed in the same
// order as the general loop would: the same bits on any number of threads.
#include <algorithm>
#include <cstdint>
#include <optional>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/parallel.hpp"

namespace xg::detail {

namespace {

// The array as [outer, inner] with the reduced dims all leading or all
// trailing; nullopt for any other pattern, or nothing reduced or kept.
struct Blocks {
    bool leading_reduced;
    std::size_t outer, inner;
};
std::optional<Blocks> two_blocks(std::span<const std::size_t> shape,
                                 std::span<const bool> reduced) {
    std::size_t k = 0;
    while (k < shape.size() && reduced[k] == reduced[0]) ++k;
    if (k == 0 || k == shape.size()) return std::nullopt;
    for (std::size_t d = k; d < shape.size(); ++d) {
        if (reduced[d] == reduced[0]) return std::nullopt;
    }
    Blocks b{reduced[0], 1, 1};
    for (std::size_t d = 0; d < shape.size(); ++d) (d < k ? b.outer : b.inner) *= shape[d];
    return b;
}

// out (zeroed) += the reduction of src, for the two-block patterns: columns
// across threads when the leading dims are reduced (row by row, as the
// general loop adds them), rows when the trailing ones are (each a lane sum
// per run of `last` elements, the runs in order).
template <class T>
void sum_blocks(const T* src, T* dst, const Blocks& b, std::size_t last) {
    if (b.leading_reduced) {
        for_columns(b.outer, b.inner, [=](std::size_t first, std::size_t count) {
            add_columns(src + first, b.outer, b.inner, dst + first, count);
        });
        return;
    }
    parallel_rows(b.outer, b.inner, [=](std::size_t o) {
        for (std::size_t s = 0; s < b.inner; s += last) {
            const T* row = src + o * b.inner + s;
            dst[o] += lane_sum<T>(last, [row](std::size_t j) { return row[j]; });
        }
    });
}

// dst [outer, inner] = src spread over the reduced block, times scale; each
// element written once, rows across threads.
template <class T>
void spread_blocks(const T* src, T* dst, const Blocks& b, T scale) {
    parallel_rows(b.outer, b.inner, [=](std::size_t o) {
        T* row = dst + o * b.inner;
        if (b.leading_reduced) {
            for (std::size_t j = 0; j < b.inner; ++j) row[j] = src[j] * scale;
        } else {
            const T value = src[o] * scale;
            for (std::size_t j = 0; j < b.inner; ++j) row[j] = value;
        }
    });
}

}  // namespace

ArrayShape kept_strides(std::span<const std::size_t> shape, std::span<const bool> reduced) {
    ArrayShape stride(shape.size(), 0);
    for (std::size_t d = shape.size(), step = 1; d-- > 0;) {
        if (!reduced[d]) {
            stride[d] = step;
            step *= shape[d];
        }
    }
    return stride;
}

template <class T>
xt::xarray<T> sum_axes(const xt::xarray<T>& values, std::span<const bool> reduced) {
    const std::span<const std::size_t> shape(values.shape().begin(), values.shape().end());
    if (shape.empty()) return values;
    ArrayShape out_shape(shape.begin(), shape.end());
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (reduced[d]) out_shape[d] = 1;
    }
    xt::xarray<T> out = empty_array<T>(out_shape);
    std::fill(out.begin(), out.end(), T(0));
    if (values.size() == 0) return out;
    if (auto blocks = two_blocks(shape, reduced)) {
        sum_blocks(values.data(), out.data(), *blocks, shape.back());
        return out;
    }
    const ArrayShape stride = kept_strides(shape, reduced);
    const std::size_t last = shape.back();
    const T* src = values.data();
    T* dst = out.data();
    for_each_row(shape, stride, [&](std::size_t start, std::size_t offset) {
        const T* row = src + start;
        if (stride.back() != 0) {
            for (std::size_t j = 0; j < last; ++j) dst[offset + j] += row[j];
        } else {
            dst[offset] += lane_sum<T>(last, [row](std::size_t j) { return row[j]; });
        }
    });
    return out;
}

template xt::xarray<float> sum_axes(const xt::xarray<float>&, std::span<const bool>);
template xt::xarray<double> sum_axes(const xt::xarray<double>&, std::span<const bool>);

template <class T>
xt::xarray<T> spread_axes(const xt::xarray<T>& summed, std::span<const std::size_t> shape,
                          std::span<const bool> reduced, T scale) {
    auto out = empty_array<T>(shape);
    if (out.size() == 0) return out;
    if (shape.empty()) {
        out.data()[0] = summed.data()[0] * scale;
        return out;
    }
    const T* src = summed.data();
    T* dst = out.data();
    if (auto blocks = two_blocks(shape, reduced)) {
        spread_blocks(src, dst, *blocks, scale);
        return out;
    }
    const ArrayShape stride = kept_strides(shape, reduced);
    const std::size_t last = shape.back();
    for_each_row(shape, stride, [&](std::size_t start, std::size_t offset) {
        T* row = dst + start;
        if (stride.back() != 0) {
            for (std::size_t j = 0; j < last; ++j) row[j] = src[offset + j] * scale;
        } else {
            const T value = src[offset] * scale;
            for (std::size_t j = 0; j < last; ++j) row[j] = value;
        }
    });
    return out;
}

template xt::xarray<float> spread_axes(const xt::xarray<float>&, std::span<const std::size_t>,
                                       std::span<const bool>, float);
template xt::xarray<double> spread_axes(const xt::xarray<double>&, std::span<const std::size_t>,
                                        std::span<const bool>, double);

}  // namespace xg::detail
