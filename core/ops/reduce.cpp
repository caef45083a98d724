// Reductions (sum, mean, max and what derives from them, var, logsumexp) and the
// dim-wise normalisations (softmax, log_softmax).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <optional>
#include <type_traits>

#include <xtensor/xbuilder.hpp>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "reduction.hpp"
#include "row_kernels.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

using autograd::make_result;
using detail::make_reduction;
using detail::normalize_dims;
using detail::Reduction;
using detail::wrap;

namespace {

// spread_axes with ops, for double backward: g, its reduced dims back as size
// 1, broadcast over them and scaled.
Tensor spread_op(const Tensor& g, const Reduction& r, double scale) {
    std::vector<std::int64_t> kept;
    for (std::size_t d = 0; d < r.in_shape.size(); ++d)
        kept.push_back(r.reduced[d] ? 1 : static_cast<std::int64_t>(r.in_shape[d]));
    Tensor spread = broadcast_to(reshape(g, kept), detail::to_shape(r.in_shape));
    return scale == 1.0 ? spread : spread * scale;
}

// MaxBackward with ops, for double backward: g placed at each slice's arg max
// along `axis` by a one-hot mask of the saved indices, PyTorch's
// value_selecting_reduction_backward (a scatter of g). The mask is a constant,
// so the result is linear in g and, as in PyTorch, has no edge to x.
Tensor max_grad_op(const Tensor& g, const Tensor& indices, const detail::DimSplit& s,
                   const Shape& shape, std::size_t axis) {
    auto picked = xt::xarray<bool>::from_shape(shape);
    std::fill(picked.begin(), picked.end(), false);
    const std::int64_t* idx = indices.data<std::int64_t>().data();
    for (std::size_t o = 0; o < s.outer; ++o) {
        for (std::size_t i = 0; i < s.inner; ++i) {
            const auto j = static_cast<std::size_t>(idx[o * s.inner + i]);
            picked.data()[(o * s.size + j) * s.inner + i] = true;
        }
    }
    std::vector<std::int64_t> kept(shape.begin(), shape.end());
    if (!kept.empty()) kept[axis] = 1;
    return where(wrap(std::move(picked)), reshape(g, kept), zeros({}, g.dtype()));
}

// sum or mean over `axes`; the gradient spreads g (times `scale`) back over them.
Tensor reduce_sum(const Tensor& x, std::span<const std::size_t> axes, bool keepdim, bool mean,
                  const char* op) {
    Reduction r = make_reduction(x.sizes(), axes, keepdim);
    std::size_t count = 1;
    for (auto axis : axes) count *= r.in_shape[axis];
    double scale = mean ? 1.0 / static_cast<double>(count) : 1.0;
    if (x.defined() && !is_floating_point(x.dtype())) {
        // PyTorch: a sum of int64 (or bool, counted) stays int64; a mean has no dtype.
        if (mean) {
            fail("mean: expected a floating-point tensor (got {}); convert it with to() first",
                 dtype_name(x.dtype()));
        }
        const Tensor values = x.to(kInt64);
        const std::int64_t* in = values.data<std::int64_t>().data();
        xt::xarray<std::int64_t> out = xt::zeros<std::int64_t>({r.out_numel});
        r.for_each([&](std::size_t i, std::size_t o) { out.data()[o] += in[i]; });
        out.reshape(r.out_shape);
        return wrap(std::move(out));
    }
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> out = detail::sum_axes(a, r.reduced);
        if (mean) {
            for (T& v : out) v *= T(scale);
        }
        out.reshape(r.out_shape);
        return make_result(
            wrap(std::move(out)), mean ? "MeanBackward" : "SumBackward", {x},
            // r moved in, not copied from a const: a closure whose move may throw
            // (a const svector's copy) is kept on the heap, one allocation per call.
            [r = std::move(r), scale](const Tensor& g) {
                if (autograd::creating_graph()) return autograd::Gradients{spread_op(g, r, scale)};
                return autograd::Gradients{
                    wrap(detail::spread_axes(g.data<T>(), r.in_shape, r.reduced, T(scale)))};
            },
            autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
    });
}

