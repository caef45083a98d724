// xg::parallel_for, as at::parallel_for: splits [begin, end) into contiguous
// chunks of at least grain_size elements and runs f(chunk_begin, chunk_end) on
// xg::get_num_threads() threads, the caller's one of them. Below grain_size, on
// one thread, inside another parallel_for or while another thread runs one, it
// is a plain call f(begin, end). f must not throw.
//
// Chunk boundaries are multiples of 64 elements from `begin`, so a vectorised
// loop over a chunk sees the same lanes and the same scalar tail as one over the
// whole range: results do not depend on the number of threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xg {

namespace detail {
using ChunkFn = void (*)(const void* f, std::int64_t begin, std::int64_t end);
void parallel_run(std::int64_t begin, std::int64_t end, std::int64_t grain_size, const void* f,
                  ChunkFn run);
}  // namespace detail

template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain_size, const F& f) {
    detail::parallel_run(
        begin, end, grain_size, &f,
        [](const void* fn, std::int64_t b, std::int64_t e) { (*static_cast<const F*>(fn))(b, e); });
}

// Elementwise kernels split when they have at least this many elements: a
// chunk of 32K floats takes ~10 us, several times what waking a thread costs.
inline constexpr std::int64_t kElementwiseGrain = 32 * 1024;

namespace detail {

// f(first, count) over [0, n) in chunks of at least kElementwiseGrain, for the
// library's loops whose element i reads and writes only at index i: each chunk
// runs the same code on its own elements, so the result is the same bits on
// any number of threads.
template <class F>
void for_chunks(std::size_t n, const F& f) {
    parallel_for(0, static_cast<std::int64_t>(n), kElementwiseGrain,
                 [&f](std::int64_t begin, std::int64_t end) {
                     f(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin));
                 });
}

}  // namespace detail

}  // namespace xg
