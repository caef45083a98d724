// Shared pieces of the property tests: a seeded generator of shapes and values,
// and NumPy broadcasting done by hand. Reading any tensor as float64 is
// test::values (helpers.hpp).
//
// Every test draws its cases from std::mt19937_64 seeded with a fixed number,
// so a failure names its case and reproduces exactly.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <xgrad/xgrad.hpp>
#include <xtensor/xarray.hpp>

#include "helpers.hpp"

namespace property {

struct Rng {
    explicit Rng(std::uint64_t seed) : engine(seed) {}
    std::mt19937_64 engine;

    int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(engine); }
    double uniform(double lo, double hi) {
        return std::uniform_real_distribution<double>(lo, hi)(engine);
    }
    bool coin(double p = 0.5) { return uniform(0.0, 1.0) < p; }

    // Rank 0..max_rank, every dim 1..max_dim.
    xg::Shape shape(int max_rank = 4, int max_dim = 4) {
        xg::Shape s(static_cast<std::size_t>(integer(0, max_rank)));
        for (auto& d : s) d = static_cast<std::size_t>(integer(1, max_dim));
        return s;
    }
    // A shape that broadcasts against `s`: some leading dims dropped, some dims set to 1.
    xg::Shape broadcastable(const xg::Shape& s) {
        std::size_t drop = static_cast<std::size_t>(integer(0, static_cast<int>(s.size())));
        xg::Shape out(s.begin() + static_cast<std::ptrdiff_t>(drop), s.end());
        for (auto& d : out) {
            if (coin(0.3)) d = 1;
        }
        return out;
    }
    // Values uniform in [lo, hi) as a float64 array of `shape`.
    xt::xarray<double> values(const xg::Shape& shape, double lo = -2.0, double hi = 2.0) {
        auto a = xt::xarray<double>::from_shape(shape);
        for (auto& v : a) v = uniform(lo, hi);
        return a;
    }
};

inline std::size_t numel(const xg::Shape& s) {
    std::size_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

// A tensor of `dtype` holding `values` (rounded to float32 when asked).
inline xg::Tensor make(const xt::xarray<double>& values, xg::Dtype dtype) {
    if (dtype == xg::kFloat32) return xg::tensor<float>(xt::xarray<float>(xt::cast<float>(values)));
    return xg::tensor<double>(values);
}

// Row-major multi-index of flat position `flat` in `shape`.
inline std::vector<std::size_t> unravel(std::size_t flat, const xg::Shape& shape) {
    std::vector<std::size_t> index(shape.size());
    for (std::size_t i = shape.size(); i-- > 0;) {
        index[i] = flat % shape[i];
        flat /= shape[i];
    }
    return index;
}

// Flat position in `shape` of the output multi-index `out_index` under
// broadcasting (trailing dims aligned, size-1 dims pinned to 0).
inline std::size_t broadcast_flat(const std::vector<std::size_t>& out_index,
                                  const xg::Shape& shape) {
    std::size_t flat = 0, offset = out_index.size() - shape.size();
    for (std::size_t i = 0; i < shape.size(); ++i) {
        flat = flat * shape[i] + (shape[i] == 1 ? 0 : out_index[offset + i]);
    }
    return flat;
}

inline xg::Shape broadcast(const xg::Shape& a, const xg::Shape& b) {
    xg::Shape out(std::max(a.size(), b.size()), 1);
    for (std::size_t i = 0; i < out.size(); ++i) {
        std::size_t da = i < a.size() ? a[a.size() - 1 - i] : 1;
        std::size_t db = i < b.size() ? b[b.size() - 1 - i] : 1;
        out[out.size() - 1 - i] = da == 1 ? db : da;
    }
    return out;
}

// Relative-or-absolute closeness, per dtype.
inline bool near(double got, double want, xg::Dtype dtype) {
    double rtol = dtype == xg::kFloat32 ? 2e-5 : 1e-12, atol = dtype == xg::kFloat32 ? 1e-5 : 1e-12;
    if (std::isnan(want)) return std::isnan(got);
    if (std::isinf(want)) return got == want;
    return std::abs(got - want) <= atol + rtol * std::abs(want);
}

}  // namespace property