// softmax or log_softmax of one contiguous row, and its gradient.
template <bool Log, class T>
void softmax_row(const T* x, T* y, std::size_t n) {
    auto [top, total] = detail::exp_shifted(x, y, n);
    if constexpr (Log) {
        // (x - top) first: exact for the largest entries, whatever top's size.
        const T log_total = std::log(total);
        for (std::size_t j = 0; j < n; ++j) y[j] = (x[j] - top) - log_total;
    } else {
        for (std::size_t j = 0; j < n; ++j) y[j] = y[j] / total;
    }
}
// softmax: d = y (g - sum(g y)); log_softmax: d = g - exp(y) sum(g). d may be g.
template <bool Log, class T>
void softmax_row_grad(const T* y, const T* g, T* d, std::size_t n) {
    const T dot = Log ? detail::lane_sum<T>(n, [g](std::size_t j) { return g[j]; })
                      : detail::lane_sum<T>(n, [g, y](std::size_t j) { return g[j] * y[j]; });
    for (std::size_t j = 0; j < n; ++j)
        d[j] = Log ? g[j] - detail::fast_exp(y[j]) * dot : y[j] * (g[j] - dot);
}

// Every row of a [size / n, n] block: forward, and gradient. The float ones
// are compiled for AVX2 and AVX-512 as well.
template <bool Log, class T>
void softmax_rows(const T* x, T* y, std::size_t size, std::size_t n) {
    for (std::size_t r = 0; r < size; r += n) softmax_row<Log>(x + r, y + r, n);
}
template <bool Log, class T>
void softmax_rows_grad(const T* y, const T* g, T* d, std::size_t size, std::size_t n) {
    for (std::size_t r = 0; r < size; r += n) softmax_row_grad<Log>(y + r, g + r, d + r, n);
}
XG_CLONES_V4_V3 void softmax_rows_f32(bool log, const float* x, float* y, std::size_t size,
                                      std::size_t n) {
    log ? softmax_rows<true>(x, y, size, n) : softmax_rows<false>(x, y, size, n);
}
XG_CLONES_V4_V3 void softmax_rows_grad_f32(bool log, const float* y, const float* g, float* d,
                                           std::size_t size, std::size_t n) {
    log ? softmax_rows_grad<true>(y, g, d, size, n) : softmax_rows_grad<false>(y, g, d, size, n);
}
// Both with the rows split across threads (for_rows).
template <bool Log, class T>
void run_softmax_rows(const T* x, T* y, std::size_t size, std::size_t n) {
    detail::for_rows(size, n, [=](std::size_t first, std::size_t count) {
        if constexpr (std::is_same_v<T, float>)
            softmax_rows_f32(Log, x + first, y + first, count, n);
        else
            softmax_rows<Log>(x + first, y + first, count, n);
    });
}
template <bool Log, class T>
void run_softmax_rows_grad(const T* y, const T* g, T* d, std::size_t size, std::size_t n) {
    detail::for_rows(size, n, [=](std::size_t first, std::size_t count) {
        if constexpr (std::is_same_v<T, float>)
            softmax_rows_grad_f32(Log, y + first, g + first, d + first, count, n);
        else
            softmax_rows_grad<Log>(y + first, g + first, d + first, count, n);
    });
}

// x with `axis` and the last axis swapped, as a contiguous copy; swapping
// again gives x's layout back. Softmax over another dim than the last runs on
// rows of such a copy.
template <class T>
xt::xarray<T> swap_with_last(const xt::xarray<T>& x, std::size_t axis) {
    std::vector<std::size_t> order(x.dimension());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::swap(order[axis], order.back());
    return detail::permuted(x, order);
}

// The gradients of softmax and log_softmax with ops, from their output y:
// y (g - sum(g y)) and g - exp(y) sum(g), the sums along dim.
template <bool Log>
Tensor softmax_grad_op(const Tensor& y, const Tensor& g, int dim) {
    if (y.dim() == 0) return Log ? g - exp(y) * g : y * (g - g * y);
    if constexpr (Log) return g - exp(y) * sum(g, {dim}, true);
    return y * (g - sum(g * y, {dim}, true));
}

