// Losses over classes and probabilities: cross_entropy with PyTorch's options
// (weight, ignore_index, label_smoothing, class probabilities) and nll_loss, whose
// class-index paths share one NllLossBackward node; and binary_cross_entropy, one node
// whose gradient is PyTorch's formula, not the derivative of its forward expression.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "loss_helpers.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;
using detail::loss::check_floating_pair;
using detail::loss::kTorchEpsilon;
using detail::loss::parse_reduction;
using detail::loss::Reduction;

// ---- classification over a class dim: nll_loss and cross_entropy ----

namespace {

// An input [N, C, d1, ...] (or unbatched [C]) read as [outer, classes, inner]: the
// target holds one class per (outer, inner) position, `ignored` of them ignore_index.
struct ClassLayout {
    std::size_t outer = 1, classes = 1, inner = 1, ignored = 0;
};

// Checks what PyTorch's nll_loss checks, so that nothing below reads out of bounds:
// target [N, d1, ...] (0-d for [C]) of int64 classes in [0, C) or ignore_index, and
// weight (when defined) [C] of the input's dtype.
ClassLayout class_layout(const Tensor& input, const Tensor& target, const Tensor& weight,
                         std::int64_t ignore_index, const char* op) {
    check(input.defined() && target.defined(),
          "{}: expected defined input and target (got an undefined one)", op);
    const Shape in = input.shape(), ts = target.shape();
    check(!in.empty(), "{}: expected input [N, C, d1, ...] or [C] (got [])", op);
    if (!is_floating_point(input.dtype())) {
        fail("{}: expected a floating-point input (got {})", op, dtype_name(input.dtype()));
    }
    if (target.dtype() != kInt64) {
        fail("{}: expected int64 class indices as target (got {})", op, dtype_name(target.dtype()));
    }
    const std::size_t class_dim = in.size() == 1 ? 0 : 1;
    Shape expected = in;
    expected.erase(expected.begin() + static_cast<std::ptrdiff_t>(class_dim));
    if (ts != expected) {
        fail("{}: expected target {} for input {} (got {})", op, shape_str(expected), shape_str(in),
             shape_str(ts));
    }
    ClassLayout l;
    l.classes = in[class_dim];
    if (class_dim == 1) l.outer = in[0];
    for (std::size_t d = 2; d < in.size(); ++d) l.inner *= in[d];
    if (weight.defined() &&
        (weight.dtype() != input.dtype() || weight.shape() != Shape{l.classes})) {
        fail("{}: expected weight [{}] of dtype {} (got {} of dtype {})", op, l.classes,
             dtype_name(input.dtype()), shape_str(weight.shape()), dtype_name(weight.dtype()));
    }
    const std::int64_t* t = target.data<std::int64_t>().data();
    const auto classes = static_cast<std::int64_t>(l.classes);
    for (std::size_t p = 0, n = target.numel(); p < n; ++p) {
        if (t[p] == ignore_index) {
            ++l.ignored;
        } else if (t[p] < 0 || t[p] >= classes) {
            fail(
                "{}: expected target classes in [0, {}) or ignore_index {} (got {} at flat index "
                "{})",
                op, classes, ignore_index, t[p], p);
        }
    }
    return l;
}

// What weighted_nll's gradient reads: the layout, the targets (int64) and weights
// ([C] or undefined), and label smoothing s as the target's share (1 - s) and every
// class's share (s / C).
template <class T>
struct NllRule {
    ClassLayout l;
    std::int64_t ignore_index;
    T keep, spread;
    Tensor target, weight;
};

// d loss / d log_p for an upstream scale at each position, scale_at(p), 0 where the
// target is ignore_index: -scale (1 - s) w[t] at the target class t, and -scale
// (s / C) w[c] at every class c.
template <class T, class Scale>
xt::xarray<T> nll_grad(const NllRule<T>& r, const Shape& shape, Scale&& scale_at) {
    const ClassLayout& l = r.l;
    const std::int64_t* t = r.target.template data<std::int64_t>().data();
    const T* w = r.weight.defined() ? r.weight.template data<T>().data() : nullptr;
    auto d = detail::empty_array<T>(shape);
    std::fill(d.begin(), d.end(), T(0));
    for (std::size_t p = 0, n = r.target.numel(); p < n; ++p) {
        if (t[p] == r.ignore_index) continue;
        const T scale = scale_at(p);
        T* row = d.data() + (p / l.inner) * l.classes * l.inner + p % l.inner;
        row[t[p] * l.inner] -= r.keep * (w ? w[t[p]] : T(1)) * scale;
        if (r.spread == T(0)) continue;
        for (std::size_t c = 0; c < l.classes; ++c)
            row[c * l.inner] -= r.spread * (w ? w[c] : T(1)) * scale;
    }
    return d;
}

// nll_grad with ops, for double backward: linear in g, so the gradient for a scale
// of 1 (1 / total weight for 'mean') times g spread over the class dim. Its
// derivative with respect to log_p is zero, yet an edge to log_p, as PyTorch's
// nll_loss_backward (self: zeros_like(grad)).
template <class T>
Tensor nll_grad_op(const NllRule<T>& r, Reduction mode, T total_weight, const Tensor& grad,
                   const Tensor& log_p) {
    const T scale = mode == Reduction::Mean ? T(1) / total_weight : T(1);
    const Tensor per_g = wrap(nll_grad(r, log_p.shape(), [scale](std::size_t) { return scale; }));
    const Tensor g = mode == Reduction::None && log_p.dim() > 1 ? unsqueeze(grad, 1) : grad;
    return detail::with_zero_derivative(per_g * g, log_p);
}

// At each position whose target t is not ignore_index (0 elsewhere), with s the label
// smoothing: -(1 - s) w[t] log_p[t] - (s / C) sum_c w[c] log_p[c]. With s = 0 that
// is nll_loss; after log_softmax, PyTorch's smoothed cross_entropy. 'mean' divides by
// the sum of w[t] over the positions kept (NaN when all are ignored, as PyTorch), for
// both terms. One node: the gradient is the same picks, negated and scaled by g.
Tensor weighted_nll(const Tensor& log_p, const Tensor& target, const Tensor& weight,
                    const ClassLayout& l, Reduction mode, std::int64_t ignore_index,
                    double smoothing) {
    return detail::visit_floating(log_p, "nll_loss", [&]<class T>(xt::xarray<T>& lp) {
        const NllRule<T> rule{l,
                              ignore_index,
                              T(1 - smoothing),
                              T(smoothing / double(l.classes)),
                              target.detach(),
                              weight.defined() ? weight.detach() : Tensor()};
        const std::int64_t* t = target.data<std::int64_t>().data();
        const T* w = weight.defined() ? weight.data<T>().data() : nullptr;
        const T keep = rule.keep, spread = rule.spread;
        auto losses = detail::empty_array<T>(target.shape());
        T total_weight = 0;
        for (std::size_t p = 0; p < losses.size(); ++p) {
            losses.data()[p] = T(0);
            if (t[p] == ignore_index) continue;
            // Position p is (p / inner, p % inner); its classes lie `inner` apart.
            const T* row = lp.data() + (p / l.inner) * l.classes * l.inner + p % l.inner;
            const T wt = w ? w[t[p]] : T(1);
            T loss = -keep * wt * row[t[p] * l.inner];
            if (smoothing > 0) {
                T all = 0;
                for (std::size_t c = 0; c < l.classes; ++c)
                    all += (w ? w[c] : T(1)) * row[c * l.inner];
                loss -= spread * all;
            }
            losses.data()[p] = loss;
            total_weight += wt;
        }
        Tensor out = wrap(std::move(losses));
        if (mode != Reduction::None) {
            const auto& v = out.data<T>();
            T total = std::accumulate(v.begin(), v.end(), T(0));
            out =
                wrap(detail::scalar_array(mode == Reduction::Mean ? total / total_weight : total));
        }
        return make_result(
            out, "NllLossBackward", {log_p},
            [rule, mode, total_weight, shape = log_p.shape(),
             saved_lp = log_p.impl()->storage](const Tensor& grad) {
                if (autograd::creating_graph()) {
                    return autograd::Gradients{
                        nll_grad_op(rule, mode, total_weight, grad,
                                    autograd::saved_input(0, detail::tensor_of(saved_lp)))};
                }
                const auto& g = grad.data<T>();
                return autograd::Gradients{wrap(nll_grad(rule, shape, [&](std::size_t p) {
                    T scale = mode == Reduction::None ? g.data()[p] : g();
                    if (mode == Reduction::Mean) scale /= total_weight;
                    return scale;
                }))};
            },
            autograd::DoubleBackward::Supported);
    });
}

// Class probabilities p of the input's shape: -sum_c w[c] p'[c] log_softmax(input)[c]
// with p' = (1 - s) p + s / C, PyTorch's expression; 'mean' divides by the number of
// positions (N d1 ...), not by weights. The target's gradient composes too.
Tensor cross_entropy_probs(const Tensor& input, const Tensor& target, Reduction mode,
                           const Tensor& weight, std::int64_t ignore_index, double smoothing) {
    const Shape in = input.shape();
    if (in.empty() || target.shape() != in || target.dtype() != input.dtype() ||
        !is_floating_point(input.dtype())) {
        fail(
            "cross_entropy: expected class probabilities of the input's shape {} and dtype {} "
            "(got {} of dtype {})",
            shape_str(in), dtype_name(input.dtype()), shape_str(target.shape()),
            dtype_name(target.dtype()));
    }
    check(ignore_index < 0,
          "cross_entropy: expected no ignore_index (a negative one) with class probabilities "
          "(got {})",
          ignore_index);
    const int class_dim = in.size() == 1 ? 0 : 1;
    const std::size_t classes = in[static_cast<std::size_t>(class_dim)];
    const Tensor p =
        smoothing > 0 ? target * (1 - smoothing) + smoothing / double(classes) : target;
    Tensor terms = log_softmax(input, class_dim) * p;
    if (weight.defined()) {
        if (weight.dtype() != input.dtype() || weight.shape() != Shape{classes}) {
            fail("cross_entropy: expected weight [{}] of dtype {} (got {} of dtype {})", classes,
                 dtype_name(input.dtype()), shape_str(weight.shape()), dtype_name(weight.dtype()));
        }
        std::vector<std::int64_t> along_classes(in.size(), 1);  // [1, C, 1, ...]
        along_classes[static_cast<std::size_t>(class_dim)] = static_cast<std::int64_t>(classes);
        terms = terms * reshape(weight, along_classes);
    }
    switch (mode) {
        case Reduction::None: return -sum(terms, {class_dim});
        case Reduction::Sum: return -sum(terms);
        case Reduction::Mean: break;
    }
    const double positions = classes ? double(input.numel() / classes) : 0.0;  // 0: NaN
    return -sum(terms) / positions;
}

}  // namespace

