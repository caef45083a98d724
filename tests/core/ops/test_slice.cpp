// Tensor::slice and Tensor::index (core/ops/slice.cpp) against PyTorch's x[...]
// (gen_indexing.py), gradchecks and gradgradchecks, and the error messages.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/indexing_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_slice {

using xg::Shape;
using xg::Tensor;
using xg::indexing::Ellipsis;
using xg::indexing::None;
using xg::indexing::Slice;
using In = std::vector<Tensor>;
namespace ref = reference::indexing;

namespace {
Tensor x_arange() {
    Tensor x = xg::arange(120, xg::kFloat64);
    return xg::reshape(x, {2, 3, 4, 5}).detach().requires_grad_(true);
}

// sum(out * upstream) with PyTorch's upstream: 0.5 * arange(numel) + 1.
void backward_with_upstream(const Tensor& out) {
    const auto n = static_cast<std::int64_t>(out.numel());
    Tensor upstream = xg::arange(n, xg::kFloat64) * 0.5 + 1.0;
    const Shape sizes = out.shape();
    std::vector<std::int64_t> shape(sizes.begin(), sizes.end());
    xg::sum(out * xg::reshape(upstream, shape)).backward();
}
}  // namespace

TEST_CASE("index matches PyTorch's x[...] and its gradient") {
    for (const ref::IndexCase& c : ref::index_cases()) {
        CAPTURE(c.python);
        Tensor x = x_arange();
        Tensor out = x.index(c.indices);
        CHECK(test::shape_of(test::values(out)) == c.out.shape);
        CHECK_VALUES(out, c.out.array());
        backward_with_upstream(out);
        CHECK_VALUES(x.grad(), c.grad.array());
    }
}

TEST_CASE("slice matches PyTorch's x[..., start:end:step] and its gradient") {
    for (const ref::SliceCase& c : ref::slice_cases()) {
        CAPTURE(c.dim);
        CAPTURE(c.step);
        Tensor x = x_arange();
        Tensor out = x.slice(c.dim, c.start, c.end, c.step);
        CHECK_VALUES(out, c.out.array());
        backward_with_upstream(out);
        CHECK_VALUES(x.grad(), c.grad.array());
    }
}

TEST_CASE("slice and index copy: the result never aliases x") {
    Tensor x = test::f64({1, 2, 3, 4});
    Tensor all = x.index({Ellipsis});
    Tensor same = x.slice(0);
    all.data<double>()(0) = 10;
    same.data<double>()(1) = 20;
    CHECK_VALUES(x, (xt::xarray<double>{1, 2, 3, 4}));
}

TEST_CASE("index accepts the string \"...\" as libtorch does, and int64 or int integers") {
    Tensor x = x_arange();
    CHECK_VALUES(x.index({"...", 0}), test::values(x.index({Ellipsis, 0})));
    CHECK_VALUES(x.index({std::int64_t{1}, -1}), test::values(x.index({1, 2})));
    CHECK_THROWS_WITH_AS(x.index({"..", 0}),
                         "TensorIndex: expected \"...\" as the one string index (got \"..\")",
                         xg::Error);
}

TEST_CASE("slice and index gradchecks in float64") {
    Tensor x = test::randn64({3, 4, 5});
    CHECK(test::gradcheck([](const In& in) { return in[0].slice(1, 0, 4, 3); }, {x}));
    CHECK(test::gradcheck([](const In& in) { return in[0].slice(-1, -4, std::nullopt, 2); }, {x}));
    CHECK(test::gradcheck(
        [](const In& in) {
            return in[0].index({Slice(None, None, 2), None, 1, Ellipsis});
        },
        {x}));
    Tensor picks = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{{3, 0}, {3, 3}});
    CHECK(test::gradcheck([&](const In& in) { return in[0].index({Ellipsis, picks}); }, {x}));
    Tensor mask = xg::tensor<bool>(xt::xarray<bool>{true, false, true, true});
    CHECK(test::gradcheck([&](const In& in) { return in[0].index({1, mask}); }, {x}));
}

TEST_CASE("slice and index errors name the op and what was expected") {
    Tensor x = x_arange();
    CHECK_THROWS_WITH_AS(x.slice(0, 0, 2, 0), "slice: expected step > 0 (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(x.slice(0, 0, 2, -1), "slice: expected step > 0 (got -1)", xg::Error);
    CHECK_THROWS_WITH_AS(x.slice(4), doctest::Contains("slice"), xg::Error);
    CHECK_THROWS_WITH_AS(xg::zeros({}).slice(0),
                         "slice: expected a tensor with at least 1 dimension (got [])", xg::Error);
    CHECK_THROWS_WITH_AS(x.index({0, 0, 0, 0, 0}),
                         "index: too many indices for a tensor of dimension 4 (got 5)", xg::Error);
    CHECK_THROWS_WITH_AS(x.index({Ellipsis, 0, Ellipsis}),
                         "index: an index can only have a single ellipsis (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS(x.index({3}),
                         "index: index 3 is out of bounds for dimension 0 with size 2", xg::Error);
    CHECK_THROWS_WITH_AS(x.index({0, -4}),
                         "index: index -4 is out of bounds for dimension 1 with size 3", xg::Error);
    CHECK_THROWS_WITH_AS(x.index({None, 0, 5}),
                         "index: index 5 is out of bounds for dimension 2 with size 3", xg::Error);
    CHECK_THROWS_WITH_AS(x.index({xg::zeros({2}), 0}),
                         "index: expected int64 or bool index tensors (got float32)", xg::Error);
    Tensor picks = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{0});
    CHECK_THROWS_WITH_AS(
        x.index({picks, picks}),
        "index: expected at most one index tensor (got 2); index one dim at a time", xg::Error);
    Tensor mask = xg::tensor<bool>(xt::xarray<bool>{true, false, true});
    CHECK_THROWS_WITH_AS(
        x.index({mask}),
        "index: the mask of shape [3] does not match the dims from 0 of a tensor of shape "
        "[2, 3, 4, 5]",
        xg::Error);
    Tensor bad = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{5});
    CHECK_THROWS_WITH_AS(x.index({0, bad}),
                         "index: index 5 is out of bounds for dimension 1 with size 3", xg::Error);
}

TEST_CASE("double backward: slice and index in float64") {
    // Each output squared, so the second derivative runs through the op's
    // forward and its recorded backward.
    const Tensor x = test::randn64({3, 4, 5}, 140);
    auto squared = [](const Tensor& y) { return y * y; };
    CHECK(test::gradgradcheck([&](const In& in) { return squared(in[0].slice(1, 0, 4, 3)); }, {x}));
    CHECK(test::gradgradcheck(
        [&](const In& in) { return squared(in[0].slice(-1, -4, std::nullopt, 2)); }, {x}));
    CHECK(test::gradgradcheck([&](const In& in) { return squared(in[0].slice(0, 1)); }, {x}));
    CHECK(test::gradgradcheck(
        [&](const In& in) {
            return squared(in[0].index({Slice(None, None, 2), None, 1, Ellipsis}));
        },
        {x}));
    Tensor picks = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{{3, 0}, {3, 3}});
    CHECK(test::gradgradcheck(
        [&](const In& in) {
            return squared(in[0].index({Ellipsis, picks}));
        },
        {x}));
    Tensor mask = xg::tensor<bool>(xt::xarray<bool>{true, false, true, true});
    CHECK(test::gradgradcheck([&](const In& in) { return squared(in[0].index({1, mask})); }, {x}));
}

}  // namespace core_ops_test_slice
