// core/src/dropout_mask.cpp: both of keep_mask's loops, the compiler's clones
// and the AVX2 loop by hand, against the documented formula, at slice starts
// and lengths that cut pairs and eight-element blocks, and at the thresholds
// where a 32-bit comparison could go wrong.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "dropout_mask.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_dropout_mask {

namespace {
// Element i survives when half i % 2 of splitmix64(key + (i / 2) * golden) >= threshold.
std::uint8_t formula(std::uint64_t key, std::size_t i, std::uint64_t threshold) {
    std::uint64_t z = key + (i / 2) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (i % 2 == 0 ? z & 0xffffffffu : z >> 32) >= threshold;
}
}  // namespace

TEST_CASE("keep_mask's clones and its AVX2 loop both give the documented mask") {
    const std::uint64_t key = 0xfedcba9876543210ULL;
    bool have_avx2 = true;
    for (std::uint64_t threshold :
         {std::uint64_t(0), std::uint64_t(1), xg::detail::dropout_threshold(0.1),
          std::uint64_t(1) << 31, (std::uint64_t(1) << 32) - 1, std::uint64_t(1) << 32}) {
        for (std::size_t first : {0, 1, 2, 7, 8, 9, 1001}) {
            for (std::size_t n : {0, 1, 2, 7, 8, 9, 15, 16, 17, 100, 2048}) {
                CAPTURE(threshold);
                CAPTURE(first);
                CAPTURE(n);
                std::vector<std::uint8_t> want(n + 1, 7), clones(n + 1, 7), avx2(n + 1, 7);
                for (std::size_t j = 0; j < n; ++j) want[j] = formula(key, first + j, threshold);
                xg::detail::keep_mask_clones(key, first, n, threshold, clones.data());
                CHECK(clones == want);  // want[n] == 7: nothing written past the slice
                if (xg::detail::keep_mask_avx2(key, first, n, threshold, avx2.data()))
                    CHECK(avx2 == want);
                else
                    have_avx2 = false;
            }
        }
    }
    // Every x86-64 CPU since 2013 has AVX2; the CI and review machines do.
    MESSAGE("AVX2 loop checked: " << (have_avx2 ? "yes" : "no (this CPU has no AVX2)"));
}

}  // namespace core_test_dropout_mask
