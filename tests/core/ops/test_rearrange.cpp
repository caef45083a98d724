// Tests for expand, repeat, flip and roll (core/ops/rearrange.cpp): PyTorch's
// values and gradients (tests/core/reference/gen_gather.py), copies, dtypes, empty
// and 0-d tensors, float64 gradchecks and gradgradchecks, and error messages.
#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/gather_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_rearrange {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

namespace {

// [[0, 1, 2], [3, 4, 5]]
Tensor x23() { return test::f64({{0, 1, 2}, {3, 4, 5}}); }

xt::xarray<double> ref_array(const gather_ref::Sizes& shape, const std::vector<double>& v) {
    auto a = xt::xarray<double>::from_shape(shape);
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

// expand, repeat, flip or roll as the reference case gives them; an undefined
// tensor for the other ops (test_gather.cpp covers those).
Tensor run_shape_case(const gather_ref::Case& c, const Tensor& x) {
    const std::string op = c.op;
    if (op == "expand") return xg::expand(x, c.params);
    if (op == "repeat") return xg::repeat(x, c.params);
    if (op == "flip") return xg::flip(x, std::vector<int>(c.params.begin(), c.params.end()));
    if (op == "roll") return xg::roll(x, c.params, c.dims);
    return Tensor();
}

}  // namespace

TEST_CASE("expand, repeat, flip and roll match PyTorch's values and gradients") {
    int cases = 0;
    for (const gather_ref::Case& c : gather_ref::kCases) {
        Tensor x = test::f64(ref_array(c.x_shape, c.x));
        if (c.integer)
            x = x.to(xg::kInt64);
        else
            x.requires_grad_(true);
        Tensor out = run_shape_case(c, x);
        if (!out.defined()) continue;
        CAPTURE(c.name);
        ++cases;
        CHECK(out.dtype() == x.dtype());
        CHECK_VALUES(out, ref_array(c.out_shape, c.out));
        if (c.integer) continue;
        xg::sum(out * test::f64(ref_array(c.out_shape, c.upstream))).backward();
        CHECK_VALUES(x.grad(), ref_array(c.x_shape, c.grad_x));
    }
    CHECK(cases == 15);
}

TEST_CASE("expand, repeat, flip and roll: copies, dtypes, empty and 0-d tensors") {
    Tensor x = x23();
    Tensor e = xg::expand(test::f64(test::column({1, 2}), true), {2, 3});
    CHECK(e.grad_fn_name() == "ExpandBackward");
    e.data<double>()(0, 0) = 100.0;  // a copy: the other entries of the row keep their value
    CHECK(e.data<double>()(0, 1) == 1.0);
    CHECK(xg::expand(x, {0, 2, 3}).shape() == Shape{0, 2, 3});
    CHECK(xg::expand(test::f64(test::column({1, 2})), {2, 0}).shape() == Shape{2, 0});
    CHECK_VALUES(xg::expand(xg::full({}, 3, xg::kInt64), {2}), (xt::xarray<double>{3, 3}));
    CHECK_VALUES(xg::expand(xg::full({}, 2.0), {}), xt::xarray<double>(2.0));
    xt::xarray<bool> flags = {true, false};
    CHECK_VALUES(xg::repeat(xg::tensor<bool>(flags), {2}), (xt::xarray<double>{1, 0, 1, 0}));
    CHECK(xg::repeat(x, {2, 0}).shape() == Shape{4, 0});
    CHECK(xg::repeat(xg::full({}, 1.0), {}).shape() == Shape{});
    CHECK_VALUES(xg::flip(xg::tensor<bool>(flags), {0}), (xt::xarray<double>{0, 1}));
    CHECK_VALUES(xg::flip(x, {}), test::values(x));
    CHECK_VALUES(xg::flip(xg::full({}, 4.0), {-1}), xt::xarray<double>(4.0));
    CHECK(xg::flip(xg::zeros({0, 3}), {0, 1}).shape() == Shape{0, 3});
    CHECK(xg::roll(xg::zeros({0, 3}), {1}, {0}).shape() == Shape{0, 3});
    CHECK(xg::roll(xg::zeros({0, 3}), {2}).shape() == Shape{0, 3});
    CHECK_VALUES(xg::roll(xg::full({}, 4.0), {3}), xt::xarray<double>(4.0));
    CHECK_VALUES(xg::roll(test::i64({0, 1, 2}), {-7}), (xt::xarray<double>{1, 2, 0}));
    // Rolling a dim by its size, or flipping twice, gives x back.
    CHECK_VALUES(xg::roll(x, {3, -2}, {1, 0}), test::values(x));
    CHECK_VALUES(xg::flip(xg::flip(x, {0, 1}), {1, 0}), test::values(x));
}

TEST_CASE("gradcheck: expand, repeat, flip and roll in float64") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    std::vector<Row> rows = {
        {"expand -1 and a new dim",
         [](const In& in) {
             return xg::expand(in[0], {2, -1, 3});
         },
         {test::randn64({4, 1}, 90)}},
        {"expand a 0-d tensor",
         [](const In& in) {
             return xg::expand(in[0], {2, 2});
         },
         {test::randn64({}, 91)}},
        {"repeat with a new dim",
         [](const In& in) {
             return xg::repeat(in[0], {2, 1, 3});
         },
         {test::randn64({2, 3}, 92)}},
        {"repeat every dim",
         [](const In& in) {
             return xg::repeat(in[0], {3, 2});
         },
         {test::randn64({2, 2}, 93)}},
        {"flip two dims",
         [](const In& in) {
             return xg::flip(in[0], {0, -1});
         },
         {test::randn64({2, 3, 4}, 94)}},
        {"roll two dims",
         [](const In& in) {
             return xg::roll(in[0], {1, -2}, {1, 2});
         },
         {test::randn64({2, 3, 4}, 95)}},
        {"roll flattened",
         [](const In& in) { return xg::roll(in[0], {-5}); },
         {test::randn64({2, 3, 2}, 96)}},
        // A non-trivial consumer, so the gradient is not all ones.
        {"repeat then mul",
         [](const In& in) {
             return xg::repeat(in[0], {2, 1}) * xg::repeat(in[0], {2, 1});
         },
         {test::randn64({2, 3}, 97)}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("double backward: expand, repeat, flip and roll in float64") {
    // Each output squared, so the second derivative runs through the op's
    // forward and its recorded backward.
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    auto squared = [](const Tensor& y) { return y * y; };
    std::vector<Row> rows = {
        {"expand -1 and a new dim",
         [&](const In& in) {
             return squared(xg::expand(in[0], {2, -1, 3}));
         },
         {test::randn64({4, 1}, 120)}},
        {"expand a 0-d tensor",
         [&](const In& in) {
             return squared(xg::expand(in[0], {2, 2}));
         },
         {test::randn64({}, 121)}},
        {"expand nothing",
         [&](const In& in) {
             return squared(xg::expand(in[0], {2, 3}));
         },
         {test::randn64({2, 3}, 122)}},
        {"repeat with a new dim",
         [&](const In& in) {
             return squared(xg::repeat(in[0], {2, 1, 3}));
         },
         {test::randn64({2, 3}, 123)}},
        {"repeat every dim",
         [&](const In& in) {
             return squared(xg::repeat(in[0], {3, 2}));
         },
         {test::randn64({2, 2}, 124)}},
        {"flip two dims",
         [&](const In& in) {
             return squared(xg::flip(in[0], {0, -1}));
         },
         {test::randn64({2, 3, 2}, 125)}},
        {"roll two dims",
         [&](const In& in) {
             return squared(xg::roll(in[0], {1, -2}, {1, 2}));
         },
         {test::randn64({2, 3, 2}, 126)}},
        {"roll flattened",
         [&](const In& in) { return squared(xg::roll(in[0], {-5})); },
         {test::randn64({2, 3, 2}, 127)}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradgradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("expand, repeat, flip and roll error messages") {
    Tensor x = xg::zeros({2, 1});
    CHECK_THROWS_WITH_AS(xg::expand(x, {3}),
                         "expand: expected at least 2 sizes for a tensor of shape [2, 1] (got [3])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::expand(x, {3, 3}),
                         "expand: expected size 2 at dim 0 to expand [2, 1], where only dims of "
                         "size 1 grow (got [3, 3])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::expand(x, {-1, 2, 3}),
                         "expand: expected sizes >= 0, or -1 for an existing dim (got [-1, 2, 3])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::expand(x, {2, -2}),
                         "expand: expected sizes >= 0, or -1 for an existing dim (got [2, -2])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::repeat(x, {2}),
        "repeat: expected at least 2 repeats for a tensor of shape [2, 1] (got [2])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::repeat(x, {2, -1}), "repeat: expected repeats >= 0 (got [2, -1])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::flip(x, {1, -1}), "flip: expected each dim once (got [1, -1])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::flip(x, {2}), "flip: expected dim in [-2, 1] for a 2-d tensor (got 2)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::roll(x, {1, 2}, {0}),
        "roll: expected one shift per dim, or one shift and no dims (got 2 shifts and 1 dims)",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::roll(x, {1, 2}),
        "roll: expected one shift per dim, or one shift and no dims (got 2 shifts and 0 dims)",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::roll(x, {}),
        "roll: expected one shift per dim, or one shift and no dims (got 0 shifts and 0 dims)",
        xg::Error);
    CHECK_THROWS_WITH_AS(xg::roll(x, {1}, {-3}),
                         "roll: expected dim in [-2, 1] for a 2-d tensor (got -3)", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::roll(xg::zeros({}), {1}, {0}),
        "roll: expected a tensor with at least 1 dimension to roll along dims (got [])", xg::Error);
}

}  // namespace core_ops_test_rearrange
