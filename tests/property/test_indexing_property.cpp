// Property tests of the indexing ops (core/ops/gather.cpp, slice.cpp) on random
// shapes, dims and indices, some out of range: each call either throws an
// xg::Error or agrees with a plain loop over multi-indices written here; under
// AddressSanitizer (scripts/test.sh's third stage) no call reads out of bounds.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "property/property.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace property_test_indexing_property {

using xg::Shape;
using xg::Tensor;

namespace {

constexpr int kCases = 300;

// The row-major offset of a multi-index.
std::size_t offset_of(const Shape& shape, const std::vector<std::size_t>& at) {
    std::size_t offset = 0;
    for (std::size_t d = 0; d < shape.size(); ++d) offset = offset * shape[d] + at[d];
    return offset;
}

// The multi-index of a row-major offset.
std::vector<std::size_t> index_of(const Shape& shape, std::size_t offset) {
    std::vector<std::size_t> at(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        at[d] = offset % shape[d];
        offset /= shape[d];
    }
    return at;
}

// Random int64 values in [lo, hi], in `shape`.
Tensor random_index(property::Rng& rng, const Shape& shape, int lo, int hi) {
    auto a = xt::xarray<std::int64_t>::from_shape(shape);
    for (auto& v : a) v = rng.integer(lo, hi);
    return xg::tensor<std::int64_t>(a);
}

bool in_range(const Tensor& index, std::size_t size) {
    for (std::int64_t v : index.data<std::int64_t>()) {
        if (v < 0 || static_cast<std::size_t>(v) >= size) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("property: gather agrees with a loop, or throws for an index out of range") {
    property::Rng rng(191);
    for (int c = 0; c < kCases; ++c) {
        CAPTURE(c);
        const Shape shape = rng.shape(3, 4);
        if (shape.empty()) continue;
        const int dim = rng.integer(-static_cast<int>(shape.size()), int(shape.size()) - 1);
        const std::size_t d = dim < 0 ? std::size_t(dim + int(shape.size())) : std::size_t(dim);
        Shape index_shape = shape;
        for (std::size_t k = 0; k < shape.size(); ++k)
            index_shape[k] = k == d ? std::size_t(rng.integer(0, 5))
                                    : std::size_t(rng.integer(0, int(shape[k])));
        const Tensor x = test::f64(rng.values(shape));
        const Tensor index = random_index(rng, index_shape, -1, int(shape[d]));
        if (!in_range(index, shape[d])) {
            CHECK_THROWS_AS(xg::gather(x, dim, index), xg::Error);
            continue;
        }
        const xt::xarray<double> out = test::values(xg::gather(x, dim, index));
        const auto& idx = index.data<std::int64_t>();
        const auto& xv = x.data<double>();
        REQUIRE(out.size() == idx.size());
        for (std::size_t i = 0; i < idx.size(); ++i) {
            std::vector<std::size_t> at = index_of(index_shape, i);
            at[d] = static_cast<std::size_t>(idx.data()[i]);
            CHECK(out.data()[i] == xv.data()[offset_of(shape, at)]);
        }
    }
}

TEST_CASE("property: index_select and scatter_add agree with loops, or throw") {
    property::Rng rng(192);
    for (int c = 0; c < kCases; ++c) {
        CAPTURE(c);
        const Shape shape = rng.shape(3, 4);
        if (shape.empty()) continue;
        const std::size_t d = std::size_t(rng.integer(0, int(shape.size()) - 1));
        const Tensor x = test::f64(rng.values(shape));
        const Tensor index = random_index(rng, {std::size_t(rng.integer(0, 5))}, -1, int(shape[d]));
        if (!in_range(index, shape[d])) {
            CHECK_THROWS_AS(xg::index_select(x, int(d), index), xg::Error);
            CHECK_THROWS_AS(xg::index_add(x, int(d), index, x), xg::Error);
            continue;
        }
        const Tensor picked = xg::index_select(x, int(d), index);
        const Shape out_shape = picked.shape();
        const xt::xarray<double> out = test::values(picked);
        const auto& idx = index.data<std::int64_t>();
        for (std::size_t i = 0; i < out.size(); ++i) {
            std::vector<std::size_t> at = index_of(out_shape, i);
            at[d] = static_cast<std::size_t>(idx.data()[at[d]]);
            CHECK(out.data()[i] == x.data<double>().data()[offset_of(shape, at)]);
        }
        // Adding the picked rows back where they came from: each row gains itself
        // once per time it was picked.
        const xt::xarray<double> added = test::values(xg::index_add(x, int(d), index, picked));
        xt::xarray<double> expected = test::values(x);
        for (std::size_t i = 0; i < out.size(); ++i) {
            std::vector<std::size_t> at = index_of(out_shape, i);
            at[d] = static_cast<std::size_t>(idx.data()[at[d]]);
            expected.data()[offset_of(shape, at)] += out.data()[i];
        }
        CHECK(test::close(added, expected));
    }
}

TEST_CASE("property: slice agrees with Python's rule on random bounds and steps") {
    property::Rng rng(193);
    for (int c = 0; c < kCases; ++c) {
        CAPTURE(c);
        const Shape shape = rng.shape(3, 5);
        if (shape.empty()) continue;
        const std::size_t d = std::size_t(rng.integer(0, int(shape.size()) - 1));
        const auto size = static_cast<std::int64_t>(shape[d]);
        std::optional<std::int64_t> start, end;
        if (rng.coin()) start = rng.integer(-8, 8);
        if (rng.coin()) end = rng.integer(-8, 8);
        const std::int64_t step = rng.integer(1, 3);
        // Python's slice.indices: negative bounds count from the end, then clamp.
        auto bound = [size](std::optional<std::int64_t> b, std::int64_t fallback) {
            if (!b) return fallback;
            const std::int64_t v = *b < 0 ? *b + size : *b;
            return v < 0 ? std::int64_t{0} : (v > size ? size : v);
        };
        std::vector<std::int64_t> kept;
        for (std::int64_t k = bound(start, 0); k < bound(end, size); k += step) kept.push_back(k);
        const Tensor x = test::f64(rng.values(shape));
        const Tensor out = x.slice(int(d), start, end, step);
        Shape expected_shape = shape;
        expected_shape[d] = kept.size();
        REQUIRE(out.shape() == expected_shape);
        const xt::xarray<double> got = test::values(out);
        for (std::size_t i = 0; i < got.size(); ++i) {
            std::vector<std::size_t> at = index_of(expected_shape, i);
            at[d] = static_cast<std::size_t>(kept[at[d]]);
            CHECK(got.data()[i] == x.data<double>().data()[offset_of(shape, at)]);
        }
    }
}

}  // namespace property_test_indexing_property
