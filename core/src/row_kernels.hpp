// Loops over one contiguous row, shared by softmax, log_softmax, layer_norm, the
// sums and cross_entropy, and one down columns (sums over leading dims, a bias's
// gradient). Written so GCC vectorises them: sums keep sixteen independent
// partial sums (a fixed order, so the result does not depend on what the
// vectoriser does) instead of one serial chain, and exp is fast_exp.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>
#include <utility>

#include "vec_math.hpp"
#include "xgrad/parallel.hpp"
#include "xgrad/tensor.hpp"

namespace xg::detail {

// f(j) over [0, n) folded with op in sixteen lanes (j mod 16), starting from
// init, the lanes then folded pairwise: independent chains that GCC can
// vectorise, in an order fixed by the code alone.
template <class T, class F, class Op>
T lane_fold(std::size_t n, T init, F f, Op op) {
    constexpr std::size_t kLanes = 16;  // one AVX-512 register of floats (8 lanes measured slower)
    std::array<T, kLanes> part;
    part.fill(init);
    std::size_t j = 0;
    for (; j + kLanes <= n; j += kLanes) {
        for (std::size_t l = 0; l < kLanes; ++l) part[l] = op(part[l], f(j + l));
    }
    for (std::size_t l = 0; j < n; ++j, ++l) part[l] = op(part[l], f(j));
    for (std::size_t width = kLanes / 2; width > 0; width /= 2) {
        for (std::size_t l = 0; l < width; ++l) part[l] = op(part[l], part[l + width]);
    }
    return part[0];
}

template <class T, class F>
T lane_sum(std::size_t n, F f) {
    return lane_fold(n, T(0), f, [](T a, T b) { return a + b; });
}

// The sum over [0, n) in blocks whose size depends on n alone (at least
// kElementwiseGrain elements, at most 256 blocks): block_sum(first, count)
// returns one block's sum (lane_sum, so a fixed order), then the blocks' sums
// are added in order. The blocks split across threads, and the result is the
// same bits on any number of threads.
template <class T, class F>
T blocked_sum(std::size_t n, F block_sum) {
    constexpr std::size_t kMaxBlocks = 256;
    const std::size_t fair = ((n + kMaxBlocks - 1) / kMaxBlocks + 63) / 64 * 64;
    const std::size_t block = std::max(static_cast<std::size_t>(kElementwiseGrain), fair);
    const std::size_t blocks = (n + block - 1) / block;
    std::array<T, kMaxBlocks> part;
    parallel_for(0, static_cast<std::int64_t>(blocks), 1, [&](std::int64_t b, std::int64_t e) {
        for (auto k = static_cast<std::size_t>(b); k < static_cast<std::size_t>(e); ++k) {
            const std::size_t first = k * block;
            part[k] = block_sum(first, std::min(block, n - first));
        }
    });
    T total = T(0);
    for (std::size_t k = 0; k < blocks; ++k) total += part[k];
    return total;
}

// dst[j] += the sum down column j of src, a [rows, stride] array, for the
// columns [0, count) (src and dst point at the first), rows added in order.
// Each pass over dst adds four rows: per column the same additions in the same
// order as one row at a time, so the same bits, with a quarter of the passes
// and four rows streaming at once.
template <class T>
void add_columns(const T* src, std::size_t rows, std::size_t stride, T* dst, std::size_t count) {
    std::size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const T* a = src + r * stride;
        const T *b = a + stride, *c = b + stride, *d = c + stride;
        for (std::size_t j = 0; j < count; ++j) dst[j] = (((dst[j] + a[j]) + b[j]) + c[j]) + d[j];
    }
    for (; r < rows; ++r) {
        const T* a = src + r * stride;
        for (std::size_t j = 0; j < count; ++j) dst[j] += a[j];
    }
}

// The largest x[j]; NaNs are skipped, as they are by a serial std::max.
template <class T>
T row_max(const T* x, std::size_t n) {
    return lane_fold(
        n, -std::numeric_limits<T>::infinity(), [x](std::size_t j) { return x[j]; },
        [](T a, T b) { return std::max(a, b); });
}

// e[j] = exp(x[j] - max(x)); returns {max(x), sum of e}. e may be x.
template <class T>
std::pair<T, T> exp_shifted(const T* x, T* e, std::size_t n) {
    const T top = row_max(x, n);
    for (std::size_t j = 0; j < n; ++j) e[j] = fast_exp(x[j] - top);
    return {top, lane_sum<T>(n, [e](std::size_t j) { return e[j]; })};
}

// log_softmax of each n-long row of x [size / n, n] into y, as the log_softmax
// op computes it (core/ops/reduce.cpp; AVX2 and AVX-512 clones for float).
template <class T>
void log_softmax_rows(const T* x, T* y, std::size_t size, std::size_t n);
// softmax of each row likewise, and its gradient d = y (g - sum(g y)); d may be g.
template <class T>
void softmax_rows(const T* x, T* y, std::size_t size, std::size_t n);
template <class T>
void softmax_rows_grad(const T* y, const T* g, T* d, std::size_t size, std::size_t n);

// var and logsumexp of each n-long row of x (its trailing dims flattened), one
// value per row in a [size / n] tensor, each one node (core/ops/row_reductions.cpp):
// reduce.cpp's path for reductions over trailing dims.
Tensor var_rows(const Tensor& x, std::size_t n, double correction);
Tensor logsumexp_rows(const Tensor& x, std::size_t n);

}  // namespace xg::detail
