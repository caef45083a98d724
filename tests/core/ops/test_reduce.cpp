// Tests for the reductions (core/ops/reduce.cpp): sum, mean, max, min, argmax,
// argmin, var, std, logsumexp, softmax and log_softmax, with hand or PyTorch values,
// a gradcheck per form, second derivatives (gradgradcheck) of each, and the
// error messages; and the PyTorch reference cases of
// tests/core/reference/gen_reductions.py, which span prod, cumsum
// (test_prod_cumsum.cpp), amax, amin and norm (test_amax_norm.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/reductions_values.hpp"
#include "core/reference/reference_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_reduce {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

namespace {

Tensor x23() { return test::f64({{1, 2, 3}, {4, 5, 6}}); }

}  // namespace

TEST_CASE("sum: full, over dims, keepdim and negative dims") {
    Tensor x = x23();
    Tensor all = xg::sum(x);
    CHECK(all.shape() == Shape{});  // full reductions are 0-d
    CHECK(all.item<double>() == 21.0);
    CHECK_VALUES(xg::sum(x, {0}), (xt::xarray<double>{5, 7, 9}));
    CHECK_VALUES(xg::sum(x, {1}), (xt::xarray<double>{6, 15}));
    CHECK_VALUES(xg::sum(x, {-1}), (xt::xarray<double>{6, 15}));
    CHECK_VALUES(xg::sum(x, {1}, true), test::column({6, 15}));
    CHECK_VALUES(xg::sum(x, {-2}, true), (xt::xarray<double>{{5, 7, 9}}));
    Tensor both = xg::sum(x, {0, 1});
    CHECK(both.shape() == Shape{});
    CHECK(both.item<double>() == 21.0);
    CHECK(xg::sum(x, {0, 1}, true).shape() == Shape{1, 1});

    // Over dims 0 and 2 of [2, 3, 4]: sum_{i,k} (12 i + 4 j + k) = 60 + 32 j.
    CHECK_VALUES(xg::sum(test::arange234(), {0, 2}), (xt::xarray<double>{60, 92, 124}));
    CHECK_VALUES(xg::sum(test::arange234(), {2, -3}), (xt::xarray<double>{60, 92, 124}));
    CHECK(xg::sum(test::f32({1.0f, 2.0f})).dtype() == xg::kFloat32);
}

TEST_CASE("mean: full, over dims, keepdim and negative dims") {
    Tensor x = x23();
    Tensor all = xg::mean(x);
    CHECK(all.shape() == Shape{});
    CHECK(all.item<double>() == 3.5);
    CHECK_VALUES(xg::mean(x, {0}), (xt::xarray<double>{2.5, 3.5, 4.5}));
    CHECK_VALUES(xg::mean(x, {-1}), (xt::xarray<double>{2, 5}));
    CHECK_VALUES(xg::mean(x, {1}, true), test::column({2, 5}));
    CHECK(xg::mean(x, {0, 1}).item<double>() == 3.5);
    // Over dims 0 and 2 of [2, 3, 4]: (60 + 32 j) / 8.
    CHECK_VALUES(xg::mean(test::arange234(), {0, 2}), (xt::xarray<double>{7.5, 11.5, 15.5}));
}

TEST_CASE("max over a dim returns values and int64 indices") {
    Tensor x = test::f64({{1, 7, 3}, {8, 5, 6}});
    auto [values, indices] = xg::max(x, 1);
    CHECK_VALUES(values, (xt::xarray<double>{7, 8}));
    CHECK(indices.dtype() == xg::kInt64);
    CHECK_VALUES(indices, (xt::xarray<double>{1, 0}));

    auto [v0, i0] = xg::max(x, 0, true);
    CHECK_VALUES(v0, (xt::xarray<double>{{8, 7, 6}}));
    CHECK_VALUES(i0, (xt::xarray<double>{{1, 0, 1}}));
    CHECK(i0.shape() == Shape{1, 3});

    auto [vn, in] = xg::max(x, -1);
    CHECK_VALUES(vn, (xt::xarray<double>{7, 8}));
    CHECK_VALUES(in, (xt::xarray<double>{1, 0}));
    CHECK_FALSE(in.requires_grad());
}