// Shared shape of softmax and log_softmax: out = f(x) along dim, row by row.
template <bool Log>
Tensor softmax_impl(const Tensor& x, int dim, const char* op, const char* node) {
    const Shape shape = x.shape();
    const std::size_t axis = shape.empty() ? 0 : detail::normalize_dim(dim, shape.size(), op);
    const bool last = shape.empty() || axis + 1 == shape.size();
    const std::size_t n = shape.empty() ? 1 : shape[axis];
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> in = last ? xt::xarray<T>() : swap_with_last(a, axis);
        const xt::xarray<T>& rows = last ? a : in;
        auto out = detail::empty_array<T>(rows.shape());
        run_softmax_rows<Log>(rows.data(), out.data(), rows.size(), n);
        if (!last) out = swap_with_last(out, axis);
        Tensor result = wrap(std::move(out));
        return make_result(
            result, node, {x},
            [=, saved = result.detach()](const Tensor& grad) {
                if (autograd::creating_graph())
                    return autograd::Gradients{
                        softmax_grad_op<Log>(autograd::saved_output(saved), grad, dim)};
                const xt::xarray<T>& g = grad.data<T>();
                const xt::xarray<T>& y = saved.data<T>();
                xt::xarray<T> g_rows = last ? xt::xarray<T>() : swap_with_last(g, axis);
                xt::xarray<T> y_rows = last ? xt::xarray<T>() : swap_with_last(y, axis);
                const T* gp = last ? g.data() : g_rows.data();
                const T* yp = last ? y.data() : y_rows.data();
                auto d = detail::empty_array<T>(last ? g.shape() : g_rows.shape());
                run_softmax_rows_grad<Log>(yp, gp, d.data(), d.size(), n);
                if (!last) d = swap_with_last(d, axis);
                return autograd::Gradients{wrap(std::move(d))};
            },
            autograd::DoubleBackward::Supported, autograd::Reads::Output);
    });
}

}  // namespace

namespace detail {
template <class T>
void log_softmax_rows(const T* x, T* y, std::size_t size, std::size_t n) {
    run_softmax_rows<true>(x, y, size, n);
}
template void log_softmax_rows(const float*, float*, std::size_t, std::size_t);
template void log_softmax_rows(const double*, double*, std::size_t, std::size_t);

template <class T>
void softmax_rows(const T* x, T* y, std::size_t size, std::size_t n) {
    run_softmax_rows<false>(x, y, size, n);
}
template <class T>
void softmax_rows_grad(const T* y, const T* g, T* d, std::size_t size, std::size_t n) {
    run_softmax_rows_grad<false>(y, g, d, size, n);
}
template void softmax_rows(const float*, float*, std::size_t, std::size_t);
template void softmax_rows(const double*, double*, std::size_t, std::size_t);
template void softmax_rows_grad(const float*, const float*, float*, std::size_t, std::size_t);
template void softmax_rows_grad(const double*, const double*, double*, std::size_t, std::size_t);
}  // namespace detail

namespace detail {
Tensor sum_to_op(const Tensor& x, const Shape& shape) {
    if (same_shape(x, shape)) return x;
    const Shape from = x.shape();
    std::vector<int> dims;
    const std::size_t lead = from.size() - shape.size();
    for (std::size_t d = 0; d < from.size(); ++d) {
        if (d < lead || (shape[d - lead] == 1 && from[d] != 1)) dims.push_back(static_cast<int>(d));
    }
    std::vector<std::int64_t> target(shape.begin(), shape.end());
    return reshape(dims.empty() ? x : sum(x, dims, true), target);
}
}  // namespace detail

Tensor sum(const Tensor& x) { return sum(x, {}, false); }
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "sum: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x)) {  // integers sum to int64, as PyTorch's
        Tensor total = sum(detail::computable(x), dims, keepdim);
        return is_floating_point(*to) ? detail::rounded(total, *to) : total;
    }
    return reduce_sum(x, normalize_dims(dims, x.dim(), "sum"), keepdim, false, "sum");
}

Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "mean: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(mean(detail::computable(x), dims, keepdim), *to);
    return reduce_sum(x, normalize_dims(dims, x.dim(), "mean"), keepdim, true, "mean");
}

