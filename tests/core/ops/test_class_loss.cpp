// Tests for the class losses (core/ops/class_loss.cpp): cross_entropy with weight,
// ignore_index, label smoothing and class probabilities, nll_loss and
// binary_cross_entropy: the fused path, float32, gradchecks and gradgradchecks for
// every reduction, PyTorch's second-derivative conventions and error messages. Their PyTorch
// reference cases run in test_loss.cpp.
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/reference_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_class_loss {

using xg::Tensor;
using In = std::vector<Tensor>;

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

TEST_CASE(
    "cross_entropy options and binary_cross_entropy on float32 stay float32 and close to float64") {
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
}

namespace {

struct LossRow {
    const char* name;
    test::Fn fn;
    In inputs;
};

// The cross_entropy options, nll_loss and binary_cross_entropy cases both the
// first- and the second-derivative checks run, for every reduction.
std::vector<LossRow> class_loss_rows() {
    const Tensor logits = test::randn64({4, 5}, 80), logits3 = test::randn64({2, 3, 4}, 81);
    const Tensor classes = test::i64({4, -100, 2, 0});
    const Tensor classes3 = test::i64({{0, 2, -100, 1}, {2, 1, 0, 0}});
    const Tensor w5 = test::f64({0.5, 1.0, 2.0, 0.25, 1.5}), w3 = test::f64({2.0, 0.5, 1.0});
    const Tensor probs = xg::softmax(test::randn64({4, 5}, 82), 1).detach();
    // Probabilities and targets away from 0 and 1, where PyTorch's gradient formulas
    // are the derivatives of its forward expressions (and its second-derivative
    // formulas' 1e-12 shifts of x and 1 - x do not show).
    const Tensor p = (xg::sigmoid(test::randn64({3, 4}, 83)) * 0.8 + 0.1).detach();
    const Tensor labels = xg::rand({3, 4}, xg::kFloat64);
    const Tensor row = test::randn64({4}, 89);
    const Tensor unbatched = test::randn64({5}, 90), class3 = xg::full({}, 3.0, xg::kInt64);
    std::vector<LossRow> rows;
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
        // Linear in its input: the second derivative checks the gradient's linearity
        // in g and its zero derivative in the input; of squares, it runs on into x * x.
        rows.push_back({"nll weight ignore",
                        [=](const In& in) { return xg::nll_loss(in[0], classes, r, w5); },
                        {logits}});
        rows.push_back({"nll [N, C, d]",
                        [=](const In& in) { return xg::nll_loss(in[0], classes3, r); },
                        {logits3}});
        rows.push_back({"nll [N, C, d] of squares",
                        [=](const In& in) { return xg::nll_loss(in[0] * in[0], classes3, r); },
                        {logits3}});
        rows.push_back(
            {"bce weight",
             [=](const In& in) { return xg::binary_cross_entropy(in[0], in[1], r, row); },
             {p, labels}});
    }
    return rows;
}

}  // namespace

TEST_CASE("gradcheck: cross_entropy options, nll_loss and binary_cross_entropy") {
    for (const auto& row_case : class_loss_rows()) {
        CAPTURE(row_case.name);
        CHECK(test::gradcheck(row_case.fn, row_case.inputs));
    }
}

TEST_CASE("double backward: cross_entropy options, nll_loss and binary_cross_entropy") {
    for (const auto& row_case : class_loss_rows()) {
        CAPTURE(row_case.name);
        CHECK(test::gradgradcheck(row_case.fn, row_case.inputs));
    }
}

TEST_CASE("double backward: nll_loss's gradient has a zero derivative in its input, as PyTorch's") {
    // PyTorch's nll_loss_backward: self: zeros_like(grad), zeros rather than unused.
    Tensor x = test::randn64({3, 4}, 91);
    x.requires_grad_(true);
    Tensor g =
        xg::autograd::grad({xg::nll_loss(x, test::i64({1, 0, 3}))}, {x}, {}, std::nullopt, true)[0];
    CHECK(g.requires_grad());
    CHECK_VALUES(xg::autograd::grad({xg::sum(g * g)}, {x})[0],
                 xt::xarray<double>(xt::zeros<double>({3, 4})));
}

TEST_CASE("double backward: binary_cross_entropy's second derivatives are PyTorch's formulas") {
    // Finite at x = 0 and 1, as the first derivative: d/dx of the input's gradient is
    // (x^2 - 2 x y + y) / ((x + eps)^2 (1 - x + eps)^2), d/dy is -1 / max(x (1 - x), eps),
    // eps = 1e-12 (binary_cross_entropy_double_backward and _target).
    const xt::xarray<double> xv{0.0, 1.0, 0.25}, yv{0.25, 0.5, 1.0};
    Tensor x = test::f64(xv, true), y = test::f64(yv, true);
    Tensor loss = xg::binary_cross_entropy(x, y, "sum");
    Tensor plain = xg::autograd::grad({loss}, {x}, {}, true)[0];
    Tensor gx = xg::autograd::grad({loss}, {x}, {}, std::nullopt, true)[0];
    CHECK(test::identical(gx, plain));  // the kernel's values, with a history
    CHECK(gx.grad_fn_name() == "BinaryCrossEntropyBackwardBackward");
    std::vector<Tensor> second = xg::autograd::grad({xg::sum(gx)}, {x, y});
    const double eps = 1e-12;
    const xt::xarray<double> lo = xv + eps, hi = 1.0 - xv + eps;
    CHECK_VALUES(second[0],
                 xt::xarray<double>((xv * xv - 2.0 * xv * yv + yv) / (lo * lo * hi * hi)));
    CHECK_VALUES(second[1], xt::xarray<double>(-1.0 / xt::maximum((1.0 - xv) * xv, eps)));
}

TEST_CASE("cross_entropy options, nll_loss and binary_cross_entropy: errors") {
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
}

}  // namespace core_ops_test_class_loss
