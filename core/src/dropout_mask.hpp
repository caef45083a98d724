// Dropout's mask, shared by the dropout op and the fused feed-forward op so
// both draw the same stream: element i of the mask for `key` survives when a
// 53-bit hash of (key, i) is at least p * 2^53. Counter-based, so any slice of
// the mask can be made on its own, in any order.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace xg::detail {

std::uint64_t dropout_threshold(double p);

// keep[j] = 1 where element first + j survives, for j < n.
void keep_mask(std::uint64_t key, std::size_t first, std::size_t n, std::uint64_t threshold,
               std::uint8_t* keep);

// The dropout mask of one call: its key and threshold, or none. Backward makes
// the mask again from these instead of keeping a byte per element.
struct Mask {
    bool active;
    std::uint64_t key, threshold;
};

// f(first, count, keep) over [0, n) in slices, keep pointing at the slice's
// mask bytes (null without dropout), made on the stack as needed.
template <class F>
void in_mask_slices(const Mask& mask, std::size_t n, F&& f) {
    if (!mask.active) return f(std::size_t(0), n, static_cast<const std::uint8_t*>(nullptr));
    std::array<std::uint8_t, 4096> keep;
    for (std::size_t first = 0; first < n; first += keep.size()) {
        const std::size_t m = std::min(keep.size(), n - first);
        keep_mask(mask.key, first, m, mask.threshold, keep.data());
        f(first, m, static_cast<const std::uint8_t*>(keep.data()));
    }
}

}  // namespace xg::detail
