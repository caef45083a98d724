// Tests for amax, amin and norm (core/ops/amax_norm.cpp): ties sharing the
// gradient, 0-d tensors, dtypes, float64 gradchecks and gradgradchecks for
// every p, and the error messages. Their PyTorch reference cases run in
// test_reduce.cpp.
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_amax_norm {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

TEST_CASE("amax, amin and norm share the gradient evenly among ties") {
    Tensor x = test::f64({{1, 3, 3}, {-3, 2, 3}}, true);
    xg::sum(xg::amax(x, {1})).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{0, 0.5, 0.5}, {0, 0, 1}}));
    Tensor y = test::f64({{1, 3, 3}, {-3, 2, 3}}, true);
    xg::amin(y, {0}).backward(test::f64({1, 2, 4}));
    CHECK_VALUES(y.grad(), (xt::xarray<double>{{0, 0, 2}, {1, 2, 2}}));
    // The inf norm's ties are in |x|, and each share carries the entry's sign.
    Tensor z = test::f64({{1, 3, 3}, {-3, 2, 3}}, true);
    xg::norm(z, std::numeric_limits<double>::infinity()).backward();
    CHECK_VALUES(z.grad(), (xt::xarray<double>{{0, 0.25, 0.25}, {-0.25, 0, 0.25}}));
    // The 2-norm of a zero vector has a zero gradient, not 0 / 0.
    Tensor zero = test::f64({0, 0, 0}, true);
    xg::norm(zero).backward();
    CHECK_VALUES(zero.grad(), (xt::xarray<double>{0, 0, 0}));
}

TEST_CASE("amax, amin and norm on 0-d tensors") {
    Tensor s = test::f64(xt::xarray<double>(-2.5));
    CHECK(s.shape() == Shape{});
    for (int dim : {0, -1}) {
        CAPTURE(dim);
        CHECK(xg::amax(s, {dim}, true).shape() == Shape{});
        CHECK(xg::amin(s, {dim}).item<double>() == -2.5);
        CHECK(xg::norm(s, 1.0, {dim}).item<double>() == 2.5);
    }
    CHECK(xg::norm(s, std::numeric_limits<double>::infinity()).item<double>() == 2.5);
}

TEST_CASE("amax and amin keep any dtype") {
    Tensor i = test::i64({{1, 2, 3}, {4, 5, 6}});
    CHECK(xg::amax(i, {1}).dtype() == xg::kInt64);
    CHECK_VALUES(xg::amax(i, {1}), (xt::xarray<double>{3, 6}));
    CHECK(xg::amin(i).item<std::int64_t>() == 1);
}

TEST_CASE("gradcheck: amax, amin and norm") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<Row> rows = {
        {"amax", [](const In& in) { return xg::amax(in[0]); }},
        {"amax {1}", [](const In& in) { return xg::amax(in[0], {1}); }},
        {"amax {0, -1} keepdim",
         [](const In& in) {
             return xg::amax(in[0], {0, -1}, true);
         }},
        {"amin", [](const In& in) { return xg::amin(in[0]); }},
        {"amin {-2}", [](const In& in) { return xg::amin(in[0], {-2}); }},
        {"amin {2, 0} keepdim",
         [](const In& in) {
             return xg::amin(in[0], {2, 0}, true);
         }},
    };
    for (double p : {1.0, 2.0, 3.0, 0.5, 1.5, inf}) {
        rows.push_back({"norm", [p](const In& in) { return xg::norm(in[0], p); }});
        rows.push_back({"norm {1}", [p](const In& in) { return xg::norm(in[0], p, {1}); }});
        rows.push_back({"norm {-1, 0} keepdim", [p](const In& in) {
                            return xg::norm(in[0], p, {-1, 0}, true);
                        }});
    }
    Tensor x = test::away_from_kinks({2, 3, 4}, 42);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const char* name = rows[k].name;
        CAPTURE(name);
        CAPTURE(k);
        CHECK(test::gradcheck(rows[k].fn, {x}));
    }
}

