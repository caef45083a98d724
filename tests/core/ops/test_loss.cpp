// Tests for the losses (core/ops/loss.cpp): mse_loss by hand and against the
// expressions its kernels replaced, cross_entropy, l1, smooth_l1, huber and
// binary_cross_entropy_with_logits against PyTorch, gradchecks and gradgradchecks for
// every reduction, second derivatives at the kinks, and error messages; and the PyTorch reference
// cases of tests/core/reference/gen_losses2.py, which span cross_entropy's options, nll_loss,
// binary_cross_entropy (test_class_loss.cpp), kl_div and the cosine losses
// (test_similarity_loss.cpp).
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xadapt.hpp>

#include "core/reference/losses2_values.hpp"
#include "core/reference/losses_values.hpp"
#include "core/reference/reference_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_loss {

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

TEST_CASE(
    "mse_loss backward twice with retain_graph: the saved difference is kept for the second") {
    // Without retain_graph the input's gradient is written over the saved
    // difference; with it, the second pass must still read the difference.
    Tensor input = test::f64({{1, 2, 3}, {4, 5, 6}}, true);
    Tensor target = test::f64({{1, 0, 3}, {2, 5, 9}});
    for (const char* reduction : {"mean", "sum", "none"}) {
        CAPTURE(reduction);
        input.mutable_grad() = Tensor();
        Tensor loss = xg::mse_loss(input, target, reduction);
        if (loss.dim() > 0) loss = xg::sum(loss);
        loss.backward({}, true);
        loss.backward();
        const double n = std::string(reduction) == "mean" ? 6.0 : 1.0;
        xt::xarray<double> once = xt::xarray<double>{{0, 2, 0}, {2, 0, -3}} * (2.0 / n);
        CHECK_VALUES(input.grad(), xt::xarray<double>(2.0 * once));
    }
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

TEST_CASE(
    "double backward: cross_entropy, l1, smooth_l1, huber and binary_cross_entropy_with_logits") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    const Tensor logits = test::randn64({4, 5}, 62), classes = test::i64({4, 0, 2, 2});
    // Targets 0.6 away from each input, off every kink: inside smooth_l1's beta 1 and
    // huber's delta 1, outside beta 0.5 and delta 0.3, where their second derivatives
    // are 0 (PyTorch's d < beta, d < delta).
    const Tensor x = test::randn64({3, 4}, 5);
    const Tensor y = (x + 0.6 * xg::sign(test::randn64({3, 4}, 6))).detach();
    const Tensor labels = xg::clamp(test::randn64({3, 4}, 7), 0.0, 1.0).detach();
    const Tensor pos_weight = test::f64({0.5, 1.0, 2.0, 3.0});
    std::vector<Row> rows;
    for (std::string r : {"none", "mean", "sum"}) {
        rows.push_back(
            {"ce", [=](const In& in) { return xg::cross_entropy(in[0], classes, r); }, {logits}});
        rows.push_back({"l1", [=](const In& in) { return xg::l1_loss(in[0], in[1], r); }, {x, y}});
        rows.push_back({"smooth_l1 inside beta",
                        [=](const In& in) { return xg::smooth_l1_loss(in[0], in[1], r, 1.0); },
                        {x, y}});
        rows.push_back({"smooth_l1 outside beta",
                        [=](const In& in) { return xg::smooth_l1_loss(in[0], in[1], r, 0.5); },
                        {x, y}});
        rows.push_back({"smooth_l1 beta 0",
                        [=](const In& in) { return xg::smooth_l1_loss(in[0], in[1], r, 0.0); },
                        {x, y}});
        rows.push_back({"huber inside delta",
                        [=](const In& in) { return xg::huber_loss(in[0], in[1], r, 1.0); },
                        {x, y}});
        rows.push_back({"huber outside delta",
                        [=](const In& in) { return xg::huber_loss(in[0], in[1], r, 0.3); },
                        {x, y}});
        rows.push_back({"bce_with_logits",
                        [=](const In& in) {
                            return xg::binary_cross_entropy_with_logits(in[0], in[1], r, Tensor());
                        },
                        {x, labels}});
        rows.push_back({"bce_with_logits pos_weight",
                        [=](const In& in) {
                            return xg::binary_cross_entropy_with_logits(in[0], in[1], r,
                                                                        pos_weight);
                        },
                        {x, labels}});
    }
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradgradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("double backward: smooth_l1 and huber at their kinks, as PyTorch's") {
    // PyTorch's smooth_l1_loss_double_backward is (|d| < beta) / beta and
    // huber_loss_double_backward (|d| < delta): at |d| = beta or delta, 0.
    Tensor x = test::f64({0.0, 0.5, -0.5, 1.5}, true);
    const Tensor zero = xg::zeros({4}, xg::kFloat64);
    auto hessian_diagonal = [&](const Tensor& loss) {
        Tensor g = xg::autograd::grad({loss}, {x}, {}, std::nullopt, true)[0];
        return xg::autograd::grad({xg::sum(g)}, {x})[0];
    };
    CHECK_VALUES(hessian_diagonal(xg::smooth_l1_loss(x, zero, "sum", 0.5)),
                 (xt::xarray<double>{2.0, 0.0, 0.0, 0.0}));
    CHECK_VALUES(hessian_diagonal(xg::huber_loss(x, zero, "sum", 0.5)),
                 (xt::xarray<double>{1.0, 0.0, 0.0, 0.0}));
    CHECK_VALUES(hessian_diagonal(xg::l1_loss(x, zero, "sum")),
                 (xt::xarray<double>{0.0, 0.0, 0.0, 0.0}));
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

}  // namespace core_ops_test_loss