std::pair<Tensor, Tensor> max(const Tensor& x, int dim, bool keepdim) {
    check(x.defined(), "max: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x)) {
        auto [values, indices] = max(detail::computable(x), dim, keepdim);
        return {detail::rounded(values, *to), indices};
    }
    Shape shape = x.shape();
    std::size_t axis = detail::normalize_dim(dim, shape.size(), "max");
    Shape out_shape = shape;
    if (!shape.empty()) {
        if (shape[axis] <= 0) {
            fail("max: expected a non-empty dim {} (got shape {})", dim, shape_str(shape));
        }
        if (keepdim)
            out_shape[axis] = 1;
        else
            out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(axis));
    }
    auto s = shape.empty() ? detail::DimSplit{} : detail::split_at(shape, axis);
    auto indices = xt::xarray<std::int64_t>::from_shape(out_shape);
    Tensor values = detail::visit_floating(x, "max", [&]<class T>(xt::xarray<T>& a) {
        auto out = detail::empty_array<T>(out_shape);
        const T* in = a.data();
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t i = 0; i < s.inner; ++i) {
                std::size_t base = o * s.size * s.inner + i, best = 0;
                for (std::size_t j = 1; j < s.size; ++j) {
                    // NaN wins, as in torch.max.
                    T v = in[base + j * s.inner], b = in[base + best * s.inner];
                    if (v > b || (std::isnan(v) && !std::isnan(b))) best = j;
                }
                out.data()[o * s.inner + i] = in[base + best * s.inner];
                indices.data()[o * s.inner + i] = static_cast<std::int64_t>(best);
            }
        }
        return wrap(std::move(out));
    });
    Tensor index_tensor = wrap(std::move(indices));
    // The gradient flows to the arg-max position of each slice only.
    values = make_result(
        values, "MaxBackward", {x},
        [s, shape, axis, saved = index_tensor](const Tensor& g) {
            if (autograd::creating_graph())
                return autograd::Gradients{max_grad_op(g, saved, s, shape, axis)};
            Tensor d = detail::visit_floating(g, "max", [&]<class T>(xt::xarray<T>& gv) {
                xt::xarray<T> spread = xt::zeros<T>(shape);
                const std::int64_t* idx = saved.data<std::int64_t>().data();
                for (std::size_t o = 0; o < s.outer; ++o) {
                    for (std::size_t i = 0; i < s.inner; ++i) {
                        std::size_t at = o * s.inner + i;
                        auto j = static_cast<std::size_t>(idx[at]);
                        spread.data()[o * s.size * s.inner + j * s.inner + i] = gv.data()[at];
                    }
                }
                return wrap(std::move(spread));
            });
            return autograd::Gradients{d};
        },
        autograd::DoubleBackward::Supported);
    return {values, index_tensor};
}

