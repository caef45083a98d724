// Tests for the gather and scatter ops (core/ops/gather.cpp): index_select,
// gather, scatter_add, index_add and one_hot against PyTorch's values and
// gradients (tests/core/reference/gen_gather.py), 0-d and empty cases, float64
// gradchecks and gradgradchecks with respect to every floating input, and the
// error messages.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/gather_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_gather {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

namespace {

xt::xarray<double> array(const gather_ref::Sizes& shape, const std::vector<double>& v) {
    auto a = xt::xarray<double>::from_shape(shape);
    std::copy(v.begin(), v.end(), a.begin());
    return a;
}

// A float64 leaf (int64 for integer cases) of the given shape and values.
Tensor make(const gather_ref::Sizes& shape, const std::vector<double>& v, bool integer) {
    Tensor t = test::f64(array(shape, v));
    return integer ? t.to(xg::kInt64) : t.requires_grad_(true);
}

Tensor make_index(const gather_ref::Case& c) {
    auto a = xt::xarray<std::int64_t>::from_shape(c.index_shape);
    std::copy(c.index.begin(), c.index.end(), a.begin());
    return test::i64(a);
}

bool is_gather_op(const std::string& op) {
    return op == "index_select" || op == "gather" || op == "scatter_add" || op == "index_add" ||
           op == "one_hot";
}

Tensor run(const gather_ref::Case& c, const Tensor& x, const Tensor& index, const Tensor& src) {
    const std::string op = c.op;
    const auto dim = static_cast<int>(c.params.at(0));
    if (op == "index_select") return xg::index_select(x, dim, index);
    if (op == "gather") return xg::gather(x, dim, index);
    if (op == "scatter_add") return xg::scatter_add(x, dim, index, src);
    if (op == "index_add") return xg::index_add(x, dim, index, src, c.alpha);
    return xg::one_hot(x, c.params.at(0));
}

}  // namespace

TEST_CASE("index_select, gather, scatter_add, index_add and one_hot match PyTorch") {
    int cases = 0;
    for (const gather_ref::Case& c : gather_ref::kCases) {
        if (!is_gather_op(c.op)) continue;
        CAPTURE(c.name);
        ++cases;
        const bool one_hot = std::string(c.op) == "one_hot";
        Tensor x = one_hot ? test::i64(xt::cast<std::int64_t>(array(c.x_shape, c.x)))
                           : make(c.x_shape, c.x, c.integer);
        Tensor index = c.has_index ? make_index(c) : Tensor();
        Tensor src = c.src.empty() ? Tensor() : make(c.src_shape, c.src, c.integer);
        Tensor out = run(c, x, index, src);
        CHECK(out.dtype() == (c.integer ? xg::kInt64 : xg::kFloat64));
        CHECK_VALUES(out, array(c.out_shape, c.out));
        if (c.integer) {
            CHECK_FALSE(out.requires_grad());
            continue;
        }
        xg::sum(out * test::f64(array(c.out_shape, c.upstream))).backward();
        CHECK_VALUES(x.grad(), array(c.x_shape, c.grad_x));
        if (src.defined()) CHECK_VALUES(src.grad(), array(c.src_shape, c.grad_src));
    }
    CHECK(cases == 19);
}

TEST_CASE("one_hot: int64 out, no gradient, classes inferred or given") {
    Tensor y = xg::one_hot(test::i64({{0, 2}, {1, 0}}));
    CHECK(y.dtype() == xg::kInt64);
    CHECK_FALSE(y.requires_grad());
    CHECK_VALUES(y, (xt::xarray<double>{{{1, 0, 0}, {0, 0, 1}}, {{0, 1, 0}, {1, 0, 0}}}));
    CHECK(xg::one_hot(xg::zeros({0}, xg::kInt64), 4).shape() == Shape{0, 4});
    CHECK(xg::one_hot(xg::zeros({2, 0}, xg::kInt64), 3).shape() == Shape{2, 0, 3});
    CHECK_VALUES(xg::one_hot(xg::full({}, 2, xg::kInt64)), (xt::xarray<double>{0, 0, 1}));
}

