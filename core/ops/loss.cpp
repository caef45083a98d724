// Losses: mse_loss and cross_entropy fused into one node each with a closed-form
// gradient; the rest derived from differentiable ops, or one node where PyTorch's
// gradient is not the derivative of its forward expression (binary_cross_entropy).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

enum class Reduction { None, Mean, Sum };

// PyTorch's EPSILON for binary_cross_entropy's gradient and cosine_embedding_loss is
// a float: 1e-12f, which is 9.99999996e-13 in float64 results.
constexpr float kTorchEpsilon = 1e-12f;

Reduction parse_reduction(const std::string& reduction, const char* op) {
    if (reduction == "none") return Reduction::None;
    if (reduction == "mean") return Reduction::Mean;
    if (reduction == "sum") return Reduction::Sum;
    throw Error(
        fmt::format("{}: expected reduction 'none', 'mean' or 'sum' (got '{}')", op, reduction));
}

}  // namespace

// mean((input - target)^2); d/dinput = 2 (input - target) / n, d/dtarget its negative.
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
    Reduction mode = parse_reduction(reduction, "mse_loss");
    check(input.defined() && target.defined(),
          "mse_loss: expected defined tensors (got an undefined one)");
    const Dtype dtype = result_type(input, target);  // PyTorch promotes the two
    if (input.dtype() != dtype || target.dtype() != dtype)
        return mse_loss(input.to(dtype), target.to(dtype), reduction);
    if (!detail::same_shape(input, target)) {
        fail("mse_loss: expected input and target of the same shape (got {} and {})",
             shape_str(input.shape()), shape_str(target.shape()));
    }
    return detail::visit_floating(input, "mse_loss", [&]<class T>(xt::xarray<T>& x) {
        auto diff = detail::empty_array<T>(x.shape());
        const T *in = x.data(), *tg = target.data<T>().data();
        for (std::size_t i = 0, n = diff.size(); i < n; ++i) diff.data()[i] = in[i] - tg[i];
        xt::xarray<T> out = detail::empty_array<T>(
            mode == Reduction::None ? detail::ArrayShape(x.shape()) : detail::ArrayShape{});
        if (mode == Reduction::None) {
            for (std::size_t i = 0, n = diff.size(); i < n; ++i)
                out.data()[i] = diff.data()[i] * diff.data()[i];
        } else {
            T total = std::inner_product(diff.begin(), diff.end(), diff.begin(), T(0));
            if (mode == Reduction::Mean) total /= static_cast<T>(diff.size());
            out() = total;
        }
        bool need_input = input.requires_grad(), need_target = target.requires_grad();
        return make_result(
            wrap(std::move(out)), "MseLossBackward", {input, target},
            [mode, need_input, need_target, saved = wrap(std::move(diff))](const Tensor& grad) {
                auto& d = saved.template data<T>();
                auto& g = grad.data<T>();
                auto gi = detail::empty_array<T>(d.shape());
                const T* dp = d.data();
                T* o = gi.data();
                std::size_t n = gi.size();
                if (mode == Reduction::None) {
                    const T* gp = g.data();
                    for (std::size_t i = 0; i < n; ++i) o[i] = T(2) * dp[i] * gp[i];
                } else {
                    T scale = T(2) * g();
                    if (mode == Reduction::Mean) scale /= static_cast<T>(d.size());
                    for (std::size_t i = 0; i < n; ++i) o[i] = scale * dp[i];
                }
                Tensor gt;
                if (need_target) {
                    auto neg = detail::empty_array<T>(d.shape());
                    for (std::size_t i = 0; i < n; ++i) neg.data()[i] = -o[i];
                    gt = wrap(std::move(neg));
                }
                Tensor gin = need_input ? wrap(std::move(gi)) : Tensor();
                return autograd::Gradients{gin, gt};
            });
    });
}

