// Tests for the losses (core/ops/loss.cpp): mse_loss by hand and against the
// expressions its kernels replaced, cross_entropy, nll_loss, binary_cross_entropy,
// kl_div and the cosine losses against PyTorch, gradchecks for every reduction, and
// error messages.
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xadapt.hpp>

#include "core/reference/losses2_values.hpp"
#include "core/reference/losses_values.hpp"
#include "core/reference/reference_values.hpp"
#include "helpers.hpp"

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

TEST_CASE("mse_loss with each reduction, by hand") {
    Tensor input = test::f64({{1, 2, 3}, {4, 5, 6}});
    Tensor target = test::f64({{1, 0, 3}, {2, 5, 9}});
    // Squared differences: [[0, 4, 0], [4, 0, 9]], total 17.
    Tensor mean = xg::mse_loss(input, target);
    CHECK(mean.shape() == Shape{});
    CHECK(mean.item<double>() == doctest::Approx(17.0 / 6.0).epsilon(1e-14));
    CHECK(xg::mse_loss(input, target, "mean").item<double>() ==
          doctest::Approx(17.0 / 6.0).epsilon(1e-14));
    CHECK(xg::mse_loss(input, target, "sum").item<double>() == 17.0);
    CHECK_VALUES(xg::mse_loss(input, target, "none"), (xt::xarray<double>{{0, 4, 0}, {4, 0, 9}}));
}

TEST_CASE("mse_loss gradient by hand: 2 (input - target) / n") {
    Tensor input = test::f64({{1, 2, 3}, {4, 5, 6}}, true);
    Tensor target = test::f64({{1, 0, 3}, {2, 5, 9}}, true);
    xg::mse_loss(input, target).backward();
    xt::xarray<double> expected = xt::xarray<double>{{0, 2, 0}, {2, 0, -3}} * (2.0 / 6.0);
    CHECK_VALUES(input.grad(), expected);
    CHECK_VALUES(target.grad(), xt::xarray<double>(-expected));  // targets get the negation
}

TEST_CASE("cross_entropy matches PyTorch") {
    Tensor logits = test::f64(ref::ce_logits);
    Tensor targets = test::i64(ref::ce_targets);
    Tensor mean = xg::cross_entropy(logits, targets);
    CHECK(mean.shape() == Shape{});
    CHECK(mean.item<double>() == doctest::Approx(ref::ce_mean).epsilon(1e-12));
    CHECK(xg::cross_entropy(logits, targets, "sum").item<double>() ==
          doctest::Approx(ref::ce_sum).epsilon(1e-12));
    CHECK_VALUES(xg::cross_entropy(logits, targets, "none"), ref::ce_none);

    Tensor x = test::f64(ref::ce_logits, true);
    xg::cross_entropy(x, targets).backward();
    CHECK_VALUES(x.grad(), ref::ce_mean_grad);

    // float32 logits give a float32 loss close to PyTorch's float64 value.
    Tensor loss32 = xg::cross_entropy(logits.to(xg::kFloat32), targets);
    CHECK(loss32.dtype() == xg::kFloat32);
    CHECK(loss32.item<double>() == doctest::Approx(ref::ce_mean).epsilon(1e-6));
}

TEST_CASE("cross_entropy is stable for large logits") {
    // log-sum-exp must subtract the max: exp(1000) overflows.
    Tensor logits = test::f64({{1000.0, 0.0}, {0.0, -1000.0}});
    Tensor loss = xg::cross_entropy(logits, test::i64({1, 0}), "none");
    CHECK_VALUES(loss, (xt::xarray<double>{1000.0, 0.0}));
}