TEST_CASE("max sends the gradient to the arg max only") {
    Tensor x = test::f64({{1, 7, 3}, {8, 5, 6}}, true);
    xg::sum(xg::max(x, 1).first * test::f64({2, 3})).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{0, 2, 0}, {3, 0, 0}}));
}

TEST_CASE("softmax and log_softmax match PyTorch along every dim") {
    Tensor x = test::f64(ref::softmax_input);
    const xt::xarray<double>* soft[] = {&ref::softmax_dim0, &ref::softmax_dim1, &ref::softmax_dim2};
    const xt::xarray<double>* logs[] = {&ref::log_softmax_dim0, &ref::log_softmax_dim1,
                                        &ref::log_softmax_dim2};
    for (int d = 0; d < 3; ++d) {
        CAPTURE(d);
        CHECK_VALUES(xg::softmax(x, d), *soft[d]);
        CHECK_VALUES(xg::softmax(x, d - 3), *soft[d]);  // the same dim counted from the end
        CHECK_VALUES(xg::log_softmax(x, d), *logs[d]);
        CHECK_VALUES(xg::log_softmax(x, d - 3), *logs[d]);
    }
    // Probabilities along the dim add up to one.
    CHECK_VALUES(xg::sum(xg::softmax(x, 1), {1}), xt::ones<double>({2, 4}));
}

TEST_CASE("softmax and log_softmax are stable for large logits") {
    Tensor x = test::f64(ref::softmax_big_input);
    CHECK_VALUES(xg::softmax(x, 1), ref::softmax_big);
    CHECK_VALUES(xg::log_softmax(x, -1), ref::log_softmax_big);
    Tensor x32 = x.to(xg::kFloat32);
    CHECK_VALUES_TOL(xg::softmax(x32, 1), ref::softmax_big, 1e-5, 1e-6);
    CHECK_VALUES_TOL(xg::log_softmax(x32, 1), ref::log_softmax_big, 1e-5, 1e-5);
}

TEST_CASE("gradcheck: sum and mean in every form") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    std::vector<Row> rows = {
        {"sum", [](const In& in) { return xg::sum(in[0]); }},
        {"sum {0}", [](const In& in) { return xg::sum(in[0], {0}); }},
        {"sum {1} keepdim", [](const In& in) { return xg::sum(in[0], {1}, true); }},
        {"sum {-1}", [](const In& in) { return xg::sum(in[0], {-1}); }},
        {"sum {0, 2}",
         [](const In& in) {
             return xg::sum(in[0], {0, 2});
         }},
        {"sum {-3, 1} keepdim",
         [](const In& in) {
             return xg::sum(in[0], {-3, 1}, true);
         }},
        {"mean", [](const In& in) { return xg::mean(in[0]); }},
        {"mean {0}", [](const In& in) { return xg::mean(in[0], {0}); }},
        {"mean {2} keepdim", [](const In& in) { return xg::mean(in[0], {2}, true); }},
        {"mean {-2}", [](const In& in) { return xg::mean(in[0], {-2}); }},
        {"mean {0, -1} keepdim",
         [](const In& in) {
             return xg::mean(in[0], {0, -1}, true);
         }},
    };
    Tensor x = test::randn64({2, 3, 4}, 40);
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, {x}));
    }
}