// -log_softmax(logits)[target], for logits [N, C] and int64 targets [N] in [0, C).
// d/dlogits = softmax(logits) - one_hot(target), scaled by the reduction.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const std::string& reduction) {
    Reduction mode = parse_reduction(reduction, "cross_entropy");
    check(logits.defined() && targets.defined(),
          "cross_entropy: expected defined tensors (got an undefined one)");
    Shape ls = logits.shape(), ts = targets.shape();
    check(targets.dtype() == kInt64, "cross_entropy: expected int64 targets (got {})",
          dtype_name(targets.dtype()));
    check(ls.size() == 2 && ts.size() == 1 && ts[0] == ls[0],
          "cross_entropy: expected logits [N, C] and targets [N] (got {} and {})", shape_str(ls),
          shape_str(ts));
    std::size_t n = ls[0], classes = ls[1];
    const std::int64_t* target = targets.data<std::int64_t>().data();
    for (std::size_t i = 0; i < n; ++i) {
        check(target[i] >= 0 && static_cast<std::size_t>(target[i]) < classes,
              "cross_entropy: expected targets in [0, {}) (got {} at index {})", classes, target[i],
              i);
    }
    return detail::visit_floating(logits, "cross_entropy", [&]<class T>(xt::xarray<T>& a) {
        // As PyTorch: the negative log-likelihood of log_softmax, kept for backward.
        auto log_p = detail::empty_array<T>(ls);
        detail::log_softmax_rows(a.data(), log_p.data(), n * classes, classes);
        auto losses = xt::xarray<T>::from_shape({n});
        for (std::size_t i = 0; i < n; ++i) losses(i) = -log_p.data()[i * classes + target[i]];
        xt::xarray<T> out = losses;
        if (mode != Reduction::None) {
            T total = std::accumulate(losses.begin(), losses.end(), T(0));
            if (mode == Reduction::Mean) total /= static_cast<T>(n);
            out = detail::scalar_array(total);
        }
        return make_result(wrap(std::move(out)), "CrossEntropyBackward", {logits, targets},
                           [mode, n, classes, saved = wrap(std::move(log_p)),
                            saved_t = targets.detach()](const Tensor& grad) {
                               // softmax - one_hot(target), times the reduction's scale.
                               const T* log_p = saved.template data<T>().data();
                               const std::int64_t* t = saved_t.data<std::int64_t>().data();
                               auto& g = grad.data<T>();
                               auto d = detail::empty_array<T>({n, classes});
                               for (std::size_t i = 0; i < n; ++i) {
                                   T scale = mode == Reduction::None ? g(i) : g();
                                   if (mode == Reduction::Mean) scale /= static_cast<T>(n);
                                   const T* in = log_p + i * classes;
                                   T* row = d.data() + i * classes;
                                   for (std::size_t c = 0; c < classes; ++c)
                                       row[c] = detail::fast_exp(in[c]);
                                   row[t[i]] -= T(1);
                                   for (std::size_t c = 0; c < classes; ++c) row[c] *= scale;
                               }
                               return autograd::Gradients{wrap(std::move(d)), Tensor()};
                           });
    });
}

// ---- losses derived from elementwise ops (their gradients compose) ----

namespace {

// The elementwise loss reduced as asked, input and target broadcast together
// only when their shapes match (PyTorch warns and broadcasts; xgrad refuses).
Tensor reduced(const Tensor& losses, const std::string& reduction, const char* op) {
    switch (parse_reduction(reduction, op)) {
        case Reduction::None: return losses;
        case Reduction::Sum: return sum(losses);
        case Reduction::Mean: return mean(losses);
    }
    return losses;
}

void check_pair(const Tensor& input, const Tensor& target, const char* op) {
    check(input.defined() && target.defined() && input.shape() == target.shape(),
          "{}: expected input and target of one shape (got {} and {})", op,
          input.defined() ? shape_str(input.shape()) : "undefined",
          target.defined() ? shape_str(target.shape()) : "undefined");
}

// check_pair, and both floating-point of one dtype.
void check_floating_pair(const Tensor& input, const Tensor& target, const char* op) {
    check_pair(input, target, op);
    check(is_floating_point(input.dtype()) && input.dtype() == target.dtype(),
          "{}: expected floating-point input and target of one dtype (got {} and {})", op,
          dtype_name(input.dtype()), dtype_name(target.dtype()));
}

Tensor difference(const Tensor& input, const Tensor& target, const char* op) {
    check_pair(input, target, op);
    return input - target;
}

}  // namespace

Tensor l1_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
    return reduced(abs(difference(input, target, "l1_loss")), reduction, "l1_loss");
}

// 0.5 d^2 / beta inside |d| < beta, |d| - 0.5 beta outside. With beta = 0 it is
// |d|, whose gradient PyTorch takes as -1 at d = 0 (its kernel tests d <= -beta first).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, const std::string& reduction,
                      double beta) {
    check(beta >= 0, "smooth_l1_loss: expected beta >= 0 (got {})", beta);
    const Tensor d = difference(input, target, "smooth_l1_loss");
    if (beta == 0) return reduced(where(le(d, 0.0), -d, d), reduction, "smooth_l1_loss");
    const Tensor a = abs(d);
    return reduced(where(lt(a, beta), square(d) * (0.5 / beta), a - 0.5 * beta), reduction,
                   "smooth_l1_loss");
}

// 0.5 d^2 inside |d| < delta, delta (|d| - 0.5 delta) outside.
Tensor huber_loss(const Tensor& input, const Tensor& target, const std::string& reduction,
                  double delta) {
    check(delta > 0, "huber_loss: expected delta > 0 (got {})", delta);
    const Tensor d = difference(input, target, "huber_loss"), a = abs(d);
    return reduced(where(lt(a, delta), square(d) * 0.5, (a - 0.5 * delta) * delta), reduction,
                   "huber_loss");
}

// PyTorch's stable form, term for term: with m = max(-x, 0) and
// l = 1 + (pos_weight - 1) y, loss = (1 - y) x + l (log(exp(-m) + exp(-x - m)) + m).
// m's own gradient cancels (its two uses pull equally), so d/dx = sigmoid(x) - y at
// x = 0 too, where a sum of abs and clamp subgradients would not give it.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const std::string& reduction, const Tensor& pos_weight) {
    check_pair(input, target, "binary_cross_entropy_with_logits");
    const Tensor m = clamp_min(-input, 0.0);
    Tensor softplus_neg = log(exp(-m) + exp(-input - m)) + m;  // log(1 + exp(-x))
    if (pos_weight.defined()) softplus_neg = ((pos_weight - 1.0) * target + 1.0) * softplus_neg;
    return reduced((1.0 - target) * input + softplus_neg, reduction,
                   "binary_cross_entropy_with_logits");
}

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
    check(is_floating_point(input.dtype()), "{}: expected a floating-point input (got {})", op,
          dtype_name(input.dtype()));
    check(target.dtype() == kInt64, "{}: expected int64 class indices as target (got {})", op,
          dtype_name(target.dtype()));
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

// At each position whose target t is not ignore_index (0 elsewhere), with s the label
// smoothing: -(1 - s) w[t] log_p[t] - (s / C) sum_c w[c] log_p[c]. With s = 0 that
// is nll_loss; after log_softmax, PyTorch's smoothed cross_entropy. 'mean' divides by
// the sum of w[t] over the positions kept (NaN when all are ignored, as PyTorch), for
// both terms. One node: the gradient is the same picks, negated and scaled by g.
Tensor weighted_nll(const Tensor& log_p, const Tensor& target, const Tensor& weight,
                    const ClassLayout& l, Reduction mode, std::int64_t ignore_index,
                    double smoothing) {
    return detail::visit_floating(log_p, "nll_loss", [&]<class T>(xt::xarray<T>& lp) {
        const std::int64_t* t = target.data<std::int64_t>().data();
        const T* w = weight.defined() ? weight.data<T>().data() : nullptr;
        const T keep = T(1 - smoothing), spread = T(smoothing / double(l.classes));
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
            [l, mode, ignore_index, keep, spread, total_weight, shape = log_p.shape(),
             saved_t = target.detach(),
             saved_w = weight.defined() ? weight.detach() : Tensor()](const Tensor& grad) {
                const std::int64_t* t = saved_t.data<std::int64_t>().data();
                const T* w = saved_w.defined() ? saved_w.template data<T>().data() : nullptr;
                const auto& g = grad.data<T>();
                auto d = detail::empty_array<T>(shape);
                std::fill(d.begin(), d.end(), T(0));
                for (std::size_t p = 0, n = saved_t.numel(); p < n; ++p) {
                    if (t[p] == ignore_index) continue;
                    T scale = mode == Reduction::None ? g.data()[p] : g();
                    if (mode == Reduction::Mean) scale /= total_weight;
                    T* row = d.data() + (p / l.inner) * l.classes * l.inner + p % l.inner;
                    row[t[p] * l.inner] -= keep * (w ? w[t[p]] : T(1)) * scale;
                    if (spread == T(0)) continue;
                    for (std::size_t c = 0; c < l.classes; ++c)
                        row[c * l.inner] -= spread * (w ? w[c] : T(1)) * scale;
                }
                return autograd::Gradients{wrap(std::move(d))};
            });
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
    const ClassLayout l = class_layout(input, target, weight, ignore_index, "nll_loss");
    return weighted_nll(input, target, weight, l, mode, ignore_index, 0.0);
}

// ---- binary_cross_entropy, kl_div and the cosine losses ----

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

}  // namespace

// PyTorch's kernel, term for term: (y - 1) max(log(1 - x), -100) - y max(log x, -100),
// times w. The gradients are PyTorch's formulas, not the clamped forward's derivative:
// g w (x - y) / max(x (1 - x), 1e-12f) for x, finite at x = 0 and 1, and -g w logit(x)
// for y. The weight takes none (PyTorch gives it none either).
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const std::string& reduction,
                            const Tensor& weight) {
    const char* op = "binary_cross_entropy";
    const Reduction mode = parse_reduction(reduction, op);
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
            [mode, need_input, need_target, saved_x = input.detach(), saved_y = target.detach(),
             saved_w = weight.defined() ? wrap(std::move(w)) : Tensor()](const Tensor& grad) {
                const T *x = saved_x.data<T>().data(), *y = saved_y.data<T>().data();
                const T* w = saved_w.defined() ? saved_w.template data<T>().data() : nullptr;
                const auto& g = grad.data<T>();
                const std::size_t n = saved_x.numel();
                auto gx = detail::empty_array<T>(saved_x.shape());
                auto gy = detail::empty_array<T>(saved_x.shape());
                for (std::size_t i = 0; i < n; ++i) {
                    const T gi = mode == Reduction::None ? g.data()[i] : g();
                    T dx = gi * (x[i] - y[i]) / std::max((1 - x[i]) * x[i], T(kTorchEpsilon));
                    T dy = -std::log(x[i] / (1 - x[i])) * gi;
                    if (w) dx *= w[i], dy *= w[i];
                    if (mode == Reduction::Mean) dx /= T(n), dy /= T(n);
                    gx.data()[i] = dx;
                    gy.data()[i] = dy;
                }
                return autograd::Gradients{need_input ? wrap(std::move(gx)) : Tensor(),
                                           need_target ? wrap(std::move(gy)) : Tensor()};
            });
    });
}

// PyTorch's expression: exp(t) (t - x) for log targets, else xlogy(t, t) - t x, where
// xlogy(t, t) = t log t is 0 at t = 0. 'batchmean' divides the sum by input.size(0).
Tensor kl_div(const Tensor& input, const Tensor& target, const std::string& reduction,
              bool log_target) {
    const char* op = "kl_div";
    check(reduction == "none" || reduction == "mean" || reduction == "sum" ||
              reduction == "batchmean",
          "kl_div: expected reduction 'none', 'mean', 'sum' or 'batchmean' (got '{}')", reduction);
    check_floating_pair(input, target, op);
    Tensor losses;
    if (log_target) {
        losses = exp(target) * (target - input);
    } else {
        // At t = 0 the where's value is 0 and the target's gradient NaN (0 * log 0):
        // PyTorch's is NaN there too (its xlogy rule divides t by t).
        const Tensor xlogy =
            where(eq(target, 0.0), zeros({}, target.dtype()), target * log(target));
        losses = xlogy - target * input;
    }
    if (reduction != "batchmean") return reduced(losses, reduction, op);
    return sum(losses) / double(input.dim() == 0 ? 1 : input.shape()[0]);
}