Tensor cross_entropy(const Tensor& input, const Tensor& target, const std::string& reduction,
                     const Tensor& weight, std::int64_t ignore_index, double label_smoothing) {
    const Reduction mode = parse_reduction(reduction, "cross_entropy");
    if (auto to = detail::storage_dtype(input, weight)) {
        const Tensor wide_target =
            is_floating_point(target.dtype()) ? detail::computable(target) : target;
        return detail::rounded(
            cross_entropy(detail::computable(input), wide_target, reduction,
                          detail::computable(weight), ignore_index, label_smoothing),
            *to);
    }
    check(label_smoothing >= 0 && label_smoothing <= 1,
          "cross_entropy: expected label_smoothing in [0, 1] (got {})", label_smoothing);
    check(input.defined() && target.defined(),
          "cross_entropy: expected defined input and target (got an undefined one)");
    // As PyTorch: floating targets are class probabilities, integer ones class indices.
    if (is_floating_point(target.dtype())) {
        return cross_entropy_probs(input, target, mode, weight, ignore_index, label_smoothing);
    }
    const ClassLayout l = class_layout(input, target, weight, ignore_index, "cross_entropy");
    // Plain [N, C] with no option in use: the fused node, whose results stay exact.
    if (input.dim() == 2 && !weight.defined() && label_smoothing == 0 && l.ignored == 0) {
        return cross_entropy(input, target, reduction);
    }
    const Tensor log_p = log_softmax(input, input.dim() == 1 ? 0 : 1);
    return weighted_nll(log_p, target, weight, l, mode, ignore_index, label_smoothing);
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const std::string& reduction,
                const Tensor& weight, std::int64_t ignore_index) {
    const Reduction mode = parse_reduction(reduction, "nll_loss");
    if (auto to = detail::storage_dtype(input, weight)) {
        return detail::rounded(nll_loss(detail::computable(input), target, reduction,
                                        detail::computable(weight), ignore_index),
                               *to);
    }
    const ClassLayout l = class_layout(input, target, weight, ignore_index, "nll_loss");
    return weighted_nll(input, target, weight, l, mode, ignore_index, 0.0);
}
// ---- binary_cross_entropy ----

namespace {

// NumPy broadcasting of `from` to exactly `to` (no dim of `to` grows).
bool broadcasts_to(const Shape& from, const Shape& to) {
    if (from.size() > to.size()) return false;
    const std::size_t lead = to.size() - from.size();
    for (std::size_t i = 0; i < from.size(); ++i) {
        if (from[i] != 1 && from[i] != to[lead + i]) return false;
    }
    return true;
}

// What binary_cross_entropy's gradients depend on besides g: input x, target y,
// the weight broadcast to x's shape (or undefined) and the reduction.
struct BceSaved {
    Tensor x, y, w;
    Reduction mode;
};

// A per-element term times w and, for 'mean', divided by the element count.
Tensor weighted_term(const Tensor& term, const BceSaved& s) {
    const Tensor t = s.w.defined() ? term * s.w : term;
    return s.mode == Reduction::Mean ? t / double(s.x.numel()) : t;
}

// PyTorch's derivatives of the input's gradient g w (x - y) / max(x (1 - x), eps)
// (binary_cross_entropy_double_backward and its _grad_output and _target twins), not
// those of the clamped expression: in g and x they divide by (x + 1e-12) and
// (1 - x + 1e-12) instead, in y by the clamped x (1 - x).
autograd::Gradients bce_input_grad_derivatives(const Tensor& gg, const Tensor& saved_g,
                                               const BceSaved& s) {
    const Tensor g = autograd::saved_input(0, saved_g);
    const Tensor x = autograd::saved_input(1, s.x), y = autograd::saved_input(2, s.y);
    constexpr double eps = 1e-12;
    const Tensor lo = x + eps, hi = 1.0 - x + eps;
    const Tensor dg = weighted_term((x - y) / (lo * hi) * gg, s);
    const Tensor dx =
        weighted_term((x * x - 2.0 * x * y + y) / (square(lo) * square(hi)) * (gg * g), s);
    const Tensor dy = weighted_term(-(gg * g) / clamp_min((1.0 - x) * x, eps), s);
    return {detail::sum_to_op(dg, g.shape()), dx, dy};
}

// The derivatives of the target's gradient -logit(x) g w, PyTorch's composite
// (binary_cross_entropy_target_backward), logit's derivative being 1 / (x (1 - x)).
autograd::Gradients bce_target_grad_derivatives(const Tensor& gg, const Tensor& saved_g,
                                                const BceSaved& s) {
    const Tensor g = autograd::saved_input(0, saved_g), x = autograd::saved_input(1, s.x);
    const Tensor dg = weighted_term(-log(x / (1.0 - x)) * gg, s);
    const Tensor dx = weighted_term(-(gg * g) / (x * (1.0 - x)), s);
    return {detail::sum_to_op(dg, g.shape()), dx};
}

// Under create_graph, the kernel's gradients become the outputs of ops of their own
// over g, x and y, as PyTorch's binary_cross_entropy_backward: the same values, and
// PyTorch's derivatives of them.
void record_bce_grads(autograd::Gradients& grads, const Tensor& grad, const BceSaved& s) {
    const Tensor x = autograd::saved_input(0, s.x), y = autograd::saved_input(1, s.y);
    const Tensor saved_g = grad.detach();
    if (grads[0].defined()) {
        grads[0] = make_result(
            grads[0], "BinaryCrossEntropyBackwardBackward", {grad, x, y},
            [saved_g, s](const Tensor& gg) { return bce_input_grad_derivatives(gg, saved_g, s); },
            autograd::DoubleBackward::Supported);
    }
    if (grads[1].defined()) {
        grads[1] = make_result(
            grads[1], "BinaryCrossEntropyTargetBackwardBackward", {grad, x},
            [saved_g, s](const Tensor& gg) { return bce_target_grad_derivatives(gg, saved_g, s); },
            autograd::DoubleBackward::Supported);
    }
}

}  // namespace