TEST_CASE("0-d tensors count as one entry, as in PyTorch") {
    Tensor zero = xg::full({}, 0, xg::kInt64);
    Tensor x = test::f64(xt::xarray<double>(5.0), true);
    // index_select and gather of a 0-d tensor at index 0 give it back.
    Tensor picked = xg::index_select(x, 0, test::i64({0}));
    CHECK(picked.shape() == Shape{});
    CHECK_VALUES(picked, xt::xarray<double>(5.0));
    CHECK_VALUES(xg::gather(x, -1, test::i64({0, 0})), (xt::xarray<double>{5, 5}));
    CHECK_VALUES(xg::gather(test::f64({5, 6}), 0, xg::full({}, 1, xg::kInt64)),
                 xt::xarray<double>(6.0));
    // The adds: a 0-d x, index or src works as [1].
    Tensor one = test::f64(xt::xarray<double>(1.0));
    CHECK_VALUES(xg::scatter_add(one, 0, test::i64({0, 0}), test::f64({2, 3})),
                 xt::xarray<double>(6.0));
    CHECK_VALUES(xg::index_add(one, 0, test::i64({0}), test::f64({2})), xt::xarray<double>(3.0));
    CHECK_VALUES(xg::index_add(xg::zeros({3}, xg::kFloat64), 0, xg::full({}, 1, xg::kInt64),
                               test::f64(xt::xarray<double>(2.0))),
                 (xt::xarray<double>{0, 2, 0}));
    xg::sum(xg::gather(x, 0, test::i64({0, 0}))).backward();
    CHECK_VALUES(x.grad(), xt::xarray<double>(2.0));
    CHECK(test::gradcheck([&](const In& in) { return xg::index_select(in[0], 0, zero); },
                          {test::randn64({}, 60)}));
    CHECK(test::gradcheck([&](const In& in) { return xg::index_add(in[0], 0, zero, in[1], 2.0); },
                          {test::randn64({3}, 61), test::randn64({}, 62)}));
    CHECK(test::gradcheck(
        [&](const In& in) {
            return xg::scatter_add(in[0], 0, test::i64({0, 0}), in[1]);
        },
        {test::randn64({}, 63), test::randn64({2}, 64)}));
    // Several indices into a 0-d x (PyTorch 1.13's backward fails here).
    CHECK(test::gradcheck(
        [&](const In& in) {
            return xg::index_add(in[0], 0, test::i64({0, 0}), in[1], 0.5);
        },
        {test::randn64({}, 65), test::randn64({2}, 66)}));
}

TEST_CASE("empty indices select, gather and add nothing") {
    Tensor x = test::arange234();
    Tensor none = xg::zeros({0}, xg::kInt64);
    CHECK(xg::index_select(x, 1, none).shape() == Shape{2, 0, 4});
    // PyTorch checks no shapes for an empty index: the result takes the index's shape.
    CHECK(xg::gather(x, 2, xg::zeros({5, 0, 7}, xg::kInt64)).shape() == Shape{5, 0, 7});
    CHECK(xg::gather(x, 2, none).shape() == Shape{0});
    CHECK_VALUES(xg::scatter_add(x, 0, none, test::f64({1.0})), test::values(x));
    CHECK_VALUES(xg::index_add(x, 1, none, xg::zeros({2, 0, 4}, xg::kFloat64)), test::values(x));
    // A dim of size 0 has no valid index; other dims of size 0 take any.
    CHECK(xg::index_select(xg::zeros({3, 0}), 0, test::i64({2, 0})).shape() == Shape{2, 0});
}

TEST_CASE("scatter_add: src larger than the index gets zero gradient where unread") {
    // PyTorch 1.13 raises in this backward; the gradient is 0 for unread src entries.
    Tensor x = xg::zeros({2, 3}, xg::kFloat64).requires_grad_(true);
    Tensor src = test::f64({{1, 2, 3}, {4, 5, 6}}, true);
    Tensor out = xg::scatter_add(x, 1, test::i64({{2, 2}}), src);
    CHECK_VALUES(out, (xt::xarray<double>{{0, 0, 3}, {0, 0, 0}}));
    xg::sum(out * test::f64({{1, 2, 3}, {4, 5, 6}})).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{1, 2, 3}, {4, 5, 6}}));
    CHECK_VALUES(src.grad(), (xt::xarray<double>{{3, 3, 0}, {0, 0, 0}}));
}

TEST_CASE("gradcheck: index_select, gather, scatter_add and index_add in float64") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    Tensor rows3 = test::i64({2, 0, 2});  // entry 2 picked twice, entry 1 never
    Tensor g_index = test::i64({{{1, 0}, {1, 1}, {2, 1}}, {{0, 2}, {0, 0}, {2, 2}}});
    Tensor s_index = test::i64({{2, 0, 2, 2}, {1, 1, 0, 2}});
    std::vector<Row> rows = {
        {"index_select middle dim",
         [&](const In& in) { return xg::index_select(in[0], 1, rows3); },
         {test::randn64({2, 3, 4}, 70)}},
        {"index_select dim -1",
         [&](const In& in) { return xg::index_select(in[0], -1, rows3); },
         {test::randn64({4, 3}, 71)}},
        {"gather middle dim",
         [&](const In& in) { return xg::gather(in[0], 1, g_index); },
         {test::randn64({2, 3, 2}, 72)}},
        {"gather dim -1, index smaller",
         [&](const In& in) { return xg::gather(in[0], -1, g_index); },
         {test::randn64({3, 4, 3}, 73)}},
        {"scatter_add x and src",
         [&](const In& in) { return xg::scatter_add(in[0], 0, s_index, in[1]); },
         {test::randn64({3, 5}, 74), test::randn64({2, 4}, 75)}},
        {"scatter_add src larger than index",
         [&](const In& in) { return xg::scatter_add(in[0], -1, s_index, in[1]); },
         {test::randn64({2, 4}, 76), test::randn64({3, 5}, 77)}},
        {"index_add x and source, alpha",
         [&](const In& in) { return xg::index_add(in[0], 1, rows3, in[1], 0.5); },
         {test::randn64({2, 3, 2}, 78), test::randn64({2, 3, 2}, 79)}},
        {"index_add dim -1",
         [&](const In& in) { return xg::index_add(in[0], -1, rows3, in[1], -1.5); },
         {test::randn64({2, 4}, 80), test::randn64({2, 3}, 81)}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("double backward: index_select, gather, scatter_add and index_add in float64") {
    // Each output squared: its gradient 2 y v depends on the inputs, so the
    // second derivative runs through the op's forward and its recorded backward.
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    Tensor rows3 = test::i64({2, 0, 2});  // entry 2 picked twice, entry 1 never
    Tensor g_index = test::i64({{{1, 0}, {1, 1}, {2, 1}}, {{0, 2}, {0, 0}, {2, 2}}});
    Tensor s_index = test::i64({{2, 0, 2, 2}, {1, 1, 0, 2}});
    Tensor twice = test::i64({0, 0});
    Tensor zero = xg::full({}, 0, xg::kInt64);
    auto squared = [](const Tensor& y) { return y * y; };
    std::vector<Row> rows = {
        {"index_select middle dim",
         [&](const In& in) { return squared(xg::index_select(in[0], 1, rows3)); },
         {test::randn64({2, 3, 2}, 100)}},
        {"index_select of a 0-d tensor",
         [&](const In& in) { return squared(xg::index_select(in[0], 0, zero)); },
         {test::randn64({}, 101)}},
        {"gather middle dim",
         [&](const In& in) { return squared(xg::gather(in[0], 1, g_index)); },
         {test::randn64({2, 3, 2}, 102)}},
        {"gather dim -1, index smaller",
         [&](const In& in) { return squared(xg::gather(in[0], -1, g_index)); },
         {test::randn64({3, 4, 3}, 103)}},
        {"scatter_add x and src",
         [&](const In& in) { return squared(xg::scatter_add(in[0], 0, s_index, in[1])); },
         {test::randn64({3, 5}, 104), test::randn64({2, 4}, 105)}},
        {"scatter_add src larger than index",
         [&](const In& in) { return squared(xg::scatter_add(in[0], -1, s_index, in[1])); },
         {test::randn64({2, 4}, 106), test::randn64({3, 5}, 107)}},
        {"scatter_add into a 0-d x",
         [&](const In& in) { return squared(xg::scatter_add(in[0], 0, twice, in[1])); },
         {test::randn64({}, 108), test::randn64({2}, 109)}},
        {"index_add x and source, alpha",
         [&](const In& in) { return squared(xg::index_add(in[0], 1, rows3, in[1], 0.5)); },
         {test::randn64({2, 3, 2}, 110), test::randn64({2, 3, 2}, 111)}},
        {"index_add into a 0-d x",
         [&](const In& in) { return squared(xg::index_add(in[0], 0, twice, in[1], -1.5)); },
         {test::randn64({}, 112), test::randn64({2}, 113)}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradgradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("int64 values gather and add; only floating inputs get gradients") {
    Tensor xi = test::i64({{1, 2, 3}, {4, 5, 6}});
    CHECK_VALUES(xg::index_add(xi, 1, test::i64({0, 0}), test::i64({{1, 2}, {3, 4}}), 2.0),
                 (xt::xarray<double>{{7, 2, 3}, {18, 5, 6}}));
    // A float32 x with a float32 src: both get gradients, in float32.
    Tensor x = xg::zeros({2, 2}).requires_grad_(true);
    Tensor src = xg::ones({2, 2}).requires_grad_(true);
    xg::sum(xg::scatter_add(x, 0, test::i64({{1, 1}}), src) * 2.0).backward();
    CHECK(src.grad().dtype() == xg::kFloat32);
    CHECK_VALUES(src.grad(), (xt::xarray<double>{{2, 2}, {0, 0}}));
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{2, 2}, {2, 2}}));
}

TEST_CASE("gather and scatter_add split across threads still name the first bad index") {
    // Large enough that the rows split across two threads: the bad rows are
    // skipped where they are found, and the first bad index in the index's
    // order is the one reported, as on one thread.
    const int before = xg::get_num_threads();
    xg::set_num_threads(2);
    Tensor x = xg::zeros({512, 256});
    Tensor index = xg::zeros({512, 256}, xg::kInt64);
    auto* entries = index.data<std::int64_t>().data();
    entries[511 * 256 + 3] = -4;  // last row: the second thread's chunk
    entries[300 * 256 + 7] = 256;
    CHECK_THROWS_WITH_AS(xg::gather(x, 1, index),
                         "gather: expected an index in [0, 256) for dim 1 of size 256 (got 256)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::scatter_add(x, 1, index, x),
        "scatter_add: expected an index in [0, 256) for dim 1 of size 256 (got 256)", xg::Error);
    CHECK(xg::sum(xg::abs(x)).item<float>() == 0.0f);  // scatter_add wrote into a copy
    xg::set_num_threads(before);
}

TEST_CASE("gather op error messages") {
    Tensor x = xg::zeros({2, 3});
    // Indices: int64 only, each in [0, size) (PyTorch's CPU kernels take no negative ones).
    CHECK_THROWS_WITH_AS(xg::index_select(x, 0, test::f64({0})),
                         "index_select: expected an int64 index (got float64)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::gather(x, 0, xg::zeros({1, 1})),
                         "gather: expected an int64 index (got float32)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::scatter_add(x, 0, xg::zeros({1, 1}, xg::kBool), x),
                         "scatter_add: expected an int64 index (got bool)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_add(x, 0, Tensor(), x),
                         "index_add: expected a defined index (got an undefined one)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_select(x, -1, test::i64({0, -1})),
                         "index_select: expected an index in [0, 3) for dim 1 of size 3 (got -1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_select(x, 0, test::i64({2})),
                         "index_select: expected an index in [0, 2) for dim 0 of size 2 (got 2)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::gather(x, 1, test::i64({{0, 3}})),
                         "gather: expected an index in [0, 3) for dim 1 of size 3 (got 3)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::gather(x, 0, xg::full({1, 1}, -1, xg::kInt64)),
                         "gather: expected an index in [0, 2) for dim 0 of size 2 (got -1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::scatter_add(x, 1, xg::full({1, 1}, 5, xg::kInt64), x),
                         "scatter_add: expected an index in [0, 3) for dim 1 of size 3 (got 5)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_add(x, 1, test::i64({-2}), xg::zeros({2, 1})),
                         "index_add: expected an index in [0, 3) for dim 1 of size 3 (got -2)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::gather(xg::zeros({0, 3}), 0, xg::zeros({1, 1}, xg::kInt64)),
                         "gather: expected an index in [0, 0) for dim 0 of size 0 (got 0)",
                         xg::Error);
    // Ranks and sizes.
    CHECK_THROWS_WITH_AS(xg::index_select(x, 0, xg::zeros({1, 1}, xg::kInt64)),
                         "index_select: expected a 1-d or 0-d index (got [1, 1])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_select(xg::zeros({}), 0, test::i64({0, 0})),
                         "index_select: expected one index for a 0-d tensor (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::gather(x, 1, test::i64({0})),
        "gather: expected an index with as many dims as the input [2, 3] (got [1])", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::gather(x, 1, xg::zeros({3, 1}, xg::kInt64)),
        "gather: expected an index no larger than the input [2, 3] outside dim 1 (got [3, 1])",
        xg::Error);
    CHECK_THROWS_WITH_AS(xg::scatter_add(x, 1, test::i64({{0, 1}}), xg::zeros({1, 1})),
                         "scatter_add: expected an index no larger than src [1, 1] (got [1, 2])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::scatter_add(x, 1, xg::zeros({1, 1}, xg::kInt64), xg::zeros({1, 1, 1})),
        "scatter_add: expected an index with as many dims as src [1, 1, 1] (got [1, 1])",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::scatter_add(x, 1, xg::zeros({3, 1}, xg::kInt64), xg::zeros({3, 1})),
        "scatter_add: expected an index no larger than x [2, 3] outside dim 1 (got [3, 1])",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::scatter_add(x, 0, xg::zeros({1, 1}, xg::kInt64), xg::zeros({1, 1}, xg::kFloat64)),
        "scatter_add: expected operands of the same dtype (got float32 and float64)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_add(x, 1, test::i64({0}), xg::zeros({2, 2})),
                         "index_add: expected a source of shape [2, 1] (got [2, 2])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_add(x, 1, test::i64({0}), xg::zeros({1, 1})),
                         "index_add: expected a source of shape [2, 1] (got [1, 1])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::index_add(x, 1, xg::zeros({1, 1}, xg::kInt64), xg::zeros({2, 1})),
                         "index_add: expected a 1-d or 0-d index (got [1, 1])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::gather(x, 2, xg::zeros({1, 1}, xg::kInt64)),
                         "gather: expected dim in [-2, 1] for a 2-d tensor (got 2)", xg::Error);
    // one_hot.
    CHECK_THROWS_WITH_AS(xg::one_hot(xg::zeros({2})),
                         "one_hot: expected an int64 tensor of class indices (got float32)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::one_hot(test::i64({0, -1}), 3),
                         "one_hot: expected class values >= 0 (got -1)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::one_hot(test::i64({0, 3}), 3),
                         "one_hot: expected class values smaller than num_classes 3 (got 3)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::one_hot(test::i64({0}), 0),
                         "one_hot: expected class values smaller than num_classes 0 (got 0)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::one_hot(xg::zeros({0}, xg::kInt64)),
                         "one_hot: expected num_classes > 0 for an empty tensor, which has no "
                         "classes to count (got -1)",
                         xg::Error);
}

}  // namespace core_ops_test_gather
