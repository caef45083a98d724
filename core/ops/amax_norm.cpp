// amax, amin and norm over a set of dims: reductions without an identity (amax,
// amin, norm with p = inf) and the p-norm, each gradient PyTorch's rule, ties
// sharing g evenly; under create_graph the same rules are written with ops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "reduction.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::make_reduction;
using detail::normalize_dims;
using detail::wrap;

namespace {

// amax, amin and norm(p = inf) have no identity, so no reduced dim may be empty.
void check_nonempty(const detail::Reduction& r, const char* op, const char* context) {
    for (std::size_t d = 0; d < r.in_shape.size(); ++d) {
        if (r.reduced[d] && r.in_shape[d] == 0) {
            fail("{}: expected a non-empty reduced dim {}{} (got shape {})", op, d, context,
                 shape_str(detail::to_shape(r.in_shape)));
        }
    }
}

// PyTorch's gradient for amax, amin and norm(p = inf): g / count at the entries
// `hit` marks (those equal to their slice's extreme), 0 elsewhere. A slice with
// no hit (a NaN extreme) gets 0 / 0, NaN, as in PyTorch.
template <class T, class Hit>
xt::xarray<T> share_among_ties(const detail::Reduction& r, const T* g, Hit hit) {
    std::vector<T> count(r.out_numel, T(0));
    r.for_each([&](std::size_t i, std::size_t o) { count[o] += T(hit(i, o)); });
    auto d = detail::empty_array<T>(r.in_shape);
    r.for_each([&](std::size_t i, std::size_t o) { d.data()[i] = g[o] / count[o] * T(hit(i, o)); });
    return d;
}

// The reduction's output with its reduced dims back as size 1: the layout the
// `o` of detail::Reduction::for_each indexes, which broadcasts against the input.
Shape kept_shape(const detail::Reduction& r) {
    Shape kept = detail::to_shape(r.in_shape);
    for (std::size_t d = 0; d < kept.size(); ++d) {
        if (r.reduced[d]) kept[d] = 1;
    }
    return kept;
}

// share_among_ties with ops, for double backward: PyTorch's scale_grad_by_count,
// (g / count) * mask. The mask and the count are constants (PyTorch takes them
// from a comparison), so the result depends on g only.
template <class T, class Hit>
Tensor share_among_ties_op(const detail::Reduction& r, const Tensor& g, Hit hit) {
    const Shape kept = kept_shape(r);
    auto mask = detail::empty_array<T>(r.in_shape);
    xt::xarray<T> count = xt::xarray<T>::from_shape(kept);
    std::fill(count.begin(), count.end(), T(0));
    r.for_each([&](std::size_t i, std::size_t o) {
        mask.data()[i] = T(hit(i, o));
        count.data()[o] += mask.data()[i];
    });
    const Tensor spread = reshape(g, std::vector<std::int64_t>(kept.begin(), kept.end()));
    return spread / wrap(std::move(count)) * wrap(std::move(mask));
}

template <class T>
T sgn(T v) {
    return T((v > T(0)) - (v < T(0)));  // 0 at 0 and NaN, as torch.sgn
}

// PyTorch's norm_backward entry by entry: g times d||x||_p / dx_i, taken as 0
// where that is 0 / 0 (the norm is 0; for p < 1, x_i is 0) instead of NaN.
template <class T>
xt::xarray<T> norm_grad(const detail::Reduction& r, double p, const T* x, const T* norm,
                        const T* g) {
    if (std::isinf(p)) {
        auto d = share_among_ties<T>(r, g, [&](std::size_t i, std::size_t o) {
            return std::abs(x[i]) == norm[o] || std::isnan(x[i]);
        });
        for (std::size_t i = 0; i < d.size(); ++i) d.data()[i] *= sgn(x[i]);
        return d;
    }
    auto d = detail::empty_array<T>(r.in_shape);
    const T q = T(p);
    r.for_each([&](std::size_t i, std::size_t o) {
        const T v = x[i], n = norm[o];
        T& out = d.data()[i];
        if (p == 1)
            out = sgn(v) * g[o];
        else if (p == 2)
            out = n == 0 ? T(0) : g[o] * (v / n);
        else if (p < 1)
            out = v == 0 ? T(0) : sgn(v) * std::pow(std::abs(v), q - 1) * g[o] * std::pow(n, 1 - q);
        else if (p < 2)
            out =
                n == 0 ? T(0) : sgn(v) * std::pow(std::abs(v), q - 1) * (g[o] / std::pow(n, q - 1));
        else
            out = n == 0 ? T(0) : v * std::pow(std::abs(v), q - 2) * (g[o] / std::pow(n, q - 1));
    });
    return d;
}

// norm_grad with ops, for double backward: PyTorch's norm_backward, with the
// norm the node's own output (so its dependence on x is differentiated too) and
// the masks of zeros (0 / 0 taken as 0) constants of the saved values.
template <class T>
Tensor norm_grad_op(const detail::Reduction& r, double p, const Tensor& saved, const Tensor& top,
                    const Tensor& g) {
    const Tensor x = autograd::saved_input(0, saved);
    if (std::isinf(p)) {
        const T* xv = saved.data<T>().data();
        const T* nv = top.data<T>().data();
        return sign(x) * share_among_ties_op<T>(r, g, [&](std::size_t i, std::size_t o) {
                   return std::abs(xv[i]) == nv[o] || std::isnan(xv[i]);
               });
    }
    const Shape kept = kept_shape(r);
    const std::vector<std::int64_t> sizes(kept.begin(), kept.end());
    const Tensor gk = reshape(g, sizes), norm = reshape(autograd::saved_output(top), sizes);
    if (p == 1) return sign(x) * gk;
    if (p == 2) return gk * masked_fill(x / norm, eq(norm, 0.0), 0.0);
    if (p < 1)
        return sign(x) * masked_fill(pow(abs(x), p - 1), eq(x, 0.0), 0.0) * gk * pow(norm, 1 - p);
    const Tensor scaled = p < 2 ? sign(x) * pow(abs(x), p - 1) : x * pow(abs(x), p - 2);
    return scaled * masked_fill(gk / pow(norm, p - 1), eq(norm, 0.0), 0.0);
}

// amax (Max) or amin over dims: each slice's extreme, a NaN winning as in torch;
// any dtype, with a gradient for floating ones.
template <bool Max>
Tensor extreme(const Tensor& x, const std::vector<int>& dims, bool keepdim, const char* op) {
    check(x.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    const detail::Reduction r =
        make_reduction(x.shape(), normalize_dims(dims, x.dim(), op), keepdim);
    check_nonempty(r, op, "");
    return detail::visit_any(x, op, [&]<class T>(xt::xarray<T>& a) {
        // Start from the comparison's identity; every slice has an entry to replace it.
        using Limits = std::numeric_limits<T>;
        T start = Max ? Limits::lowest() : Limits::max();
        if constexpr (Limits::has_infinity) start = Max ? -Limits::infinity() : Limits::infinity();
        xt::xarray<T> out = xt::xarray<T>::from_shape(r.out_shape);
        std::fill(out.begin(), out.end(), start);
        T* best = out.data();
        const T* in = a.data();
        r.for_each([&](std::size_t i, std::size_t o) {
            bool take = Max ? in[i] > best[o] : in[i] < best[o];
            if constexpr (std::is_floating_point_v<T>) take = take || std::isnan(in[i]);
            if (take) best[o] = in[i];  // a NaN, once taken, is never replaced
        });
        Tensor result = wrap(std::move(out));
        if constexpr (!std::is_floating_point_v<T>) {
            return result;
        } else {
            return make_result(
                result, Max ? "AmaxBackward" : "AminBackward", {x},
                [r, saved = x.detach(), top = result.detach()](const Tensor& grad) {
                    const T* xv = saved.data<T>().data();
                    const T* best = top.data<T>().data();
                    auto tie = [&](std::size_t i, std::size_t o) { return xv[i] == best[o]; };
                    if (autograd::creating_graph())
                        return autograd::Gradients{share_among_ties_op<T>(r, grad, tie)};
                    return autograd::Gradients{
                        wrap(share_among_ties<T>(r, grad.data<T>().data(), tie))};
                },
                autograd::DoubleBackward::Supported);
        }
    });
}

}  // namespace

Tensor amax(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(amax(detail::computable(x), dims, keepdim), *to);
    return extreme<true>(x, dims, keepdim, "amax");
}
Tensor amin(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(amin(detail::computable(x), dims, keepdim), *to);
    return extreme<false>(x, dims, keepdim, "amin");
}

// The p-norm over dims, as torch.linalg.vector_norm; sums run in double. The
// gradient follows PyTorch's norm_backward (norm_grad above).
Tensor norm(const Tensor& x, double p, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "norm: expected a defined tensor (got an undefined one)");
    check(p > 0, "norm: expected p = 1, 2, any other p > 0, or inf (got {})", p);
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(norm(detail::computable(x), p, dims, keepdim), *to);
    const detail::Reduction r =
        make_reduction(x.shape(), normalize_dims(dims, x.dim(), "norm"), keepdim);
    const bool inf = std::isinf(p);
    if (inf) check_nonempty(r, "norm", " for p = inf");  // max |x| has no identity
    return detail::visit_floating(x, "norm", [&]<class T>(xt::xarray<T>& a) {
        std::vector<double> acc(r.out_numel, 0.0);
        const T* in = a.data();
        r.for_each([&](std::size_t i, std::size_t o) {
            const double v = std::abs(static_cast<double>(in[i]));
            if (inf)
                acc[o] = v > acc[o] || std::isnan(v) ? v : acc[o];
            else
                acc[o] += p == 1 ? v : p == 2 ? v * v : std::pow(v, p);
        });
        auto out = detail::empty_array<T>(r.out_shape);
        for (std::size_t o = 0; o < r.out_numel; ++o) {
            const double root = inf || p == 1 ? acc[o]
                                : p == 2      ? std::sqrt(acc[o])
                                              : std::pow(acc[o], 1 / p);
            out.data()[o] = static_cast<T>(root);
        }
        Tensor result = wrap(std::move(out));
        return make_result(
            result, "NormBackward", {x},
            [r, p, saved = x.detach(), top = result.detach()](const Tensor& g) {
                if (autograd::creating_graph())
                    return autograd::Gradients{norm_grad_op<T>(r, p, saved, top, g)};
                return autograd::Gradients{wrap(norm_grad(
                    r, p, saved.data<T>().data(), top.data<T>().data(), g.data<T>().data()))};
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg
