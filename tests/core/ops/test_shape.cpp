// Tests for the shape ops (core/ops/shape.cpp): reshape, transpose, permute,
// unsqueeze, squeeze, cat and the rest, with hand values, gradchecks,
// gradgradchecks and error messages; split, select and unbind
// (core/ops/narrow.cpp) with the ops built on them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_shape {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

namespace {

// [[0, 1, 2], [3, 4, 5]]
Tensor x23() { return test::f64({{0, 1, 2}, {3, 4, 5}}); }

}  // namespace

TEST_CASE("reshape keeps row-major order and infers one -1") {
    Tensor x = x23();
    CHECK_VALUES(xg::reshape(x, {3, 2}), (xt::xarray<double>{{0, 1}, {2, 3}, {4, 5}}));
    CHECK_VALUES(xg::reshape(x, {-1}), (xt::xarray<double>{0, 1, 2, 3, 4, 5}));
    CHECK(xg::reshape(x, {-1, 2}).shape() == Shape{3, 2});
    CHECK(xg::reshape(x, {1, -1, 3}).shape() == Shape{1, 2, 3});
    CHECK(xg::reshape(xg::zeros({1}), {}).shape() == Shape{});
}

TEST_CASE("shape ops copy: writing to the result leaves the input alone") {
    Tensor x = x23();
    Tensor r = xg::reshape(x, {6});
    r.data<double>()(0) = 100.0;
    CHECK(x.data<double>()(0, 0) == 0.0);
    Tensor t = xg::transpose(x, 0, 1);
    t.data<double>()(0, 0) = 100.0;
    CHECK(x.data<double>()(0, 0) == 0.0);
}

TEST_CASE("transpose swaps two dims") {
    Tensor x = x23();
    CHECK_VALUES(xg::transpose(x, 0, 1), (xt::xarray<double>{{0, 3}, {1, 4}, {2, 5}}));
    CHECK_VALUES(xg::transpose(x, -1, -2), (xt::xarray<double>{{0, 3}, {1, 4}, {2, 5}}));
    Tensor t = xg::transpose(test::arange234(), 0, 2);  // [4, 3, 2]: (k, j, i) = 12 i + 4 j + k
    REQUIRE(t.shape() == Shape{4, 3, 2});
    CHECK(t.data<double>()(3, 1, 1) == 12 + 4 + 3);
    CHECK(t.data<double>()(2, 2, 0) == 8 + 2);
}

TEST_CASE("permute reorders dims") {
    Tensor p = xg::permute(test::arange234(), {2, 0, 1});  // [4, 2, 3]: (k, i, j)
    REQUIRE(p.shape() == Shape{4, 2, 3});
    const auto& v = p.data<double>();
    bool all_match = true;
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t k = 0; k < 4; ++k)
                all_match &= v(k, i, j) == double(12 * i + 4 * j + k);
    CHECK(all_match);
    CHECK(xg::permute(test::arange234(), {-1, 0, -2}).shape() == Shape{4, 2, 3});
}

TEST_CASE("permute and transpose place every element, for every order of a 4-D tensor") {
    // arange as [3, 5, 33, 34] (tiles of 32 leave ragged edges), int64 as well:
    // element (a, b, c, d) holds its own flat index, so each output position can
    // be checked against the index it must have come from.
    const Shape shape{3, 5, 33, 34};
    xt::xarray<double> values = xt::arange<double>(3 * 5 * 33 * 34);
    values.reshape(shape);
    Tensor x = test::f64(values);
    Tensor xi = x.to(xg::kInt64);
    std::vector<int> order{0, 1, 2, 3};
    int orders = 0;
    do {
        CAPTURE(order[0]);
        CAPTURE(order[1]);
        CAPTURE(order[2]);
        CAPTURE(order[3]);
        Tensor p = xg::permute(x, order);
        Tensor pi = xg::permute(xi, order);
        bool all_match = true;
        std::size_t flat = 0;
        std::vector<std::size_t> out(4), in(4);
        for (out[0] = 0; out[0] < shape[order[0]]; ++out[0])
            for (out[1] = 0; out[1] < shape[order[1]]; ++out[1])
                for (out[2] = 0; out[2] < shape[order[2]]; ++out[2])
                    for (out[3] = 0; out[3] < shape[order[3]]; ++out[3], ++flat) {
                        for (int i = 0; i < 4; ++i) in[order[i]] = out[i];
                        double source = double(((in[0] * 5 + in[1]) * 33 + in[2]) * 34 + in[3]);
                        all_match &= p.data<double>().data()[flat] == source;
                        all_match &= double(pi.data<std::int64_t>().data()[flat]) == source;
                    }
        CHECK(all_match);
        ++orders;
    } while (std::next_permutation(order.begin(), order.end()));
    CHECK(orders == 24);
    // transpose of the last two dims is the batched (tiled) case; of others, the general one.
    CHECK_VALUES(xg::transpose(x, -1, -2), test::values(xg::permute(x, {0, 1, 3, 2})));
    CHECK_VALUES(xg::transpose(x, 0, 2), test::values(xg::permute(x, {2, 1, 0, 3})));
    CHECK(xg::transpose(xg::zeros({0, 3}), 0, 1).shape() == Shape{3, 0});
}

TEST_CASE("unsqueeze inserts a dim of size one, counting from the end when negative") {
    Tensor x = x23();
    CHECK(xg::unsqueeze(x, 0).shape() == Shape{1, 2, 3});
    CHECK(xg::unsqueeze(x, 1).shape() == Shape{2, 1, 3});
    CHECK(xg::unsqueeze(x, 2).shape() == Shape{2, 3, 1});
    CHECK(xg::unsqueeze(x, -1).shape() == Shape{2, 3, 1});
    CHECK(xg::unsqueeze(x, -3).shape() == Shape{1, 2, 3});
    CHECK_VALUES(xg::unsqueeze(x, 1), (xt::xarray<double>{{{0, 1, 2}}, {{3, 4, 5}}}));
}

TEST_CASE("squeeze removes dims of size one, all or one") {
    Tensor y = xg::reshape(x23(), {1, 2, 1, 3});
    CHECK(xg::squeeze(y).shape() == Shape{2, 3});
    CHECK_VALUES(xg::squeeze(y), test::values(x23()));
    CHECK(xg::squeeze(y, 2).shape() == Shape{1, 2, 3});
    CHECK(xg::squeeze(y, -4).shape() == Shape{2, 1, 3});
    CHECK(xg::squeeze(y, 1).shape() == Shape{1, 2, 1, 3});  // size 2: a no-op, as in torch
    CHECK(xg::squeeze(xg::zeros({1, 1})).shape() == Shape{});
}

TEST_CASE("cat joins along an existing dim") {
    Tensor a = x23();
    Tensor b = test::f64({{6, 7, 8}});
    Tensor c = test::f64({{10, 11}, {12, 13}});
    CHECK_VALUES(xg::cat({a, b}), (xt::xarray<double>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}));
    CHECK_VALUES(xg::cat({a, c}, 1), (xt::xarray<double>{{0, 1, 2, 10, 11}, {3, 4, 5, 12, 13}}));
    CHECK_VALUES(xg::cat({c, a, c}, -1),
                 (xt::xarray<double>{{10, 11, 0, 1, 2, 10, 11}, {12, 13, 3, 4, 5, 12, 13}}));
    CHECK_VALUES(xg::cat({a}), test::values(a));
}

TEST_CASE("gradcheck: every shape op") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    Tensor x = test::randn64({2, 3, 4}, 50);
    Tensor a = test::randn64({2, 3}, 51);
    Tensor b = test::randn64({1, 3}, 52);
    Tensor c = test::randn64({2, 2}, 53);
    Tensor s = test::randn64({1, 3, 1, 2}, 54);
    std::vector<Row> rows = {
        {"reshape",
         [](const In& in) {
             return xg::reshape(in[0], {4, 6});
         },
         {x}},
        {"reshape -1",
         [](const In& in) {
             return xg::reshape(in[0], {-1, 2});
         },
         {x}},
        {"transpose", [](const In& in) { return xg::transpose(in[0], 0, 2); }, {x}},
        {"transpose neg", [](const In& in) { return xg::transpose(in[0], -1, 1); }, {x}},
        {"permute",
         [](const In& in) {
             return xg::permute(in[0], {2, 0, 1});
         },
         {x}},
        {"unsqueeze", [](const In& in) { return xg::unsqueeze(in[0], 1); }, {x}},
        {"unsqueeze -1", [](const In& in) { return xg::unsqueeze(in[0], -1); }, {x}},
        {"squeeze all", [](const In& in) { return xg::squeeze(in[0]); }, {s}},
        {"squeeze one", [](const In& in) { return xg::squeeze(in[0], 2); }, {s}},
        {"cat dim 0",
         [](const In& in) {
             return xg::cat({in[0], in[1]}, 0);
         },
         {a, b}},
        {"cat dim 1",
         [](const In& in) {
             return xg::cat({in[0], in[1]}, 1);
         },
         {a, c}},
        {"cat dim -1",
         [](const In& in) {
             return xg::cat({in[0], in[1], in[0]}, -1);
         },
         {c, a}},
        // A non-trivial consumer, so gradients are not all ones.
        {"transpose then mul",
         [](const In& in) { return xg::transpose(in[0], 0, 1) * xg::transpose(in[0], 0, 1); },
         {a}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("cat sends each input its slice of the gradient") {
    Tensor a = test::f64({{1, 2}}, true);
    Tensor b = test::f64({{3, 4}, {5, 6}}, true);
    Tensor out = xg::cat({a, b}, 0);
    out.backward(test::f64({{1, 2}, {3, 4}, {5, 6}}));
    CHECK_VALUES(a.grad(), (xt::xarray<double>{{1, 2}}));
    CHECK_VALUES(b.grad(), (xt::xarray<double>{{3, 4}, {5, 6}}));
}

TEST_CASE("shape op error messages") {
    Tensor x = xg::zeros({2, 3});
    CHECK_THROWS_WITH_AS(xg::reshape(x, {4, 4}),
                         "reshape: shape [4, 4] is invalid for a tensor of 6 elements", xg::Error);
    CHECK_THROWS_WITH_AS(xg::transpose(x, 0, 2),
                         "transpose: expected dim in [-2, 1] for a 2-d tensor (got 2)", xg::Error);
    // unsqueeze may insert after the last dim, so its range is one wider.
    CHECK_THROWS_WITH_AS(xg::unsqueeze(x, 3),
                         "unsqueeze: expected dim in [-3, 2] for a 2-d tensor (got 3)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::unsqueeze(x, -4),
                         "unsqueeze: expected dim in [-3, 2] for a 2-d tensor (got -4)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::squeeze(x, 2),
                         "squeeze: expected dim in [-2, 1] for a 2-d tensor (got 2)", xg::Error);
    CHECK_THROWS_AS(xg::reshape(x, {-1, -1}), xg::Error);            // only one -1
    CHECK_THROWS_AS(xg::permute(x, {0, 0}), xg::Error);              // not a permutation
    CHECK_THROWS_AS(xg::permute(x, {0}), xg::Error);                 // wrong length
    CHECK_THROWS_AS(xg::cat({x, xg::zeros({2, 4})}, 0), xg::Error);  // sizes differ off dim
    CHECK_THROWS_WITH_AS(xg::cat({x, Tensor()}, 0),
                         "cat: expected defined tensors (got an undefined one)", xg::Error);
    CHECK_THROWS_AS(xg::cat({}, 0), xg::Error);
}

TEST_CASE("split, select, unbind, stack, flatten, unflatten, broadcast_to, tril, triu") {
    xg::Tensor x = test::arange234();  // [2, 3, 4] of 0..23
    auto parts = xg::split(x, 3, -1);  // sizes 3 and 1, as torch.split
    REQUIRE(parts.size() == 2);
    CHECK(parts[1].shape() == xg::Shape{2, 3, 1});
    auto by_sizes = xg::split(x, std::vector<std::int64_t>{1, 2}, 1);
    CHECK(by_sizes[1].shape() == xg::Shape{2, 2, 4});
    CHECK_THROWS_WITH_AS(xg::split(x, std::vector<std::int64_t>{1, 1}, 1),
                         "split: expected sizes summing to 3 (dim 1 of [2, 3, 4]) (got 2)",
                         xg::Error);
    CHECK(test::values(xg::select(x, 1, -1)) ==
          xt::xarray<double>{{8, 9, 10, 11}, {20, 21, 22, 23}});
    CHECK_THROWS_WITH_AS(xg::select(x, 0, 2),
                         doctest::Contains("select: expected an index in [-2, 2)"), xg::Error);
    auto rows = xg::unbind(x, 0);
    REQUIRE(rows.size() == 2);
    CHECK(test::values(xg::stack(rows, 0)) == test::values(x));
    CHECK(xg::stack(rows, -1).shape() == xg::Shape{3, 4, 2});
    CHECK(xg::flatten(x).shape() == xg::Shape{24});
    CHECK(xg::flatten(x, 1).shape() == xg::Shape{2, 12});
    CHECK(xg::unflatten(xg::flatten(x, 1), 1, {3, -1}).shape() == xg::Shape{2, 3, 4});
    CHECK(xg::broadcast_to(test::f64({1.0, 2.0}), {3, 2}).shape() == xg::Shape{3, 2});
    CHECK_THROWS_WITH_AS(xg::broadcast_to(test::f64({1.0, 2.0}), {3}),
                         doctest::Contains("broadcast_to"), xg::Error);
    xg::Tensor m = test::f64({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}, {7.0, 8.0, std::nan("")}});
    xt::xarray<double> lower = test::values(xg::tril(m));
    CHECK(lower(0, 1) == 0.0);
    CHECK(lower(2, 1) == 8.0);
    CHECK(std::isnan(lower(2, 2)));
    CHECK(test::values(xg::triu(m, 1)) == xt::xarray<double>{{0, 2, 3}, {0, 0, 6}, {0, 0, 0}});
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) {
            auto p = xg::unbind(in[0], 1);
            xg::Tensor lower = xg::sum(xg::tril(xg::broadcast_to(p[0], {2, 3, 3}), -1) * p[2]);
            return xg::stack({lower, xg::sum(xg::select(in[0], 0, 1))}, 0) +
                   xg::sum(xg::flatten(xg::split(in[0], 1, 1)[1]));
        },
        {test::randn64({3, 3})}));
}

TEST_CASE("cat promotes its parts to one dtype, and each gradient back to its own") {
    Tensor a = test::f64({1, 2}, true);
    Tensor b = xg::tensor<float>(xt::xarray<float>{3}, true);
    Tensor c = xg::cat({a, b, xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{4})}, 0);
    CHECK(c.dtype() == xg::kFloat64);
    CHECK_VALUES(c, (xt::xarray<double>{1, 2, 3, 4}));
    xg::sum(c * test::f64({1, 2, 3, 4})).backward();
    CHECK(b.grad().dtype() == xg::kFloat32);
    CHECK_VALUES(b.grad(), (xt::xarray<double>{3}));
    CHECK_VALUES(a.grad(), (xt::xarray<double>{1, 2}));
}

TEST_CASE("double backward: every shape op, tril and triu") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    // Each op sees x^2 (or a product follows it), so the second derivatives
    // run through its gradient in both its arguments, x and the seed.
    const Tensor x = test::randn64({2, 3, 4}, 55);
    const Tensor a = test::randn64({2, 3}, 56);
    const Tensor b = test::randn64({1, 3}, 57);
    const Tensor m = test::randn64({2, 3, 3}, 58);
    const Tensor s = test::randn64({1, 3, 1, 2}, 59);
    std::vector<Row> rows = {
        {"reshape",
         [](const In& in) {
             return xg::reshape(in[0] * in[0], {4, -1});
         },
         {x}},
        {"transpose", [](const In& in) { return xg::transpose(in[0] * in[0], -1, 0); }, {x}},
        {"transpose 0-d",
         [](const In& in) { return xg::transpose(in[0] * in[0], 0, -1); },
         {test::f64(xt::xarray<double>(0.5))}},
        {"permute",
         [](const In& in) {
             return xg::permute(in[0] * in[0], {1, 2, 0});
         },
         {x}},
        {"unsqueeze", [](const In& in) { return xg::unsqueeze(in[0] * in[0], -1); }, {x}},
        {"squeeze all", [](const In& in) { return xg::squeeze(in[0] * in[0]); }, {s}},
        {"squeeze one", [](const In& in) { return xg::squeeze(in[0], 0) * in[0]; }, {s}},
        {"cat",
         [](const In& in) {
             return xg::cat({in[0] * in[0], in[1] * in[0]}, 0);
         },
         {a, b}},
        {"stack",
         [](const In& in) {
             return xg::stack({in[0] * in[1], in[0]}, -1);
         },
         {a, b}},
        {"flatten", [](const In& in) { return xg::flatten(in[0] * in[0], 1); }, {x}},
        {"unflatten",
         [](const In& in) {
             return xg::unflatten(in[0] * in[0], -1, {2, 2});
         },
         {x}},
        {"broadcast_to",
         [](const In& in) {
             return xg::broadcast_to(in[0], {2, 1, 3}) * in[0];
         },
         {b}},
        {"tril", [](const In& in) { return xg::tril(in[0] * in[0]); }, {m}},
        {"tril -1", [](const In& in) { return xg::tril(in[0], -1) * in[0]; }, {m}},
        {"triu", [](const In& in) { return xg::triu(in[0] * in[0]); }, {m}},
        {"triu 1 of a wide matrix", [](const In& in) { return xg::triu(in[0], 1) * in[0]; }, {a}},
    };
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const char* name = rows[k].name;
        CAPTURE(name);
        CHECK(test::gradgradcheck(rows[k].fn, rows[k].inputs));
    }
}

}  // namespace core_ops_test_shape
