// kl_div, cosine_similarity and cosine_embedding_loss, derived from differentiable
// ops as PyTorch writes them; cosine_similarity's clamped norm is one node, whose
// gradient is PyTorch's.
#include <algorithm>
#include <cmath>
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
using detail::loss::reduced;

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
// the norm's backward then reads the clamped value (a zero x gets 0, not NaN). Under
// create_graph the same formula with ops, the norm being this node's output, as
// PyTorch's norm_backward differentiates.
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
                if (autograd::creating_graph()) {
                    return autograd::Gradients{grad * autograd::saved_input(0, saved_x) /
                                               autograd::saved_output(saved_n)};
                }
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
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace

// sum((x1 / max(||x1||, eps)) (x2 / max(||x2||, eps))) along dim, PyTorch's formula
// (each vector normalised first, so |cos| <= 1), after broadcasting x1 and x2.
Tensor cosine_similarity(const Tensor& x1, const Tensor& x2, int dim, double eps) {
    const char* op = "cosine_similarity";
    check(x1.defined() && x2.defined(), "{}: expected defined tensors (got an undefined one)", op);
    if (!(is_floating_point(x1.dtype()) && x1.dtype() == x2.dtype())) {
        fail("{}: expected floating-point x1 and x2 of one dtype (got {} and {})", op,
             dtype_name(x1.dtype()), dtype_name(x2.dtype()));
    }
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
    if (!(is_floating_point(input1.dtype()) && input1.dtype() == input2.dtype())) {
        fail("{}: expected floating-point inputs of one dtype (got {} and {})", op,
             dtype_name(input1.dtype()), dtype_name(input2.dtype()));
    }
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