// PyTorch's kernel, term for term: (y - 1) max(log(1 - x), -100) - y max(log x, -100),
// times w. The gradients are PyTorch's formulas, not the clamped forward's derivative:
// g w (x - y) / max(x (1 - x), 1e-12f) for x, finite at x = 0 and 1, and -g w logit(x)
// for y. The weight takes none (PyTorch gives it none either).
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const std::string& reduction,
                            const Tensor& weight) {
    const char* op = "binary_cross_entropy";
    const Reduction mode = parse_reduction(reduction, op);
    if (auto to = detail::storage_dtype(input, target, weight)) {
        return detail::rounded(
            binary_cross_entropy(detail::computable(input), detail::computable(target), reduction,
                                 detail::computable(weight)),
            *to);
    }
    check_floating_pair(input, target, op);
    const Shape shape = input.shape();
    if (weight.defined() &&
        (weight.dtype() != input.dtype() || !broadcasts_to(weight.shape(), shape))) {
        fail("{}: expected a weight of dtype {} that broadcasts to {} (got {} of dtype {})", op,
             dtype_name(input.dtype()), shape_str(shape), shape_str(weight.shape()),
             dtype_name(weight.dtype()));
    }
    return detail::visit_floating(input, op, [&]<class T>(xt::xarray<T>& x) {
        const T* y = target.data<T>().data();
        xt::xarray<T> w;
        if (weight.defined()) w = xt::broadcast(weight.data<T>(), shape);
        auto losses = detail::empty_array<T>(x.shape());
        for (std::size_t i = 0; i < losses.size(); ++i) {
            const T xi = x.data()[i];
            if (!(xi >= 0 && xi <= 1)) {
                fail("{}: expected input values in [0, 1] (got {} at flat index {})", op, xi, i);
            }
            const T loss = (y[i] - 1) * std::max(T(std::log1p(-xi)), T(-100)) -
                           y[i] * std::max(T(std::log(xi)), T(-100));
            losses.data()[i] = weight.defined() ? loss * w.data()[i] : loss;
        }
        Tensor out = wrap(std::move(losses));
        if (mode == Reduction::Sum) out = sum(out);
        if (mode == Reduction::Mean) out = mean(out);
        const bool need_input = input.requires_grad(), need_target = target.requires_grad();
        return make_result(
            out, "BinaryCrossEntropyBackward", {input, target},
            [need_input, need_target,
             s = BceSaved{input.detach(), target.detach(),
                          weight.defined() ? wrap(std::move(w)) : Tensor(),
                          mode}](const Tensor& grad) {
                const T *x = s.x.data<T>().data(), *y = s.y.data<T>().data();
                const T* w = s.w.defined() ? s.w.template data<T>().data() : nullptr;
                const auto& g = grad.data<T>();
                const std::size_t n = s.x.numel();
                auto gx = detail::empty_array<T>(s.x.shape());
                auto gy = detail::empty_array<T>(s.x.shape());
                for (std::size_t i = 0; i < n; ++i) {
                    const T gi = s.mode == Reduction::None ? g.data()[i] : g();
                    T dx = gi * (x[i] - y[i]) / std::max((1 - x[i]) * x[i], T(kTorchEpsilon));
                    T dy = -std::log(x[i] / (1 - x[i])) * gi;
                    if (w) dx *= w[i], dy *= w[i];
                    if (s.mode == Reduction::Mean) dx /= T(n), dy /= T(n);
                    gx.data()[i] = dx;
                    gy.data()[i] = dy;
                }
                autograd::Gradients grads{need_input ? wrap(std::move(gx)) : Tensor(),
                                          need_target ? wrap(std::move(gy)) : Tensor()};
                if (autograd::creating_graph()) record_bce_grads(grads, grad, s);
                return grads;
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg
