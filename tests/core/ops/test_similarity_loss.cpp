// Tests for kl_div, cosine_similarity and cosine_embedding_loss
// (core/ops/similarity_loss.cpp): float32, int64 and floating targets, gradchecks
// and gradgradchecks for every reduction and error messages. Their PyTorch reference cases run in
// test_loss.cpp.
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_similarity_loss {

using xg::Tensor;
using In = std::vector<Tensor>;

TEST_CASE("cosine_similarity on float32 is close to float64") {
    Tensor a = test::randn64({3, 4}, 72), b = test::randn64({3, 4}, 73);
    CHECK_VALUES_TOL(xg::cosine_similarity(a.to(xg::kFloat32), b.to(xg::kFloat32)),
                     test::values(xg::cosine_similarity(a, b)), 1e-5, 1e-6);
}

TEST_CASE("cosine_embedding_loss takes int64 and floating targets alike") {
    Tensor a = test::randn64({3, 4}, 74), b = test::randn64({3, 4}, 75);
    Tensor by_int = xg::cosine_embedding_loss(a, b, test::i64({1, -1, 1}), 0.1, "none");
    Tensor by_float = xg::cosine_embedding_loss(a, b, test::f64({1, -1, 1}), 0.1, "none");
    CHECK_VALUES(by_int, test::values(by_float));
    // A target other than 1 or -1 contributes 0.
    CHECK(xg::cosine_embedding_loss(a, b, test::i64({0, 0, 0}), 0.0, "sum").item<double>() == 0.0);
}

namespace {

struct LossRow {
    const char* name;
    test::Fn fn;
    In inputs;
};

// The cases both the first- and the second-derivative checks run. Targets away
// from 0 (t log t has no second derivative there), norms above eps (below it
// PyTorch's gradient is not the derivative, see clamped_norm), margin 0.1 off
// cosine_embedding_loss's kink.
std::vector<LossRow> similarity_rows() {
    const Tensor log_q = xg::log_softmax(test::randn64({3, 4}, 84), 1).detach();
    const Tensor p_kl = xg::softmax(test::randn64({3, 4}, 85), 1).detach();
    const Tensor a = test::randn64({3, 4}, 86), b = test::randn64({3, 4}, 87);
    const Tensor column = test::randn64({3, 1}, 88), row = test::randn64({4}, 89);
    const Tensor pm = test::i64({1, -1, -1});
    std::vector<LossRow> rows;
    for (std::string r : {"none", "mean", "sum"}) {
        rows.push_back(
            {"cosine_embedding_loss",
             [=](const In& in) { return xg::cosine_embedding_loss(in[0], in[1], pm, 0.1, r); },
             {a, b}});
    }
    for (std::string r : {"none", "mean", "sum", "batchmean"}) {
        rows.push_back(
            {"kl_div", [=](const In& in) { return xg::kl_div(in[0], in[1], r); }, {log_q, p_kl}});
        rows.push_back({"kl_div log_target",
                        [=](const In& in) { return xg::kl_div(in[0], in[1], r, true); },
                        {log_q, xg::log(p_kl).detach()}});
    }
    rows.push_back({"cosine_similarity dim 1",
                    [](const In& in) { return xg::cosine_similarity(in[0], in[1]); },
                    {a, b}});
    rows.push_back({"cosine_similarity dim 0",
                    [](const In& in) { return xg::cosine_similarity(in[0], in[1], 0); },
                    {a, b}});
    rows.push_back({"cosine_similarity broadcast along dim",
                    [](const In& in) { return xg::cosine_similarity(in[0], in[1], 1); },
                    {column, a}});
    rows.push_back({"cosine_similarity broadcast across dim",
                    [](const In& in) { return xg::cosine_similarity(in[0], in[1], -1); },
                    {a, row}});
    return rows;
}

}  // namespace

TEST_CASE("gradcheck: kl_div, cosine_similarity and cosine_embedding_loss") {
    for (const auto& row_case : similarity_rows()) {
        CAPTURE(row_case.name);
        CHECK(test::gradcheck(row_case.fn, row_case.inputs));
    }
}

TEST_CASE("double backward: kl_div, cosine_similarity and cosine_embedding_loss") {
    for (const auto& row_case : similarity_rows()) {
        CAPTURE(row_case.name);
        CHECK(test::gradgradcheck(row_case.fn, row_case.inputs));
    }
}

TEST_CASE("kl_div, cosine_similarity and cosine_embedding_loss: errors") {
    const Tensor p = xg::full({2, 3}, 0.5, xg::kFloat64);

    CHECK_THROWS_WITH_AS(xg::kl_div(p, p, "avg"),
                         "kl_div: expected reduction 'none', 'mean', 'sum' or 'batchmean' (got "
                         "'avg')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::kl_div(p, xg::zeros({1, 3}, xg::kFloat64)),
                         "kl_div: expected input and target of one shape (got [2, 3] and [1, 3])",
                         xg::Error);

    CHECK_THROWS_WITH_AS(xg::cosine_similarity(p, xg::zeros({2, 3})),
                         "cosine_similarity: expected floating-point x1 and x2 of one dtype (got "
                         "float64 and float32)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::cosine_similarity(p, xg::zeros({4}, xg::kFloat64)),
                         "cosine_similarity: shapes [2, 3] and [4] are not broadcastable",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::cosine_similarity(test::f64({1.0, 2.0}), test::f64({1.0, 2.0})),
                         "cosine_similarity: expected dim in [-1, 0] for a 1-d tensor (got 1)",
                         xg::Error);

    CHECK_THROWS_WITH_AS(xg::cosine_embedding_loss(p, p, test::i64({1, -1, 1})),
                         "cosine_embedding_loss: expected inputs [N, D] and target [N], or inputs "
                         "[D] and a 0-d target (got [2, 3], [2, 3] and [3])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::cosine_embedding_loss(p, p, xg::tensor<bool>(xt::xarray<bool>{true, false})),
        "cosine_embedding_loss: expected a target of 1s and -1s, int64 or floating (got bool)",
        xg::Error);
    CHECK_THROWS_WITH_AS(xg::cosine_embedding_loss(p, p, test::i64({1, -1}), 0.0, "avg"),
                         "cosine_embedding_loss: expected reduction 'none', 'mean' or 'sum' (got "
                         "'avg')",
                         xg::Error);
}

}  // namespace core_ops_test_similarity_loss
