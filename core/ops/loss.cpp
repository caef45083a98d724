// Losses: mse_loss and cross_entropy ([N, C] logits, class indices [N]) fused into one node each
// with a closed-form gradient (written with ops too, for double backward); l1_loss, smooth_l1_loss,
// huber_loss and binary_cross_entropy_with_logits derived from elementwise ops.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "buffer_cache.hpp"
#include "grad_buffers.hpp"
#include "internal.hpp"
#include "loss_helpers.hpp"
#include "row_kernels.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;
using detail::loss::check_pair;
using detail::loss::parse_reduction;
using detail::loss::reduced;
using detail::loss::Reduction;

namespace {

// mse_loss's loops, compiled for AVX2 and AVX-512 as well (cpu_dispatch.hpp):
// at small sizes they are most of the op's time.
//
// d = a - b over [0, n); then the squares of d into `squares` ('none'), or
// their sum in sixteen lanes returned (row_kernels.hpp).
template <class T>
T difference_squared(const T* a, const T* b, T* d, T* squares, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) d[i] = a[i] - b[i];
    if (squares == nullptr)
        return detail::lane_sum<T>(n, [d](std::size_t i) { return d[i] * d[i]; });
    for (std::size_t i = 0; i < n; ++i) squares[i] = d[i] * d[i];
    return T(0);
}
XG_CLONES_V4_V3 float mse_pass(const float* a, const float* b, float* d, float* squares,
                               std::size_t n) {
    return difference_squared(a, b, d, squares, n);
}
XG_CLONES_V4_V3 double mse_pass(const double* a, const double* b, double* d, double* squares,
                                std::size_t n) {
    return difference_squared(a, b, d, squares, n);
}

// The input's gradient o from the saved difference d: 2 d g for 'none' (g
// given), scale d otherwise; and the target's, -o, into neg when given. o may
// be d itself: each element is read before it is written.
template <class T>
void difference_grad(const T* d, const T* g, T scale, T* o, T* neg, std::size_t n) {
    if (g != nullptr) {
        XG_IVDEP
        for (std::size_t i = 0; i < n; ++i) o[i] = T(2) * d[i] * g[i];
    } else {
        XG_IVDEP
        for (std::size_t i = 0; i < n; ++i) o[i] = scale * d[i];
    }
    if (neg == nullptr) return;
    for (std::size_t i = 0; i < n; ++i) neg[i] = -o[i];
}
XG_CLONES_V4_V3 void mse_grad_pass(const float* d, const float* g, float scale, float* o,
                                   float* neg, std::size_t n) {
    difference_grad(d, g, scale, o, neg, n);
}
XG_CLONES_V4_V3 void mse_grad_pass(const double* d, const double* g, double scale, double* o,
                                   double* neg, std::size_t n) {
    difference_grad(d, g, scale, o, neg, n);
}

}  // namespace

// mean((input - target)^2); d/dinput = 2 (input - target) / n, d/dtarget its negative.
Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
    Reduction mode = parse_reduction(reduction, "mse_loss");
    check(input.defined() && target.defined(),
          "mse_loss: expected defined tensors (got an undefined one)");
    const Dtype dtype = result_type(input, target);  // PyTorch promotes the two
    if (compute_dtype(dtype) != dtype) {
        const Dtype wide = compute_dtype(dtype);
        return detail::rounded(mse_loss(input.to(wide), target.to(wide), reduction), dtype);
    }
    if (input.dtype() != dtype || target.dtype() != dtype)
        return mse_loss(input.to(dtype), target.to(dtype), reduction);
    if (!detail::same_shape(input, target)) {
        fail("mse_loss: expected input and target of the same shape (got {} and {})",
             shape_str(input.shape()), shape_str(target.shape()));
    }
    return detail::visit_floating(input, "mse_loss", [&]<class T>(xt::xarray<T>& x) {
        Tensor diff = detail::empty_tensor<T>(x.shape());
        const T *in = x.data(), *tg = target.data<T>().data();
        T* dp = diff.data<T>().data();
        const std::size_t n = x.size();
        Tensor out = detail::empty_tensor<T>(mode == Reduction::None ? detail::ArrayShape(x.shape())
                                                                     : detail::ArrayShape{});
        T* op = out.data<T>().data();
        if (mode == Reduction::None) {
            detail::for_chunks(n, [=](std::size_t first, std::size_t count) {
                mse_pass(in + first, tg + first, dp + first, op + first, count);
            });
        } else {
            T total = detail::blocked_sum<T>(n, [=](std::size_t first, std::size_t count) {
                return mse_pass(in + first, tg + first, dp + first, nullptr, count);
            });
            if (mode == Reduction::Mean) total /= static_cast<T>(n);
            *op = total;
        }
        bool need_input = input.requires_grad(), need_target = target.requires_grad();
        return make_result(
            std::move(out), "MseLossBackward", {input, target},
            [mode, need_input, need_target, saved_diff = diff.impl()->storage,
             saved_in = input.impl()->storage,
             saved_tg = target.impl()->storage](const Tensor& grad) {
                if (autograd::creating_graph()) {
                    const Tensor d = autograd::saved_input(0, detail::tensor_of(saved_in)) -
                                     autograd::saved_input(1, detail::tensor_of(saved_tg));
                    const double n = mode == Reduction::Mean ? static_cast<double>(d.numel()) : 1.0;
                    const Tensor gi = (2.0 / n) * d * grad;
                    return autograd::Gradients{gi, -gi};
                }
                auto& d = std::get<xt::xarray<T>>(*saved_diff);
                auto& g = grad.data<T>();
                const T* dp = d.data();
                const std::size_t n = d.size();
                const T* gp = g.data();
                T scale = mode == Reduction::None ? T(0) : T(2) * g();
                if (mode == Reduction::Mean) scale /= static_cast<T>(n);
                Tensor gt = need_target ? detail::empty_tensor<T>(d.shape()) : Tensor();
                T* np = need_target ? gt.data<T>().data() : nullptr;
                // The input's gradient over the saved difference when the rule
                // allows (grad_buffers.hpp): each element is read before it is written.
                Tensor gin = autograd::gradient_over_saved<T>(saved_diff);
                T* o = gin.data<T>().data();
                const T* each = mode == Reduction::None ? gp : nullptr;
                detail::for_chunks(n, [=](std::size_t first, std::size_t count) {
                    mse_grad_pass(dp + first, each ? each + first : nullptr, scale, o + first,
                                  np ? np + first : nullptr, count);
                });
                return autograd::Gradients{need_input ? gin : Tensor(), gt};
            },
            autograd::DoubleBackward::Supported);
    });
}

