// Tests for scaled_dot_product_attention (core/ops/attention.cpp): output and the
// gradients of query, key, value and a floating mask against PyTorch
// (core/reference/gen_attention.py) in float64 and float32, float64 gradchecks
// and gradgradchecks with every kind of mask, dropout's mask and scale, and the
// op's errors.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xtensor/xadapt.hpp>

#include "core/reference/attention_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_attention {

using xg::Tensor;

namespace {

template <class T>
Tensor from(const std::vector<double>& values, const std::vector<std::size_t>& shape,
            bool requires_grad = false) {
    xt::xarray<T> a = xt::cast<T>(xt::adapt(values, shape));
    return xg::tensor<T>(a, requires_grad);
}

// One reference case in dtype T: output and every gradient within tol.
template <class T>
void check_case(const attention_ref::Case& c, double tol) {
    INFO(c.name, sizeof(T) == 4 ? " in float32" : " in float64");
    Tensor q = from<T>(c.q, c.q_shape, true), k = from<T>(c.k, c.k_shape, true),
           v = from<T>(c.v, c.v_shape, true);
    Tensor mask = c.mask_shape.empty() ? Tensor() : from<T>(c.mask, c.mask_shape, true);
    Tensor out = xg::scaled_dot_product_attention(q, k, v, mask, 0.0, c.causal);
    CHECK(out.grad_fn_name() == "ScaledDotProductAttentionBackward");
    out.backward(from<T>(c.grad_out, out.shape()));
    auto expect = [&](const Tensor& t, const std::vector<double>& e) {
        return test::rel_error(test::values(t), test::values(from<double>(e, t.shape())));
    };
    CHECK(expect(out, c.out) <= tol);
    CHECK(expect(q.grad(), c.dq) <= tol);
    CHECK(expect(k.grad(), c.dk) <= tol);
    CHECK(expect(v.grad(), c.dv) <= tol);
    if (mask.defined()) CHECK(expect(mask.grad(), c.dmask) <= tol);
}

}  // namespace

TEST_CASE("scaled_dot_product_attention matches PyTorch: output and gradients, every mask kind") {
    for (const auto& c : attention_ref::kCases) {
        check_case<double>(c, 1e-12);
        check_case<float>(c, 2e-5);
    }
}

TEST_CASE("scaled_dot_product_attention gradchecks in float64 with and without masks") {
    const Tensor q = test::randn64({2, 3, 4}, 1), k = test::randn64({2, 5, 4}, 2),
                 v = test::randn64({2, 5, 3}, 3), mask = test::randn64({3, 5}, 4);
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::scaled_dot_product_attention(in[0], in[1], in[2]);
        },
        {q, k, v}));
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::scaled_dot_product_attention(in[0], in[1], in[2], in[3]);
        },
        {q, k, v, mask}));
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), 0.0, true);
        },
        {q, k, v}));
}

TEST_CASE("scaled_dot_product_attention: a causal row attends to its prefix only") {
    // With v = identity rows, the output row i is the attention weights of query i.
    const Tensor q = test::randn64({4, 3}, 5), k = test::randn64({4, 3}, 6);
    const Tensor v = test::f64(xt::eye<double>(4));
    const xt::xarray<double> w =
        test::values(xg::scaled_dot_product_attention(q, k, v, Tensor(), 0.0, true));
    for (std::size_t i = 0; i < 4; ++i) {
        double total = 0;
        for (std::size_t j = 0; j < 4; ++j) {
            if (j > i) CHECK(w(i, j) == 0.0);
            total += w(i, j);
        }
        CHECK(total == doctest::Approx(1.0).epsilon(1e-15));
    }
    CHECK(w(0, 0) == 1.0);
}

