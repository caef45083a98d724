// Dropout's mask, shared by the dropout op, the fused feed-forward op and
// attention's weights, so they draw the same stream: element i of the mask for `key` survives when
// 32 bits of a hash of (key, i / 2) (the low half for even i, the high half for odd) are at least
// p * 2^32. Counter-based, so any slice of the mask can be made on its own, in any order.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/parallel.hpp"
#include "xgrad/tensor.hpp"

namespace xg::detail {

std::uint64_t dropout_threshold(double p);

// keep[j] = 1 where element first + j survives, for j < n.
void keep_mask(std::uint64_t key, std::size_t first, std::size_t n, std::uint64_t threshold,
               std::uint8_t* keep);

// keep_mask's two loops (dropout_mask.cpp), for tests: the compiler's clones,
// and the AVX2 loop by hand (false, having done nothing, on a CPU without AVX2).
void keep_mask_clones(std::uint64_t key, std::size_t first, std::size_t n, std::uint64_t threshold,
                      std::uint8_t* keep);
bool keep_mask_avx2(std::uint64_t key, std::size_t first, std::size_t n, std::uint64_t threshold,
                    std::uint8_t* keep);

// The dropout mask of one call: its key and threshold, or none. Backward makes
// the mask again from these instead of keeping a byte per element.
struct Mask {
    bool active;
    std::uint64_t key, threshold;
};

// x times an active mask (kept elements times scale, the rest 0) as an op
// with history: dropout with a given mask (core/ops/elementwise.cpp).
Tensor masked_scale(const Tensor& x, const Mask& mask, double scale);

// f(i, count, keep) over elements [first, first + n) of the mask in slices, i
// counting from first, keep pointing at the slice's mask bytes (null without
// dropout), made on the stack as needed. Slices run on xg::get_num_threads()
// threads (for_chunks), so f must write only its own slice's elements.
template <class F>
void in_mask_slices(const Mask& mask, std::size_t first, std::size_t n, const F& f) {
    for_chunks(n, [&](std::size_t begin, std::size_t count) {
        if (!mask.active) return f(begin, count, static_cast<const std::uint8_t*>(nullptr));
        std::array<std::uint8_t, 4096> keep;
        for (std::size_t i = begin; i < begin + count; i += keep.size()) {
            const std::size_t m = std::min(keep.size(), begin + count - i);
            keep_mask(mask.key, first + i, m, mask.threshold, keep.data());
            f(i, m, static_cast<const std::uint8_t*>(keep.data()));
        }
    });
}
template <class F>
void in_mask_slices(const Mask& mask, std::size_t n, const F& f) {
    in_mask_slices(mask, 0, n, f);
}

// out = in * (kept ? scale : 0) over elements [first, first + n) of an active
// mask: dropout's forward on x, and its backward on the gradient. in may be out.
template <class T>
void apply_dropout(const Mask& mask, T scale, std::size_t first, const T* in, T* out,
                   std::size_t n) {
    in_mask_slices(mask, first, n, [=](std::size_t i, std::size_t m, const std::uint8_t* keep) {
        const T s = scale;  // a local: GCC does not vectorise if the stores may alias it
        const T* src = in + i;
        T* dst = out + i;
        XG_IVDEP
        for (std::size_t j = 0; j < m; ++j) dst[j] = src[j] * (keep[j] ? s : T(0));
    });
}

}  // namespace xg::detail