TEST_CASE("gradcheck: mse_loss and cross_entropy with every reduction") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    Tensor input = test::randn64({3, 4}, 60);
    Tensor target = test::randn64({3, 4}, 61);
    Tensor logits = test::randn64({4, 5}, 62);
    Tensor classes = test::i64({4, 0, 2, 2});
    std::vector<Row> rows = {
        {"mse mean", [](const In& in) { return xg::mse_loss(in[0], in[1]); }, {input, target}},
        {"mse sum",
         [](const In& in) { return xg::mse_loss(in[0], in[1], "sum"); },
         {input, target}},
        {"mse none",
         [](const In& in) { return xg::mse_loss(in[0], in[1], "none"); },
         {input, target}},
        {"ce mean",
         [](const In& in) { return xg::cross_entropy(in[0], in[1]); },
         {logits, classes}},
        {"ce sum",
         [](const In& in) { return xg::cross_entropy(in[0], in[1], "sum"); },
         {logits, classes}},
        {"ce none",
         [](const In& in) { return xg::cross_entropy(in[0], in[1], "none"); },
         {logits, classes}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("loss error messages") {
    CHECK_THROWS_WITH_AS(
        xg::mse_loss(xg::zeros({2, 3}), xg::zeros({3})),
        "mse_loss: expected input and target of the same shape (got [2, 3] and [3])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::mse_loss(xg::zeros({2}), xg::zeros({2}), "avg"),
                         "mse_loss: expected reduction 'none', 'mean' or 'sum' (got 'avg')",
                         xg::Error);
    Tensor logits = xg::zeros({2, 3});
    CHECK_THROWS_AS(xg::cross_entropy(logits, test::i64({0, 3})), xg::Error);   // class 3 of 3
    CHECK_THROWS_AS(xg::cross_entropy(logits, test::i64({0, -1})), xg::Error);  // negative class
    // 3 targets for 2 rows.
    CHECK_THROWS_AS(xg::cross_entropy(logits, test::i64({0, 1, 2})), xg::Error);
    CHECK_THROWS_AS(xg::cross_entropy(logits, xg::zeros({2})), xg::Error);  // float targets
    CHECK_THROWS_AS(xg::cross_entropy(logits, test::i64({0, 1}), "avg"), xg::Error);
}

TEST_CASE("mse_loss kernels match the expressions they replaced") {
    xt::xarray<double> xv = test::large_inputs<double>(12), tv = test::large_inputs<double>(13);
    for (std::string reduction : {"mean", "sum", "none"}) {
        INFO(reduction);
        Tensor x = xg::tensor<double>(xv, true), t = xg::tensor<double>(tv, true);
        Tensor loss = xg::mse_loss(x, t, reduction);
        xt::xarray<double> d = xv - tv;
        double n = reduction == "mean" ? double(d.size()) : 1.0;
        if (reduction == "none") {
            CHECK(test::rel_error(test::values(loss), d * d) == 0.0);
            xg::sum(loss).backward();
        } else {
            CHECK(loss.item<double>() == doctest::Approx(xt::sum(d * d)() / n).epsilon(1e-12));
            loss.backward();
        }
        CHECK(test::rel_error(test::values(x.grad()), 2.0 * d / n) <= 1e-15);
        CHECK(test::rel_error(test::values(t.grad()), -2.0 * d / n) <= 1e-15);
    }
}

TEST_CASE("l1, smooth_l1, huber and binary_cross_entropy_with_logits match PyTorch at every kink") {
    auto vec = [](const std::vector<double>& v) {
        xt::xarray<double> a = xt::adapt(v, {v.size()});
        return a;
    };
    for (const auto& c : losses_ref::kCases) {
        CAPTURE(c.op);
        CAPTURE(c.reduction);
        xg::Tensor x = xg::tensor(vec(losses_ref::kInput), true);
        xg::Tensor y = xg::tensor(vec(losses_ref::kTarget));
        const std::string op = c.op, reduction = c.reduction;
        xg::Tensor loss;
        if (op == "l1_loss") loss = xg::l1_loss(x, y, reduction);
        if (op == "smooth_l1_loss") loss = xg::smooth_l1_loss(x, y, reduction, c.params[0]);
        if (op == "huber_loss") loss = xg::huber_loss(x, y, reduction, c.params[0]);
        if (op == "binary_cross_entropy_with_logits") {
            xg::Tensor pos_weight;
            if (!c.params.empty()) pos_weight = test::f64({c.params[0]});
            loss = xg::binary_cross_entropy_with_logits(x, y, reduction, pos_weight);
        }
        REQUIRE(loss.defined());
        xg::Tensor root =
            reduction == "none" ? xg::sum(loss * xg::tensor(vec(losses_ref::kUpstream))) : loss;
        root.backward();
        CHECK(test::rel_error(test::values(xg::flatten(loss)), vec(c.loss)) <= 1e-14);
        CHECK(test::rel_error(test::values(x.grad()), vec(c.grad)) <= 1e-14);
    }
    CHECK_THROWS_WITH_AS(xg::l1_loss(test::f64({1.0}), test::f64({1.0, 2.0})),
                         "l1_loss: expected input and target of one shape (got [1] and [2])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::huber_loss(test::f64({1.0}), test::f64({1.0}), "mean", 0.0),
                         "huber_loss: expected delta > 0 (got 0)", xg::Error);
}

TEST_CASE("l1, smooth_l1, huber and binary_cross_entropy_with_logits: float64 gradchecks") {
    // Targets 0.6 away from each input: off every kink.
    xg::Tensor x = test::randn64({3, 4}, 5);
    xg::Tensor y = (x + 0.6 * xg::sign(test::randn64({3, 4}, 6))).detach();
    xg::Tensor labels = xg::clamp(test::randn64({3, 4}, 7), 0.0, 1.0).detach();
    xg::Tensor pos_weight = test::f64({0.5, 1.0, 2.0, 3.0});
    CHECK(test::gradcheck(
        [&](const std::vector<xg::Tensor>& in) {
            return xg::l1_loss(in[0], y) + xg::smooth_l1_loss(in[0], y, "sum", 0.5) +
                   xg::huber_loss(in[0], y, "mean", 0.3) +
                   xg::binary_cross_entropy_with_logits(in[0], labels, "mean", pos_weight);
        },
        {x}));
}

namespace {

xt::xarray<double> ref_array(const losses2_ref::Array& a) {
    auto v = xt::xarray<double>::from_shape(a.shape);
    std::copy(a.values.begin(), a.values.end(), v.begin());
    return v;
}

// The case's loss, its params read as gen_losses2.py writes them.
Tensor case_loss(const losses2_ref::Case& c, const Tensor& x, const Tensor& y, const Tensor& w) {
    const std::string op = c.op;
    if (op == "cross_entropy") {
        return xg::cross_entropy(x, y, c.reduction, w, static_cast<std::int64_t>(c.params[0]),
                                 c.params[1]);
    }
    if (op == "nll_loss")
        return xg::nll_loss(x, y, c.reduction, w, static_cast<std::int64_t>(c.params[0]));
    if (op == "binary_cross_entropy") return xg::binary_cross_entropy(x, y, c.reduction, w);
    if (op == "kl_div") return xg::kl_div(x, y, c.reduction, c.params[0] != 0);
    if (op == "cosine_similarity")
        return xg::cosine_similarity(x, y, static_cast<int>(c.params[0]), c.params[1]);
    if (op == "cosine_embedding_loss")
        return xg::cosine_embedding_loss(x, y, w, c.params[0], c.reduction);
    return Tensor();
}

}  // namespace

TEST_CASE(
    "cross_entropy options, nll_loss, binary_cross_entropy, kl_div and cosine losses "
    "match PyTorch") {
    // Covers each reduction, weights, ignore_index (all ignored: NaN for 'mean', zero
    // gradients), label smoothing, class probabilities, [N, C, d...], unbatched [C],
    // log targets, and cosine broadcasting along and across dim; NaN and infinite
    // gradients (kl_div at t = 0, binary_cross_entropy at 0 and 1) must match too.
    for (const auto& c : losses2_ref::kCases) {
        CAPTURE(c.op);
        CAPTURE(c.reduction);
        CAPTURE(test::show(xt::xarray<double>(xt::adapt(c.params))));
        Tensor x = test::f64(ref_array(c.input), true);
        const bool grad_target = !c.grad_target.values.empty();
        Tensor y = c.target_is_index ? test::i64(xt::cast<std::int64_t>(ref_array(c.target)))
                                     : test::f64(ref_array(c.target), grad_target);
        Tensor w = c.has_weight ? test::f64(ref_array(c.weight)) : Tensor();
        Tensor loss = case_loss(c, x, y, w);
        REQUIRE(loss.defined());
        CHECK(loss.shape() == test::shape_of(ref_array(c.loss)));
        CHECK(test::rel_error(test::values(loss), ref_array(c.loss)) <= 1e-12);
        Tensor root =
            c.upstream.values.empty() ? loss : xg::sum(loss * test::f64(ref_array(c.upstream)));
        root.backward();
        CHECK(test::rel_error(test::values(x.grad()), ref_array(c.grad_input)) <= 1e-12);
        if (grad_target) {
            CHECK(test::rel_error(test::values(y.grad()), ref_array(c.grad_target)) <= 1e-12);
        }
    }
}

TEST_CASE("cross_entropy with no option in use keeps the fused node") {
    Tensor logits = test::f64(ref::ce_logits), targets = test::i64(ref::ce_targets);
    Tensor x = test::f64(ref::ce_logits, true);
    Tensor loss = xg::cross_entropy(x, targets, "mean", Tensor());
    CHECK(loss.grad_fn_name() == "CrossEntropyBackward");
    CHECK(loss.item<double>() == xg::cross_entropy(logits, targets).item<double>());
    // An option in use (or an ignored target) takes log_softmax and the weighted pick.
    Tensor weighted = xg::cross_entropy(x, targets, "mean", xg::ones({4}, xg::kFloat64));
    CHECK(weighted.grad_fn_name() == "NllLossBackward");
    CHECK(weighted.item<double>() == doctest::Approx(ref::ce_mean).epsilon(1e-14));
}

TEST_CASE("new losses on float32 stay float32 and close to float64") {
    Tensor x = test::randn64({3, 4, 2}, 70), t = test::i64({{0, 3}, {-100, 1}, {2, 2}});
    Tensor w = test::f64({1.0, 0.5, 2.0, 1.5});
    Tensor ce64 = xg::cross_entropy(x, t, "mean", w, -100, 0.1);
    Tensor ce32 = xg::cross_entropy(x.to(xg::kFloat32), t, "mean", w.to(xg::kFloat32), -100, 0.1);
    CHECK(ce32.dtype() == xg::kFloat32);
    CHECK(ce32.item<double>() == doctest::Approx(ce64.item<double>()).epsilon(1e-6));
    Tensor p = xg::sigmoid(test::randn64({5}, 71)), y = xg::rand({5}, xg::kFloat64);
    Tensor bce32 = xg::binary_cross_entropy(p.to(xg::kFloat32), y.to(xg::kFloat32));
    CHECK(bce32.dtype() == xg::kFloat32);
    CHECK(bce32.item<double>() ==
          doctest::Approx(xg::binary_cross_entropy(p, y).item<double>()).epsilon(1e-6));
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

TEST_CASE("gradcheck: cross_entropy options, nll_loss, binary_cross_entropy, kl_div, cosine") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    const Tensor logits = test::randn64({4, 5}, 80), logits3 = test::randn64({2, 3, 4}, 81);
    const Tensor classes = test::i64({4, -100, 2, 0});
    const Tensor classes3 = test::i64({{0, 2, -100, 1}, {2, 1, 0, 0}});
    const Tensor w5 = test::f64({0.5, 1.0, 2.0, 0.25, 1.5}), w3 = test::f64({2.0, 0.5, 1.0});
    const Tensor probs = xg::softmax(test::randn64({4, 5}, 82), 1).detach();
    // Probabilities and targets away from 0 and 1, where PyTorch's gradient formulas
    // are the derivatives of its forward expressions.
    const Tensor p = (xg::sigmoid(test::randn64({3, 4}, 83)) * 0.8 + 0.1).detach();
    const Tensor labels = xg::rand({3, 4}, xg::kFloat64);
    const Tensor log_q = xg::log_softmax(test::randn64({3, 4}, 84), 1).detach();
    const Tensor p_kl = xg::softmax(test::randn64({3, 4}, 85), 1).detach();
    const Tensor a = test::randn64({3, 4}, 86), b = test::randn64({3, 4}, 87);
    const Tensor column = test::randn64({3, 1}, 88), row = test::randn64({4}, 89);
    const Tensor unbatched = test::randn64({5}, 90), class3 = xg::full({}, 3.0, xg::kInt64);
    const Tensor pm = test::i64({1, -1, -1});  // cosine targets; margin 0.1 keeps off the kink
    std::vector<Row> rows;
    for (std::string r : {"none", "mean", "sum"}) {
        rows.push_back(
            {"ce weight ignore smoothing",
             [=](const In& in) { return xg::cross_entropy(in[0], classes, r, w5, -100, 0.2); },
             {logits}});
        rows.push_back({"ce [N, C, d] weight",
                        [=](const In& in) { return xg::cross_entropy(in[0], classes3, r, w3); },
                        {logits3}});
        rows.push_back(
            {"ce probabilities weight smoothing",
             [=](const In& in) { return xg::cross_entropy(in[0], in[1], r, w5, -100, 0.1); },
             {logits, probs}});
        rows.push_back(
            {"ce unbatched",
             [=](const In& in) { return xg::cross_entropy(in[0], class3, r, w5, -100, 0.3); },
             {unbatched}});
        rows.push_back({"nll weight ignore",
                        [=](const In& in) { return xg::nll_loss(in[0], classes, r, w5); },
                        {logits}});
        rows.push_back({"nll [N, C, d]",
                        [=](const In& in) { return xg::nll_loss(in[0], classes3, r); },
                        {logits3}});
        rows.push_back(
            {"bce weight",
             [=](const In& in) { return xg::binary_cross_entropy(in[0], in[1], r, row); },
             {p, labels}});
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
    // Norms above eps: below it PyTorch's gradient is not the derivative (see clamped_norm).
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
    for (const auto& row_case : rows) {
        CAPTURE(row_case.name);
        CHECK(test::gradcheck(row_case.fn, row_case.inputs));
    }
}

TEST_CASE("cross_entropy options, nll_loss, binary_cross_entropy, kl_div and cosine: errors") {
    const Tensor x = xg::zeros({2, 3}, xg::kFloat64), t = test::i64({0, 2});
    CHECK_THROWS_WITH_AS(xg::nll_loss(x, test::i64({0, 3})),
                         "nll_loss: expected target classes in [0, 3) or ignore_index -100 (got 3 "
                         "at flat index 1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::cross_entropy(x, test::i64({-1, 0}), "mean", Tensor()),
                         "cross_entropy: expected target classes in [0, 3) or ignore_index -100 "
                         "(got -1 at flat index 0)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::nll_loss(x, test::i64({0, 1, 2})),
                         "nll_loss: expected target [2] for input [2, 3] (got [3])", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::nll_loss(xg::zeros({2, 3, 4}, xg::kFloat64), xg::zeros({2, 5}, xg::kInt64)),
        "nll_loss: expected target [2, 4] for input [2, 3, 4] (got [2, 5])", xg::Error);
    CHECK_THROWS_WITH_AS(xg::nll_loss(x, xg::zeros({2}, xg::kFloat64)),
                         "nll_loss: expected int64 class indices as target (got float64)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::nll_loss(xg::zeros({}, xg::kFloat64), xg::zeros({}, xg::kInt64)),
                         "nll_loss: expected input [N, C, d1, ...] or [C] (got [])", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::nll_loss(x, t, "mean", xg::ones({4}, xg::kFloat64)),
        "nll_loss: expected weight [3] of dtype float64 (got [4] of dtype float64)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::cross_entropy(x, t, "mean", xg::ones({3}, xg::kFloat32)),
                         "cross_entropy: expected weight [3] of dtype float64 (got [3] of dtype "
                         "float32)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::nll_loss(x, t, "avg"),
                         "nll_loss: expected reduction 'none', 'mean' or 'sum' (got 'avg')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::cross_entropy(x, t, "mean", Tensor(), -100, 1.5),
                         "cross_entropy: expected label_smoothing in [0, 1] (got 1.5)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::cross_entropy(x, xg::zeros({2, 4}, xg::kFloat64), "mean", Tensor()),
                         "cross_entropy: expected class probabilities of the input's shape [2, 3] "
                         "and dtype float64 (got [2, 4] of dtype float64)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::cross_entropy(x, xg::zeros({2, 3}, xg::kFloat64), "mean", Tensor(), 1),
                         "cross_entropy: expected no ignore_index (a negative one) with class "
                         "probabilities (got 1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::cross_entropy(x, xg::zeros({2, 3}, xg::kFloat64), "mean", xg::ones({2}, xg::kFloat64)),
        "cross_entropy: expected weight [3] of dtype float64 (got [2] of dtype "
        "float64)",
        xg::Error);

    const Tensor p = xg::full({2, 3}, 0.5, xg::kFloat64);
    CHECK_THROWS_WITH_AS(xg::binary_cross_entropy(test::f64({0.5, 1.5}), test::f64({1.0, 0.0})),
                         "binary_cross_entropy: expected input values in [0, 1] (got 1.5 at flat "
                         "index 1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::binary_cross_entropy(p, xg::zeros({3}, xg::kFloat64)),
                         "binary_cross_entropy: expected input and target of one shape (got [2, 3] "
                         "and [3])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::binary_cross_entropy(p, xg::zeros({2, 3})),
                         "binary_cross_entropy: expected floating-point input and target of one "
                         "dtype (got float64 and float32)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::binary_cross_entropy(p, p, "mean", xg::ones({2}, xg::kFloat64)),
                         "binary_cross_entropy: expected a weight of dtype float64 that broadcasts "
                         "to [2, 3] (got [2] of dtype float64)",
                         xg::Error);

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