TEST_CASE("scaled_dot_product_attention drops weights with dropout's mask and scale") {
    const Tensor q = test::randn64({1, 6, 4}, 7), k = test::randn64({1, 6, 4}, 8);
    const Tensor v = xg::reshape(test::f64(xt::eye<double>(6)), {1, 6, 6});
    const xt::xarray<double> full = test::values(xg::scaled_dot_product_attention(q, k, v));
    xg::manual_seed(11);
    const xt::xarray<double> dropped =
        test::values(xg::scaled_dot_product_attention(q, k, v, Tensor(), 0.5));
    std::size_t zeros = 0;
    for (std::size_t i = 0; i < full.size(); ++i) {
        const double d = dropped.data()[i], f = full.data()[i];
        CHECK((d == 0.0 || d == doctest::Approx(2.0 * f).epsilon(1e-14)));
        zeros += d == 0.0;
    }
    CHECK(zeros > 6);
    CHECK(zeros < 30);
    xg::manual_seed(11);  // the same key, the same mask
    CHECK(test::identical(xg::scaled_dot_product_attention(q, k, v, Tensor(), 0.5),
                          test::f64(dropped)));
}

TEST_CASE("scaled_dot_product_attention with dropout gradchecks under a fixed mask") {
    const Tensor q = test::randn64({2, 3, 4}, 1), k = test::randn64({2, 5, 4}, 2),
                 v = test::randn64({2, 5, 3}, 3);
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            xg::manual_seed(3);  // every evaluation draws the same dropout mask
            return xg::scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), 0.3);
        },
        {q, k, v}));
}

TEST_CASE("double backward: scaled_dot_product_attention with every mask kind and dropout") {
    // Small shapes: each numerical derivative runs the op and its recorded backward.
    const Tensor q = test::randn64({2, 2, 3}, 21), k = test::randn64({2, 3, 3}, 22),
                 v = test::randn64({2, 3, 2}, 23), mask = test::randn64({2, 3}, 24);
    CHECK(test::gradgradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::scaled_dot_product_attention(in[0], in[1], in[2]);
        },
        {q, k, v}));
    CHECK(test::gradgradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::scaled_dot_product_attention(in[0], in[1], in[2], in[3]);
        },
        {q, k, v, mask}));
    // Causal, without batch dims: the -inf scores stay out of every derivative.
    CHECK(test::gradgradcheck(
        [](const std::vector<Tensor>& in) {
            return xg::scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), 0.0, true);
        },
        {test::randn64({3, 2}, 25), test::randn64({4, 2}, 26), test::randn64({4, 3}, 27)}));
    CHECK(test::gradgradcheck(
        [](const std::vector<Tensor>& in) {
            xg::manual_seed(5);  // every evaluation draws the same dropout mask
            return xg::scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), 0.3);
        },
        {q, k, v}));
}

TEST_CASE("scaled_dot_product_attention rejects mismatched shapes, dtypes and masks") {
    const Tensor q = xg::zeros({2, 3, 4}), k = xg::zeros({2, 5, 4}), v = xg::zeros({2, 5, 6});
    CHECK_THROWS_WITH_AS(
        xg::scaled_dot_product_attention(q, xg::zeros({2, 5, 3}), v),
        "scaled_dot_product_attention: expected query [..., L, E], key [..., S, E] and value "
        "[..., S, Ev] with the same leading dims (got [2, 3, 4], [2, 5, 3] and [2, 5, 6])",
        xg::Error);
    CHECK_THROWS_WITH_AS(xg::scaled_dot_product_attention(q, k, xg::zeros({3, 5, 6})),
                         "scaled_dot_product_attention: expected query [..., L, E], key [..., S, "
                         "E] and value [..., S, Ev] with the same leading dims (got [2, 3, 4], "
                         "[2, 5, 4] and [3, 5, 6])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::scaled_dot_product_attention(q, k, v, xg::zeros({3, 4})),
                         "scaled_dot_product_attention: expected an attn_mask broadcastable to "
                         "the scores' shape [2, 3, 5] (got [3, 4])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::scaled_dot_product_attention(q, k, v, xg::zeros({3, 5}), 0.0, true),
                         "scaled_dot_product_attention: expected no attn_mask when is_causal is "
                         "true (got one of shape [3, 5])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::scaled_dot_product_attention(q, k, v, xg::zeros({3, 5}, xg::kFloat64)),
                         "scaled_dot_product_attention: expected a floating-point attn_mask of "
                         "the query's dtype float32 (got float64)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::scaled_dot_product_attention(q, k, v, Tensor(), 1.5),
                         "scaled_dot_product_attention: expected dropout_p in [0, 1] (got 1.5)",
                         xg::Error);
}

}  // namespace core_ops_test_attention