namespace {

// cross_entropy's gradient with ops, for double backward: (softmax(x) - one_hot(t))
// times g, divided by N for 'mean'. The node keeps log_p, not x: log_p is x shifted
// by a constant per row, which softmax ignores, so softmax of log_p given x's history
// is softmax(x), derivatives of every order included.
Tensor cross_entropy_grad_op(const Tensor& log_p, const Tensor& targets, const Tensor& grad,
                             Reduction mode) {
    const Shape shape = log_p.shape();
    const Tensor picked = one_hot(targets, static_cast<std::int64_t>(shape[1])).to(log_p.dtype());
    Tensor scale = mode == Reduction::None ? unsqueeze(grad, 1) : grad;
    if (mode == Reduction::Mean) scale = scale / static_cast<double>(shape[0]);
    return (softmax(log_p, 1) - picked) * scale;
}

}  // namespace

// -log_softmax(logits)[target], for logits [N, C] and int64 targets [N] in [0, C).
// d/dlogits = softmax(logits) - one_hot(target), scaled by the reduction.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const std::string& reduction) {
    Reduction mode = parse_reduction(reduction, "cross_entropy");
    check(logits.defined() && targets.defined(),
          "cross_entropy: expected defined tensors (got an undefined one)");
    if (auto to = detail::storage_dtype(logits))
        return detail::rounded(cross_entropy(detail::computable(logits), targets, reduction), *to);
    Shape ls = logits.shape(), ts = targets.shape();
    if (targets.dtype() != kInt64) {
        fail("cross_entropy: expected int64 targets (got {})", dtype_name(targets.dtype()));
    }
    if (!(ls.size() == 2 && ts.size() == 1 && ts[0] == ls[0])) {
        fail("cross_entropy: expected logits [N, C] and targets [N] (got {} and {})", shape_str(ls),
             shape_str(ts));
    }
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
        return make_result(
            wrap(std::move(out)), "CrossEntropyBackward", {logits, targets},
            [mode, n, classes, saved = wrap(std::move(log_p)),
             saved_t = targets.detach()](const Tensor& grad) {
                if (autograd::creating_graph()) {
                    return autograd::Gradients{
                        cross_entropy_grad_op(autograd::saved_input(0, saved), saved_t, grad, mode),
                        Tensor()};
                }
                // softmax - one_hot(target), times the reduction's scale.
                const T* log_p = saved.template data<T>().data();
                const std::int64_t* t = saved_t.data<std::int64_t>().data();
                auto& g = grad.data<T>();
                auto d = detail::empty_array<T>({n, classes});
                T* dp = d.data();
                detail::parallel_rows(n, classes, [&](std::size_t i) {  // rows across threads
                    T scale = mode == Reduction::None ? g(i) : g();
                    if (mode == Reduction::Mean) scale /= static_cast<T>(n);
                    const T* in = log_p + i * classes;
                    T* row = dp + i * classes;
                    for (std::size_t c = 0; c < classes; ++c) row[c] = detail::fast_exp(in[c]);
                    row[t[i]] -= T(1);
                    for (std::size_t c = 0; c < classes; ++c) row[c] *= scale;
                });
                return autograd::Gradients{wrap(std::move(d)), Tensor()};
            },
            autograd::DoubleBackward::Supported);
    });
}

// ---- losses derived from elementwise ops (their gradients compose) ----

namespace {

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

}  // namespace xg