TEST_CASE("gradcheck: max values, softmax and log_softmax") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    std::vector<Row> rows = {
        {"max 0", [](const In& in) { return xg::max(in[0], 0).first; }},
        {"max 1 keepdim", [](const In& in) { return xg::max(in[0], 1, true).first; }},
        {"max -1", [](const In& in) { return xg::max(in[0], -1).first; }},
        {"softmax 0", [](const In& in) { return xg::softmax(in[0], 0); }},
        {"softmax 1", [](const In& in) { return xg::softmax(in[0], 1); }},
        {"softmax -1", [](const In& in) { return xg::softmax(in[0], -1); }},
        {"log_softmax 0", [](const In& in) { return xg::log_softmax(in[0], 0); }},
        {"log_softmax 1", [](const In& in) { return xg::log_softmax(in[0], 1); }},
        {"log_softmax -1", [](const In& in) { return xg::log_softmax(in[0], -1); }},
    };
    // randn draws have no ties, so max has no kink here.
    Tensor x = test::randn64({2, 3, 4}, 41);
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, {x}));
    }
}

TEST_CASE("dim errors name the op and the valid range") {
    Tensor x = xg::zeros({2, 3});
    CHECK_THROWS_WITH_AS(xg::sum(x, {3}), "sum: expected dim in [-2, 1] for a 2-d tensor (got 3)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::mean(x, {-3}),
                         "mean: expected dim in [-2, 1] for a 2-d tensor (got -3)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::max(x, 2), "max: expected dim in [-2, 1] for a 2-d tensor (got 2)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::softmax(x, 2),
                         "softmax: expected dim in [-2, 1] for a 2-d tensor (got 2)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::log_softmax(x, -3),
                         "log_softmax: expected dim in [-2, 1] for a 2-d tensor (got -3)",
                         xg::Error);
    CHECK_THROWS_AS(xg::sum(x, {0, 0}), xg::Error);  // a dim twice, as torch refuses
    CHECK_THROWS_AS(xg::mean(x, {1, -1}), xg::Error);
    CHECK_THROWS_AS(xg::mean(xg::arange(3)), xg::Error);  // mean of int64, as torch refuses
    CHECK_THROWS_WITH_AS(xg::sum(xg::zeros({2, 3, 4}), {0, 5}),
                         "sum: expected dim in [-3, 2] for a 3-d tensor (got 5)", xg::Error);
}

TEST_CASE("min, argmax, argmin, var, std, logsumexp: values as PyTorch defines them, gradchecks") {
    xg::Tensor x = test::f64({{3.0, -1.0, 4.0}, {1.0, 5.0, -9.0}});
    auto [low, at] = xg::min(x, 1);
    CHECK(test::values(low) == xt::xarray<double>{-1.0, -9.0});
    CHECK(test::values(at) == xt::xarray<double>{1.0, 2.0});
    CHECK(xg::max(x).item<double>() == 5.0);
    CHECK(xg::min(x).item<double>() == -9.0);
    CHECK(xg::argmax(x).item<std::int64_t>() == 4);  // into the flattened tensor
    CHECK(xg::argmin(x).item<std::int64_t>() == 5);
    CHECK(test::values(xg::argmax(x, 0, true)) == xt::xarray<double>{{0.0, 1.0, 0.0}});
    CHECK(xg::argmax(x, 1).dtype() == xg::kInt64);
    // var: sum of squared deviations / (n - correction): row 0 (mean 2) 14 / 2, row 1 (mean -1) 104
    // / 2.
    CHECK(test::values(xg::var(x, {1})) == xt::xarray<double>{7.0, 52.0});
    xg::Tensor biased = xg::var(x, {1}, 0.0, true);
    CHECK(biased.shape() == xg::Shape{2, 1});
    CHECK(test::values(xg::flatten(biased)) == xt::xarray<double>{14.0 / 3, 104.0 / 3});
    CHECK(xg::std(x, {0}).shape() == xg::Shape{3});
    CHECK(test::values(xg::std(x, {0}))(0) == doctest::Approx(std::sqrt(2.0)));
    // Over everything: the mean is 0.5, the squared deviations sum to 131.5.
    CHECK(xg::var(x).item<double>() == doctest::Approx(131.5 / 5).epsilon(1e-14));
    // logsumexp: log(e^3 + e^-1 + e^4) and the large-value path that must not overflow.
    CHECK(test::values(xg::logsumexp(x, {1}))(0) ==
          doctest::Approx(std::log(std::exp(3.0) + std::exp(-1.0) + std::exp(4.0))).epsilon(1e-14));
    CHECK(xg::logsumexp(test::f64({1000.0, 1000.0}), {0}).item<double>() ==
          doctest::Approx(1000.0 + std::log(2.0)).epsilon(1e-14));
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(xg::logsumexp(test::f64({-inf, -inf}), {0}).item<double>() == -inf);
    CHECK(xg::logsumexp(x, {0, 1}, true).shape() == xg::Shape{1, 1});
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) {
            return xg::var(in[0], {1}) + xg::std(in[0], {1}, 0.0) + xg::logsumexp(in[0], {1}) +
                   xg::min(in[0], 1).first;
        },
        {test::randn64({2, 4})}));
}

// ---- PyTorch's reference cases for prod, cumsum, amax, amin and norm ----

namespace {

xt::xarray<double> ref_array(const std::vector<std::size_t>& shape,
                             const std::vector<double>& values) {
    auto a = xt::xarray<double>::from_shape(shape);
    std::copy(values.begin(), values.end(), a.begin());
    return a;
}

// The op a reference case names, as the generator calls it.
Tensor run_case(const reductions_ref::Case& c, const Tensor& x) {
    const std::string op = c.op;
    if (op == "prod") return c.dims.empty() ? xg::prod(x) : xg::prod(x, c.dims[0], c.keepdim);
    if (op == "cumsum") return xg::cumsum(x, c.dims[0]);
    if (op == "amax") return xg::amax(x, c.dims, c.keepdim);
    if (op == "amin") return xg::amin(x, c.dims, c.keepdim);
    return xg::norm(x, c.p, c.dims, c.keepdim);
}

}  // namespace

TEST_CASE("prod, cumsum, amax, amin and norm match PyTorch's values and gradients") {
    for (std::size_t k = 0; k < reductions_ref::kCases.size(); ++k) {
        const reductions_ref::Case& c = reductions_ref::kCases[k];
        const reductions_ref::Input& in = reductions_ref::kInputs[c.input];
        const char* input = in.name;
        const char* op = c.op;
        const double p = c.p;
        CAPTURE(k);
        CAPTURE(op);
        CAPTURE(input);
        CAPTURE(p);
        for (xg::Dtype dtype : {xg::kFloat64, xg::kFloat32}) {
            CAPTURE(xg::dtype_name(dtype));
            // float32 rounds the inputs and each product, sum and power.
            const double rtol = dtype == xg::kFloat64 ? 1e-7 : 1e-4;
            const double atol = dtype == xg::kFloat64 ? 1e-9 : 1e-6;
            Tensor x = test::f64(ref_array(in.shape, in.values)).to(dtype);
            x.requires_grad_(true);
            Tensor out = run_case(c, x);
            CHECK(out.dtype() == dtype);
            CHECK_VALUES_TOL(out, ref_array(c.out_shape, c.out), rtol, atol);
            Tensor upstream = test::f64(ref_array(c.out_shape, c.upstream)).to(dtype);
            xg::sum(out * upstream).backward();
            CHECK_VALUES_TOL(x.grad(), ref_array(in.shape, c.grad), rtol, atol);
        }
    }
}

TEST_CASE("double backward: every reduction, both var and logsumexp paths") {
    struct Row {
        const char* name;
        test::Fn fn;
    };
    // var and logsumexp over trailing dims run one row kernel; over other dims,
    // a composite of ops: both appear below.
    std::vector<Row> rows = {
        {"sum {0, 2}",
         [](const In& in) {
             return xg::sum(in[0] * in[0], {0, 2});
         }},
        {"mean keepdim", [](const In& in) { return xg::mean(in[0] * in[0], {1}, true); }},
        {"max 1", [](const In& in) { return xg::max(in[0], 1).first; }},
        {"max -1 keepdim of x^2",
         [](const In& in) { return xg::max(in[0] * in[0], -1, true).first; }},
        {"min 0", [](const In& in) { return xg::min(in[0], 0).first * in[0]; }},
        {"max full", [](const In& in) { return xg::max(in[0]) * in[0]; }},
        {"min full", [](const In& in) { return xg::min(in[0] * in[0]); }},
        {"var rows", [](const In& in) { return xg::var(in[0], {-1}); }},
        {"var rows keepdim unbiased 0",
         [](const In& in) {
             return xg::var(in[0], {1, 2}, 0.0, true);
         }},
        {"var full", [](const In& in) { return xg::var(in[0]); }},
        {"var composite",
         [](const In& in) {
             return xg::var(in[0], {0, 2});
         }},
        {"std rows", [](const In& in) { return xg::std(in[0], {-1}); }},
        {"std composite", [](const In& in) { return xg::std(in[0], {1}, 0.0, true); }},
        {"logsumexp rows", [](const In& in) { return xg::logsumexp(in[0], {-1}); }},
        {"logsumexp rows keepdim",
         [](const In& in) {
             return xg::logsumexp(in[0], {1, 2}, true);
         }},
        {"logsumexp composite", [](const In& in) { return xg::logsumexp(in[0], {0}); }},
        {"softmax 1", [](const In& in) { return xg::softmax(in[0], 1); }},
        {"log_softmax -1", [](const In& in) { return xg::log_softmax(in[0], -1); }},
    };
    // No ties, so max and min have no kink within the finite differences.
    const Tensor x = test::away_from_kinks({2, 3, 4}, 43);
    for (std::size_t k = 0; k < rows.size(); ++k) {
        const char* name = rows[k].name;
        CAPTURE(name);
        CHECK(test::gradgradcheck(rows[k].fn, {x}));
    }
    // 0-d: max over its one dim, and the row kernels over a single row.
    const Tensor s = test::f64(xt::xarray<double>(0.75));
    CHECK(test::gradgradcheck([](const In& in) { return xg::max(in[0], 0).first * in[0]; }, {s}));
    CHECK(test::gradgradcheck([](const In& in) { return xg::var(in[0], {0}, 0.0); },
                              {test::randn64({5}, 44)}));
    CHECK(test::gradgradcheck([](const In& in) { return xg::logsumexp(in[0], {0}); },
                              {test::randn64({5}, 45)}));
}

TEST_CASE("double backward: max's gradient is a recorded scatter of g, with no edge to x") {
    Tensor x = test::f64({{1.0, 4.0, 2.0}, {3.0, -1.0, 0.5}}, true);
    Tensor v = test::f64({2.0, -3.0}, true);
    Tensor plain = xg::autograd::grad({xg::max(x, 1).first}, {x}, {v.detach()})[0];
    Tensor g = xg::autograd::grad({xg::max(x, 1).first}, {x}, {v}, std::nullopt, true)[0];
    CHECK(test::identical(g, plain));
    CHECK_VALUES(g, (xt::xarray<double>{{0, 2, 0}, {-3, 0, 0}}));
    // d/dv sum(g * w) gathers w at the arg maxes; x is unused, as in PyTorch.
    Tensor w = test::f64({{1, 10, 100}, {1000, 1e4, 1e5}});
    std::vector<Tensor> second =
        xg::autograd::grad({xg::sum(g * w)}, {v, x}, {}, std::nullopt, false, true);
    CHECK_VALUES(second[0], (xt::xarray<double>{10, 1000}));
    CHECK_FALSE(second[1].defined());
}

}  // namespace core_ops_test_reduce