TEST_CASE("amax, amin and norm: error messages") {
    Tensor x = xg::zeros({2, 3});
    CHECK_THROWS_WITH_AS(xg::amax(x, {0, 2}),
                         "amax: expected dim in [-2, 1] for a 2-d tensor (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::amin(x, {-3}),
                         "amin: expected dim in [-2, 1] for a 2-d tensor (got -3)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::norm(x, 2.0, {5}),
                         "norm: expected dim in [-2, 1] for a 2-d tensor (got 5)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::amax(x, {1, -1}), "amax: expected each dim at most once (got 1, -1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::norm(x, 1.0, {0, 0}),
                         "norm: expected each dim at most once (got 0, 0)", xg::Error);

    // Extremes have no identity: a reduced dim may not be empty (other dims may).
    CHECK_THROWS_WITH_AS(xg::amax(xg::zeros({0, 3})),
                         "amax: expected a non-empty reduced dim 0 (got shape [0, 3])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::amin(xg::zeros({2, 0}), {-1}),
                         "amin: expected a non-empty reduced dim 1 (got shape [2, 0])", xg::Error);
    CHECK(xg::amax(xg::zeros({0, 3}), {1}).shape() == Shape{0});
    const double inf = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(xg::norm(xg::zeros({0}), inf),
                         "norm: expected a non-empty reduced dim 0 for p = inf (got shape [0])",
                         xg::Error);
    CHECK(xg::norm(xg::zeros({0})).item<double>() == 0.0);  // the other norms are 0

    CHECK_THROWS_WITH_AS(xg::norm(x, 0.0),
                         "norm: expected p = 1, 2, any other p > 0, or inf (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::norm(x, -1.0),
                         "norm: expected p = 1, 2, any other p > 0, or inf (got -1)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::norm(x, -inf),
                         "norm: expected p = 1, 2, any other p > 0, or inf (got -inf)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::norm(xg::arange(3)),
                         "norm: expected a floating-point tensor (got int64)", xg::Error);
}

TEST_CASE("double backward: amax, amin and norm for every p") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<Row> rows = {
        {"amax", [](const In& in) { return xg::amax(in[0]) * in[0]; }},
        {"amax {1}", [](const In& in) { return xg::amax(in[0], {1}); }},
        {"amax {0, -1} keepdim of x^2",
         [](const In& in) {
             return xg::amax(in[0] * in[0], {0, -1}, true);
         }},
        {"amin {-2}", [](const In& in) { return xg::amin(in[0], {-2}) * xg::amin(in[0], {-2}); }},
        {"amin {2, 0} keepdim",
         [](const In& in) {
             return xg::amin(in[0], {2, 0}, true);
         }},
    };
    for (double p : {1.0, 2.0, 3.0, 0.5, 1.5, inf}) {
        rows.push_back({"norm", [p](const In& in) { return xg::norm(in[0], p); }});
        rows.push_back({"norm {1}", [p](const In& in) { return xg::norm(in[0], p, {1}); }});
        rows.push_back({"norm {-1, 0} keepdim", [p](const In& in) {
                            return xg::norm(in[0], p, {-1, 0}, true);
                        }});
        rows.push_back({"norm of x^2 times x", [p](const In& in) {
                            return xg::norm(in[0] * in[0], p, {2}, true) * in[0];
                        }});
    }
    // Away from the kinks: no ties, no zeros, where |x| and the extremes bend.
    const Tensor x = test::away_from_kinks({2, 3, 4}, 48);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const char* name = rows[k].name;
        CAPTURE(name);
        CAPTURE(k);
        CHECK(test::gradgradcheck(rows[k].fn, {x}));
    }
    const Tensor s = test::f64(xt::xarray<double>(-0.75));
    CHECK(test::gradgradcheck([](const In& in) { return xg::amax(in[0], {0}) * in[0]; }, {s}));
    CHECK(test::gradgradcheck([](const In& in) { return xg::norm(in[0], 3.0) * in[0]; }, {s}));
}

TEST_CASE("double backward: the recorded gradients keep the tie and zero rules") {
    // Under create_graph the same values as the raw loops: ties share g evenly,
    // the 2-norm of a zero vector has a zero gradient.
    const double inf = std::numeric_limits<double>::infinity();
    Tensor x = test::f64({{1, 3, 3}, {-3, 2, 3}}, true);
    Tensor zero = test::f64({0, 0, 0}, true);
    std::vector<std::pair<Tensor, test::Fn>> cases = {
        {x, [](const In& in) { return xg::amax(in[0], {1}); }},
        {x, [](const In& in) { return xg::amin(in[0], {0}); }},
        {x, [inf](const In& in) { return xg::norm(in[0], inf); }},
        {zero, [](const In& in) { return xg::norm(in[0]); }},
        {zero, [](const In& in) { return xg::norm(in[0], 3.0); }},
    };
    for (std::size_t k = 0; k < cases.size(); ++k) {
        CAPTURE(k);
        const Tensor& in = cases[k].first;
        Tensor out = cases[k].second({in});
        // A seed with a history of its own: amax's gradient depends on it alone.
        Tensor seed = (xg::ones_like(out) * 0.5).detach();
        seed.requires_grad_(true);
        Tensor plain = xg::autograd::grad({out}, {in}, {seed}, true)[0];
        Tensor recorded = xg::autograd::grad({out}, {in}, {seed}, true, true)[0];
        CHECK(recorded.requires_grad());
        CHECK_VALUES(recorded, test::values(plain));
    }
}

}  // namespace core_ops_test_amax_norm