Tensor softmax(const Tensor& x, int dim) {
    check(x.defined(), "softmax: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(softmax(detail::computable(x), dim), *to);
    return softmax_impl<false>(x, dim, "softmax", "SoftmaxBackward");
}

Tensor log_softmax(const Tensor& x, int dim) {
    check(x.defined(), "log_softmax: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(log_softmax(detail::computable(x), dim), *to);
    return softmax_impl<true>(x, dim, "log_softmax", "LogSoftmaxBackward");
}

// ---- derived from sum, mean and max: each gradient comes from theirs ----

// min(x) = -max(-x): the same tie and NaN rules, mirrored.
std::pair<Tensor, Tensor> min(const Tensor& x, int dim, bool keepdim) {
    auto [values, indices] = max(-x, dim, keepdim);
    return {-values, indices};
}

Tensor max(const Tensor& x) {
    check(x.defined() && x.numel() > 0, "max: expected a non-empty tensor");
    return reshape(max(reshape(x, {-1}), 0).first, {});
}
Tensor min(const Tensor& x) {
    check(x.defined() && x.numel() > 0, "min: expected a non-empty tensor");
    return reshape(min(reshape(x, {-1}), 0).first, {});
}

// torch.argmax: indices only (int64, no grad); without a dim, into the flattened tensor.
Tensor argmax(const Tensor& x, std::optional<int> dim, bool keepdim) {
    if (!dim) return reshape(max(reshape(x, {-1}), 0).second, {});
    return max(x, *dim, keepdim).second;
}
Tensor argmin(const Tensor& x, std::optional<int> dim, bool keepdim) {
    if (!dim) return reshape(min(reshape(x, {-1}), 0).second, {});
    return min(x, *dim, keepdim).second;
}

// sum((x - mean)^2) / (n - correction) over dims (every dim when empty).
namespace {

// n when the sorted `axes` are x's trailing dims, x is floating and not empty:
// the length of the contiguous rows var_rows and logsumexp_rows reduce; else 0.
std::size_t trailing_row_length(const Tensor& x, std::span<const std::size_t> axes) {
    if (!is_floating_point(x.dtype()) || axes.empty() || x.numel() == 0) return 0;
    const Shape shape = x.shape();
    std::size_t n = 1;
    for (std::size_t k = 0; k < axes.size(); ++k) {
        if (axes[k] != shape.size() - axes.size() + k) return 0;
        n *= shape[axes[k]];
    }
    return n;
}

// A row kernel's [rows] result in the reduction's shape.
Tensor rows_to_shape(const Tensor& rows, const Shape& shape, std::size_t reduced, bool keepdim) {
    std::vector<std::int64_t> sizes(shape.begin(),
                                    shape.end() - static_cast<std::ptrdiff_t>(reduced));
    if (keepdim) sizes.insert(sizes.end(), reduced, 1);
    return reshape(rows, sizes);
}

}  // namespace

Tensor var(const Tensor& x, const std::vector<int>& dims, double correction, bool keepdim) {
    check(x.defined(), "var: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(var(detail::computable(x), dims, correction, keepdim), *to);
    const detail::ArrayShape axes = normalize_dims(dims, x.dim(), "var");
    if (const std::size_t n = trailing_row_length(x, axes))
        return rows_to_shape(detail::var_rows(x, n, correction), x.shape(), axes.size(), keepdim);
    std::size_t n = 1;
    for (std::size_t axis : normalize_dims(dims, x.dim(), "var")) n *= x.shape()[axis];
    if (x.dim() == 0) n = 1;
    const Tensor centred = x - mean(x, dims, true);
    const Tensor squares =
        dims.empty() && !keepdim ? sum(centred * centred) : sum(centred * centred, dims, keepdim);
    return squares / std::max(static_cast<double>(n) - correction, 0.0);
}

Tensor std(const Tensor& x, const std::vector<int>& dims, double correction, bool keepdim) {
    return sqrt(var(x, dims, correction, keepdim));
}

// log(sum(exp(x - m))) + m with m the (detached) max over dims, so exp cannot
// overflow; an infinite m is taken as 0, as PyTorch does, so all -inf gives -inf.
Tensor logsumexp(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "logsumexp: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(logsumexp(detail::computable(x), dims, keepdim), *to);
    const detail::ArrayShape trailing = normalize_dims(dims, x.dim(), "logsumexp");
    if (const std::size_t n = trailing_row_length(x, trailing))
        return rows_to_shape(detail::logsumexp_rows(x, n), x.shape(), trailing.size(), keepdim);
    Tensor m = x.detach();
    for (std::size_t axis : normalize_dims(dims, x.dim(), "logsumexp")) {
        if (x.dim() > 0) m = max(m, static_cast<int>(axis), true).first;
    }
    m = where(isinf(m), zeros({}, m.dtype()), m);
    Tensor out = log(sum(exp(x - m), dims, true)) + m;
    if (keepdim || x.dim() == 0) return out;
    std::vector<std::int64_t> kept;
    const detail::ArrayShape axes = normalize_dims(dims, x.dim(), "logsumexp");
    for (std::size_t d = 0; d < x.dim(); ++d) {
        if (std::find(axes.begin(), axes.end(), d) == axes.end())
            kept.push_back(static_cast<std::int64_t>(x.shape()[d]));
    }
    return reshape(out, kept);
}

}  // namespace xg
