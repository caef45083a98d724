// Property: sum, mean, max, softmax and log_softmax over random shapes, dims
// (negative too) and keepdim, in float32 and float64, agree with naive float64 loops.
#include <cmath>
#include <limits>
#include <string>

#include <doctest/doctest.h>

#include "property/property.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace property_test_reduce_property {

namespace {

using property::Rng;

constexpr int kCases = 300;

// Where input index `index` lands in the output of a reduction over `reduced`.
std::size_t reduced_flat(const std::vector<std::size_t>& index, const xg::Shape& shape,
                         const std::vector<bool>& reduced) {
    std::size_t flat = 0;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (!reduced[i]) flat = flat * shape[i] + index[i];
    }
    return flat;
}

xg::Shape reduced_shape(const xg::Shape& shape, const std::vector<bool>& reduced, bool keepdim) {
    xg::Shape out;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (!reduced[i])
            out.push_back(shape[i]);
        else if (keepdim)
            out.push_back(1);
    }
    return out;
}

// A dim as the op is given it: in range, negative half the time.
int as_arg(std::size_t dim, std::size_t rank, Rng& rng) {
    return rng.coin() ? static_cast<int>(dim) : static_cast<int>(dim) - static_cast<int>(rank);
}

bool all_near(const xt::xarray<double>& got, const std::vector<double>& want, xg::Dtype dtype) {
    for (std::size_t k = 0; k < want.size(); ++k) {
        if (!property::near(got.data()[k], want[k], dtype)) {
            MESSAGE("element " << k << ": got " << got.data()[k] << ", want " << want[k]);
            return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("property: sum and mean over random dims match a naive loop") {
    Rng rng(20240903);
    for (int c = 0; c < kCases; ++c) {
        xg::Shape shape = rng.shape();
        xg::Dtype dtype = rng.coin() ? xg::kFloat32 : xg::kFloat64;
        auto x = test::values(property::make(rng.values(shape), dtype));
        bool is_mean = c % 2 == 1, keepdim = rng.coin(), full = shape.empty() || rng.coin(0.2);
        std::vector<bool> reduced(shape.size(), full);
        std::vector<int> dims;
        if (!full) {
            for (std::size_t i = 0; i < shape.size(); ++i) {
                if (rng.coin()) reduced[i] = true;
            }
            reduced[static_cast<std::size_t>(rng.integer(0, static_cast<int>(shape.size()) - 1))] =
                true;
            for (std::size_t i = 0; i < shape.size(); ++i) {
                if (reduced[i]) dims.push_back(as_arg(i, shape.size(), rng));
            }
        }
        CAPTURE(c);
        CAPTURE(xg::shape_str(shape));
        CAPTURE(dims.size());
        CAPTURE(keepdim);
        xg::Tensor t = property::make(x, dtype);
        xg::Tensor out = full ? (is_mean ? xg::mean(t) : xg::sum(t))
                              : (is_mean ? xg::mean(t, dims, keepdim) : xg::sum(t, dims, keepdim));
        xg::Shape want_shape = full ? xg::Shape{} : reduced_shape(shape, reduced, keepdim);
        REQUIRE(out.shape() == want_shape);
        std::vector<double> want(property::numel(want_shape), 0.0);
        std::size_t count = 1;
        for (std::size_t i = 0; i < shape.size(); ++i) count *= reduced[i] ? shape[i] : 1;
        for (std::size_t k = 0; k < x.size(); ++k) {
            want[reduced_flat(property::unravel(k, shape), shape, reduced)] += x.data()[k];
        }
        if (is_mean) {
            for (auto& w : want) w /= static_cast<double>(count);
        }
        CHECK(all_near(test::values(out), want, dtype));
    }
}

TEST_CASE("property: max over a random dim gives the values and first indices of a naive loop") {
    Rng rng(20240904);
    for (int c = 0; c < kCases; ++c) {
        xg::Shape shape = rng.shape();
        if (shape.empty()) shape = {static_cast<std::size_t>(rng.integer(1, 5))};
        xg::Dtype dtype = rng.coin() ? xg::kFloat32 : xg::kFloat64;
        auto x = test::values(property::make(rng.values(shape), dtype));
        auto dim = static_cast<std::size_t>(rng.integer(0, static_cast<int>(shape.size()) - 1));
        bool keepdim = rng.coin();
        std::vector<bool> reduced(shape.size(), false);
        reduced[dim] = true;
        CAPTURE(c);
        CAPTURE(xg::shape_str(shape));
        CAPTURE(dim);
        auto [values, indices] =
            xg::max(property::make(x, dtype), as_arg(dim, shape.size(), rng), keepdim);
        xg::Shape want_shape = reduced_shape(shape, reduced, keepdim);
        REQUIRE(values.shape() == want_shape);
        REQUIRE(indices.shape() == want_shape);
        REQUIRE(indices.dtype() == xg::kInt64);
        std::vector<double> best(property::numel(want_shape),
                                 -std::numeric_limits<double>::infinity());
        std::vector<double> arg(best.size(), -1);
        for (std::size_t k = 0; k < x.size(); ++k) {
            auto index = property::unravel(k, shape);
            std::size_t o = reduced_flat(index, shape, reduced);
            if (x.data()[k] > best[o]) {
                best[o] = x.data()[k];
                arg[o] = static_cast<double>(index[dim]);
            }
        }
        CHECK(all_near(test::values(values), best, dtype));
        CHECK(all_near(test::values(indices), arg, xg::kFloat64));
    }
}

TEST_CASE("property: softmax and log_softmax over a random dim match a naive loop") {
    Rng rng(20240905);
    for (int c = 0; c < kCases; ++c) {
        xg::Shape shape = rng.shape();
        if (shape.empty()) shape = {static_cast<std::size_t>(rng.integer(1, 5))};
        xg::Dtype dtype = rng.coin() ? xg::kFloat32 : xg::kFloat64;
        auto x = test::values(property::make(rng.values(shape, -6.0, 6.0), dtype));
        auto dim = static_cast<std::size_t>(rng.integer(0, static_cast<int>(shape.size()) - 1));
        bool log = c % 2 == 1;
        std::vector<bool> reduced(shape.size(), false);
        reduced[dim] = true;
        CAPTURE(c);
        CAPTURE(xg::shape_str(shape));
        CAPTURE(dim);
        CAPTURE(log);
        int arg = as_arg(dim, shape.size(), rng);
        xg::Tensor t = property::make(x, dtype);
        xg::Tensor out = log ? xg::log_softmax(t, arg) : xg::softmax(t, arg);
        REQUIRE(out.shape() == shape);
        std::vector<double> denominator(property::numel(reduced_shape(shape, reduced, false)), 0.0);
        for (std::size_t k = 0; k < x.size(); ++k) {
            denominator[reduced_flat(property::unravel(k, shape), shape, reduced)] +=
                std::exp(x.data()[k]);
        }
        std::vector<double> want(x.size());
        for (std::size_t k = 0; k < x.size(); ++k) {
            double d = denominator[reduced_flat(property::unravel(k, shape), shape, reduced)];
            want[k] = log ? x.data()[k] - std::log(d) : std::exp(x.data()[k]) / d;
        }
        CHECK(all_near(test::values(out), want, dtype));
    }
}

}  // namespace property_test_reduce_property
