// xg::parallel_for, as at::parallel_for: splits [begin, end) into contiguous
// chunks of at least grain_size elements, one per thread, and runs
// f(chunk_begin, chunk_end) on xg::get_num_threads() threads, the caller's one
// of them. Below two grains, on one thread, inside another parallel_for or
// while another thread runs one, it is a plain call f(begin, end). f must not
// throw.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace xg {

namespace detail {
using ChunkFn = void (*)(const void* f, std::int64_t begin, std::int64_t end);
// parallel_for with chunk boundaries at multiples of `align` from begin.
void parallel_run(std::int64_t begin, std::int64_t end, std::int64_t grain_size, std::int64_t align,
                  const void* f, ChunkFn run);
template <class F>
void parallel_run(std::int64_t begin, std::int64_t end, std::int64_t grain_size, std::int64_t align,
                  const F& f) {
    parallel_run(
        begin, end, grain_size, align, &f,
        [](const void* fn, std::int64_t b, std::int64_t e) { (*static_cast<const F*>(fn))(b, e); });
}
}  // namespace detail

template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain_size, const F& f) {
    detail::parallel_run(begin, end, grain_size, 1, f);
}

// The library's loops split when they have at least this many elements: a
// chunk of 32K floats takes ~10 us, several times what waking a thread costs.
inline constexpr std::int64_t kElementwiseGrain = 32 * 1024;

namespace detail {

// f(first, count) over [0, n) in chunks of at least kElementwiseGrain, for the
// library's loops whose element i reads and writes only at index i. Chunk
// boundaries fall on multiples of 64 elements, so a vectorised loop over a
// chunk has the same lanes and the same scalar tail as one over the whole
// range: the result is the same bits on any number of threads.
template <class F>
void for_chunks(std::size_t n, const F& f) {
    parallel_run(0, static_cast<std::int64_t>(n), kElementwiseGrain, 64,
                 [&f](std::int64_t begin, std::int64_t end) {
                     f(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
                 });
}

// f(first, count) over [0, size) in whole rows of n elements (first and count
// are multiples of n), for loops that compute each row on its own: rows split
// across threads once there are kElementwiseGrain elements, each row computed
// as on one thread.
template <class F>
void for_rows(std::size_t size, std::size_t n, const F& f) {
    if (n == 0 || size == 0) return f(std::size_t(0), size);
    const auto rows = static_cast<std::int64_t>(size / n);
    const auto grain = std::max<std::int64_t>(1, kElementwiseGrain / static_cast<std::int64_t>(n));
    parallel_run(0, rows, grain, 1, [&](std::int64_t begin, std::int64_t end) {
        f(static_cast<std::size_t>(begin) * n, static_cast<std::size_t>(end - begin) * n);
    });
}

// f(first, count) over the columns [0, width) of a [rows, width] array, for
// loops that run down each column on its own (a sum over rows, column by
// column): columns split across threads in multiples of 64 once there are
// kElementwiseGrain elements, each column's rows taken in order as on one thread.
template <class F>
void for_columns(std::size_t rows, std::size_t width, const F& f) {
    const auto grain = std::max<std::int64_t>(
        64, kElementwiseGrain / static_cast<std::int64_t>(std::max<std::size_t>(rows, 1)));
    parallel_run(0, static_cast<std::int64_t>(width), grain, 64,
                 [&f](std::int64_t begin, std::int64_t end) {
                     f(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
                 });
}

// f(r) for each of `rows` rows of n elements, rows split as for_rows.
template <class F>
void parallel_rows(std::size_t rows, std::size_t n, const F& f) {
    if (n == 0) {
        for (std::size_t r = 0; r < rows; ++r) f(r);
        return;
    }
    for_rows(rows * n, n, [&](std::size_t first, std::size_t count) {
        for (std::size_t r = first / n; r < (first + count) / n; ++r) f(r);
    });
}

}  // namespace detail

}  // namespace xg
