// A caching allocator for large tensor buffers. A training step frees and then
// reallocates the same large arrays every step; glibc hands allocations above
// its mmap threshold (at most 32 MiB) back to the kernel, so each step paid for
// zero-filled pages again (~10^5 page faults per step at d_ff 4096). Storages of
// at least kMinBytes go back to this cache instead, and ops take their outputs
// from it with empty_tensor or empty_array: same element count and dtype,
// contents undefined.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <memory>

#include "internal.hpp"
#include "xgrad/parallel.hpp"

namespace xg::detail {

inline constexpr std::size_t kMinCachedBytes = 64 * 1024;

// An uninitialised array of `shape`: a cached buffer of the same size if
// there is one, else a fresh allocation (like xt::xarray<T>::from_shape).
// Arrays under kMinCachedBytes come from this thread's own small cache: no
// lock, and a training step's small arrays (bias gradients, losses) stop
// costing a heap allocation each.
template <class T>
xt::xarray<T> cached_array(const ArrayShape& shape);

// An uninitialised tensor of `shape`, without history: a cached storage kept
// whole (its array only takes the shape), so an op's output costs no moves of
// the array and no new storage; else a fresh allocation.
template <class T>
Tensor empty_tensor(const ArrayShape& shape);

// An uninitialised array of any shape, from the cache that fits its size.
template <class T, class S>
xt::xarray<T> empty_array(const S& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    ArrayShape s(shape.begin(), shape.end());
    if (n == 0) return xt::xarray<T>::from_shape(s);
    return cached_array<T>(s);
}
template <class T>
xt::xarray<T> empty_array(std::initializer_list<std::size_t> shape) {
    return empty_array<T, std::initializer_list<std::size_t>>(shape);
}

// A buffer of n elements that an op uses only inside itself. It goes back to
// the cache when dropped, as a tensor's storage does; a plain empty_array
// would be freed, and every call would allocate it again.
template <class T>
class Scratch {
public:
    explicit Scratch(std::size_t n) : holder_(wrap(empty_array<T>({n}))) {}
    T* data() const { return holder_.data<T>().data(); }

private:
    Tensor holder_;
};

// The same, zero-filled by a plain fill (xt::zeros assigns through an
// expression), in chunks across threads.
template <class T, class S>
xt::xarray<T> zeros_array(const S& shape) {
    auto out = empty_array<T>(shape);
    T* p = out.data();
    for_chunks(out.size(),
               [=](std::size_t first, std::size_t count) { std::fill_n(p + first, count, T(0)); });
    return out;
}

// Bytes held by the cache now; clear_buffer_cache frees them all. The limit
// (XGRAD_BUFFER_CACHE_MB, default 512; 0 disables caching) bounds the total.
std::size_t buffer_cache_bytes();
void clear_buffer_cache();

// True when `t` is the only handle to its storage: grad_buffers.hpp and
// accumulate.hpp may then write over it.
bool sole_owner(const Tensor& t);

}  // namespace xg::detail