namespace {

// max(||x||_2 along dim, eps), that dim kept with size 1. The gradient is
// g x / max(||x||, eps), as PyTorch's: it clamps the norm in place without grad, and
// the norm's backward then reads the clamped value (a zero x gets 0, not NaN).
Tensor clamped_norm(const Tensor& x, std::size_t dim, double eps) {
    return detail::visit_floating(x, "cosine_similarity", [&]<class T>(xt::xarray<T>& a) {
        Shape shape = x.shape();
        const detail::DimSplit s = detail::split_at(shape, dim);
        shape[dim] = 1;
        auto norms = detail::empty_array<T>(shape);
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t i = 0; i < s.inner; ++i) {
                const T* v = a.data() + o * s.size * s.inner + i;
                T squares = 0;
                for (std::size_t k = 0; k < s.size; ++k) squares += v[k * s.inner] * v[k * s.inner];
                norms.data()[o * s.inner + i] = std::max(std::sqrt(squares), T(eps));
            }
        }
        const Tensor n = wrap(std::move(norms));
        return make_result(
            n, "ClampedNormBackward", {x},
            [s, saved_x = x.detach(), saved_n = n.detach()](const Tensor& grad) {
                const T *xv = saved_x.data<T>().data(), *nv = saved_n.data<T>().data();
                const T* g = grad.data<T>().data();
                auto d = detail::empty_array<T>(saved_x.shape());
                for (std::size_t o = 0; o < s.outer; ++o) {
                    for (std::size_t k = 0; k < s.size; ++k) {
                        for (std::size_t i = 0; i < s.inner; ++i) {
                            const std::size_t at = (o * s.size + k) * s.inner + i;
                            d.data()[at] = g[o * s.inner + i] * xv[at] / nv[o * s.inner + i];
                        }
                    }
                }
                return autograd::Gradients{wrap(std::move(d))};
            });
    });
}

}  // namespace

// sum((x1 / max(||x1||, eps)) (x2 / max(||x2||, eps))) along dim, PyTorch's formula
// (each vector normalised first, so |cos| <= 1), after broadcasting x1 and x2.
Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int dim, double eps) {
    const char* op = "cosine_similarity";
    check(x1.defined() && x2.defined(), "{}: expected defined tensors (got an undefined one)", op);
    check(is_floating_point(x1.dtype()) && x1.dtype() == x2.dtype(),
          "{}: expected floating-point x1 and x2 of one dtype (got {} and {})", op,
          dtype_name(x1.dtype()), dtype_name(x2.dtype()));
    const Shape shape = detail::broadcast_shapes(x1.shape(), x2.shape(), op);
    check(!shape.empty(), "{}: expected x1 and x2 with at least one dim (got [] and [])", op);
    const std::size_t d = detail::normalize_dim(dim, shape.size(), op);
    // Expanded first, as PyTorch: a dim x1 is broadcast along counts in its norm.
    const Tensor a = x1.shape() == shape ? x1 : broadcast_to(x1, shape);
    const Tensor b = x2.shape() == shape ? x2 : broadcast_to(x2, shape);
    return sum((a / clamped_norm(a, d, eps)) * (b / clamped_norm(b, d, eps)), {int(d)});
}

// 1 - cos where target is 1, max(0, cos - margin) where it is -1, 0 elsewhere, with
// PyTorch's own cosine here: x1.x2 / sqrt((|x1|^2 + 1e-12f) (|x2|^2 + 1e-12f)).
Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                             double margin, const std::string& reduction) {
    const char* op = "cosine_embedding_loss";
    check(input1.defined() && input2.defined() && target.defined(),
          "{}: expected defined tensors (got an undefined one)", op);
    check(is_floating_point(input1.dtype()) && input1.dtype() == input2.dtype(),
          "{}: expected floating-point inputs of one dtype (got {} and {})", op,
          dtype_name(input1.dtype()), dtype_name(input2.dtype()));
    check(target.dtype() != kBool,
          "{}: expected a target of 1s and -1s, int64 or floating (got bool)", op);
    const Shape s1 = input1.shape(), s2 = input2.shape(), ts = target.shape();
    const bool batched = ts.size() == 1 && s1.size() == 2 && ts[0] == s1[0];
    if (s1 != s2 || !(batched || (ts.empty() && s1.size() == 1))) {
        fail(
            "{}: expected inputs [N, D] and target [N], or inputs [D] and a 0-d target "
            "(got {}, {} and {})",
            op, shape_str(s1), shape_str(s2), shape_str(ts));
    }
    const std::vector<int> features{batched ? 1 : 0};
    const Tensor dot = sum(input1 * input2, features);
    const Tensor squares1 = sum(input1 * input1, features) + double(kTorchEpsilon);
    const Tensor squares2 = sum(input2 * input2, features) + double(kTorchEpsilon);
    const Tensor cos = dot / sqrt(squares1 * squares2);
    const Tensor zero = zeros({}, cos.dtype());
    const Tensor losses = where(eq(target, 1.0), 1.0 - cos, zero) +
                          where(eq(target, -1.0), clamp_min(cos - margin, 0.0), zero);
    return reduced(losses, reduction, op);
}

}  // namespace xg
