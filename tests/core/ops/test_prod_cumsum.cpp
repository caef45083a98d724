// Tests for prod and cumsum (core/ops/prod_cumsum.cpp): prod's exact gradient with
// zeros, the empty product, 0-d tensors, int64 and bool inputs, float64 gradchecks
// and gradgradchecks (prod's with zeros too), and the error messages. Their
// PyTorch reference cases run in test_reduce.cpp.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_prod_cumsum {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

TEST_CASE("prod with zeros: only a lone zero gets a gradient, two zeros give none") {
    Tensor x = test::f64({{2, 0, 3}, {0, 0, 5}, {2, 4, 0.5}}, true);
    Tensor out = xg::prod(x, 1);
    CHECK_VALUES(out, (xt::xarray<double>{0, 0, 4}));
    xg::sum(out).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{0, 6, 0}, {0, 0, 0}, {2, 1, 8}}));
    // The empty product is 1, over everything or along a dim of size 0.
    CHECK(xg::prod(xg::zeros({0})).item<double>() == 1.0);
    CHECK_VALUES(xg::prod(xg::zeros({2, 0}), -1, true), xt::ones<double>({2, 1}));
    CHECK(xg::prod(xg::zeros({0, 3}), 1).shape() == Shape{0});
}

TEST_CASE("prod and cumsum on 0-d tensors") {
    Tensor s = test::f64(xt::xarray<double>(-2.5));
    CHECK(s.shape() == Shape{});
    for (int dim : {0, -1}) {
        CAPTURE(dim);
        CHECK(xg::prod(s, dim, true).shape() == Shape{});
        CHECK(xg::prod(s, dim).item<double>() == -2.5);
        CHECK(xg::cumsum(s, dim).item<double>() == -2.5);
    }
    CHECK(xg::prod(s).item<double>() == -2.5);
}

TEST_CASE("prod and cumsum keep int64, promote bool to int64, and need no grad") {
    Tensor i = test::i64({{1, 2, 3}, {4, 5, 6}});
    Tensor all = xg::prod(i);
    CHECK(all.dtype() == xg::kInt64);
    CHECK(all.item<std::int64_t>() == 720);
    CHECK(xg::prod(i, 1).dtype() == xg::kInt64);
    CHECK_VALUES(xg::prod(i, 1), (xt::xarray<double>{6, 120}));
    CHECK_VALUES(xg::prod(i, -2, true), (xt::xarray<double>{{4, 10, 18}}));
    Tensor sums = xg::cumsum(i, -1);
    CHECK(sums.dtype() == xg::kInt64);
    CHECK_FALSE(sums.requires_grad());
    CHECK_VALUES(sums, (xt::xarray<double>{{1, 3, 6}, {4, 9, 15}}));
    CHECK_VALUES(xg::cumsum(i, 0), (xt::xarray<double>{{1, 2, 3}, {5, 7, 9}}));
    // int64 products wrap around as in PyTorch: 2^62 * 4 = 2^64 = 0.
    CHECK(xg::prod(test::i64({std::int64_t{1} << 62, 4})).item<std::int64_t>() == 0);
    Tensor flags = xg::gt(i, 2.0);
    CHECK(xg::cumsum(flags, 1).dtype() == xg::kInt64);
    CHECK_VALUES(xg::cumsum(flags, 1), (xt::xarray<double>{{0, 0, 1}, {1, 2, 3}}));
    CHECK(xg::prod(flags).dtype() == xg::kInt64);
    CHECK(xg::prod(flags).item<std::int64_t>() == 0);
}

TEST_CASE("gradcheck: prod and cumsum") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    std::vector<Row> rows = {
        {"prod", [](const In& in) { return xg::prod(in[0]); }},
        {"prod 0", [](const In& in) { return xg::prod(in[0], 0); }},
        {"prod 1 keepdim", [](const In& in) { return xg::prod(in[0], 1, true); }},
        {"prod -1", [](const In& in) { return xg::prod(in[0], -1); }},
        {"cumsum 0", [](const In& in) { return xg::cumsum(in[0], 0); }},
        {"cumsum 1", [](const In& in) { return xg::cumsum(in[0], 1); }},
        {"cumsum -1", [](const In& in) { return xg::cumsum(in[0], -1); }},
    };
    Tensor x = test::away_from_kinks({2, 3, 4}, 42);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const char* name = rows[k].name;
        CAPTURE(name);
        CAPTURE(k);
        CHECK(test::gradcheck(rows[k].fn, {x}));
    }
    // prod is smooth with zeros too; a lone zero per slice is the case that needs care.
    Tensor zeros = test::f64({{1.5, -0.5, 2.0}, {0.0, 3.0, -1.25}});
    CHECK(test::gradcheck([](const In& in) { return xg::prod(in[0]); }, {zeros}));
    CHECK(test::gradcheck([](const In& in) { return xg::prod(in[0], 1); }, {zeros}));
    CHECK(test::gradcheck([](const In& in) { return xg::prod(in[0], 0, true); }, {zeros}));
}

TEST_CASE("prod and cumsum: error messages") {
    Tensor x = xg::zeros({2, 3});
    CHECK_THROWS_WITH_AS(xg::prod(x, 2), "prod: expected dim in [-2, 1] for a 2-d tensor (got 2)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::cumsum(x, -3),
                         "cumsum: expected dim in [-2, 1] for a 2-d tensor (got -3)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::prod(xg::zeros({}), 1),
                         "prod: expected dim in [-1, 0] for a 0-d tensor (got 1)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::prod(Tensor()),
                         "prod: expected a defined tensor (got an undefined one)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::cumsum(Tensor(), 0),
                         "cumsum: expected a defined tensor (got an undefined one)", xg::Error);
}

TEST_CASE("double backward: prod and cumsum, prod with zeros") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    std::vector<Row> rows = {
        {"prod", [](const In& in) { return xg::prod(in[0]); }},
        {"prod 0", [](const In& in) { return xg::prod(in[0], 0); }},
        {"prod 1 keepdim", [](const In& in) { return xg::prod(in[0], 1, true); }},
        {"prod -1", [](const In& in) { return xg::prod(in[0], -1); }},
        {"cumsum 0", [](const In& in) { return xg::cumsum(in[0], 0) * in[0]; }},
        {"cumsum 1", [](const In& in) { return xg::cumsum(in[0] * in[0], 1); }},
        {"cumsum -1", [](const In& in) { return xg::cumsum(in[0], -1); }},
    };
    const Tensor x = test::away_from_kinks({2, 3, 4}, 46);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const char* name = rows[k].name;
        CAPTURE(name);
        CHECK(test::gradgradcheck(rows[k].fn, {x}));
    }
    // A product is a polynomial: its second derivatives are exact with one zero
    // in a slice and with two (where the first derivative is all zeros).
    const Tensor zeros = test::f64({{1.5, 0.0, 2.0, -0.5}, {0.0, 3.0, 0.0, -1.25}});
    CHECK(test::gradgradcheck([](const In& in) { return xg::prod(in[0], 1); }, {zeros}));
    CHECK(test::gradgradcheck([](const In& in) { return xg::prod(in[0]); }, {zeros}));
    // 0-d, and a dim of size 1: the gradient is g itself.
    const Tensor s = test::f64(xt::xarray<double>(-1.5));
    CHECK(test::gradgradcheck([](const In& in) { return xg::prod(in[0], 0) * in[0]; }, {s}));
    CHECK(test::gradgradcheck([](const In& in) { return xg::cumsum(in[0], 0) * in[0]; }, {s}));
    CHECK(
        test::gradgradcheck([](const In& in) { return xg::prod(in[0], 1) * xg::cumsum(in[0], 1); },
                            {test::randn64({3, 1}, 47)}));
}

TEST_CASE("double backward: prod's second derivative with two zeros in a slice") {
    // prod(a, 0, 0) = 0 with a zero gradient, but d2/dx1 dx2 = a.
    Tensor x = test::f64({2.0, 0.0, 0.0}, true);
    Tensor g = xg::autograd::grad({xg::prod(x)}, {x}, {}, std::nullopt, true)[0];
    CHECK_VALUES(g, (xt::xarray<double>{0, 0, 0}));
    Tensor h = xg::autograd::grad({xg::sum(g * test::f64({1.0, 10.0, 100.0}))}, {x})[0];
    // h_k = sum_j w_j d2 prod / dx_j dx_k: only the (1, 2) pair is nonzero (= 2).
    CHECK_VALUES(h, (xt::xarray<double>{0, 200, 20}));
}

}  // namespace core_ops_test_prod_cumsum
