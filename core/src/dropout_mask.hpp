// Dropout's mask, shared by the dropout op and the fused feed-forward op so
// both draw the same stream: element i of the mask for `key` survives when a
// 53-bit hash of (key, i) is at least p * 2^53. Counter-based, so any slice of
// the mask can be made on its own, in any order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xg::detail {

std::uint64_t dropout_threshold(double p);

// keep[j] = 1 where element first + j survives, for j < n.
void keep_mask(std::uint64_t key, std::size_t first, std::size_t n, std::uint64_t threshold,
               std::uint8_t* keep);

}  // namespace xg::detail
