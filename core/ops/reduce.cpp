// Reductions and the dim-wise normalisations (softmax, log_softmax).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <type_traits>

#include <xtensor/xbuilder.hpp>

#include "buffer_cache.hpp"
#include "cpu_dispatch.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// Sorted, de-duplicated, non-negative axes; an empty list means every axis.
std::vector<std::size_t> normalize_dims(const std::vector<int>& dims, std::size_t ndim,
                                        const char* op) {
    std::vector<std::size_t> axes;
    for (int d : dims) axes.push_back(detail::normalize_dim(d, ndim, op));
    if (dims.empty()) {
        for (std::size_t i = 0; i < ndim; ++i) axes.push_back(i);
    }
    std::sort(axes.begin(), axes.end());
    check(std::adjacent_find(axes.begin(), axes.end()) == axes.end(),
          "{}: expected each dim at most once (got {})", op, fmt::join(dims, ", "));
    if (ndim == 0) axes.clear();  // a 0-d tensor takes dim 0 or -1 but has no axis to reduce
    return axes;
}

// A reduction over some axes: the output's shape, and where each input entry goes.
struct Reduction {
    Shape in_shape, out_shape;  // out_shape drops the reduced dims unless keepdim
    std::vector<bool> reduced;  // per input dim
    std::size_t out_numel = 1;

    // f(i, o) for every input offset i and the output offset o it reduces into
    // (the output laid out as the input with its reduced dims of size 1).
    template <class F>
    void for_each(F f) const {
        std::size_t numel = 1;
        for (auto extent : in_shape) numel *= extent;
        if (numel == 0) return;
        if (in_shape.empty()) return f(std::size_t{0}, std::size_t{0});
        const std::vector<std::size_t> stride = detail::kept_strides(in_shape, reduced);
        const std::size_t last = in_shape.back(), step = stride.back();
        detail::for_each_row(in_shape, stride, [&](std::size_t start, std::size_t offset) {
            for (std::size_t k = 0; k < last; ++k) f(start + k, offset + k * step);
        });
    }
};

Reduction make_reduction(const Shape& shape, const std::vector<std::size_t>& axes, bool keepdim) {
    Reduction r{shape, {}, std::vector<bool>(shape.size(), false)};
    for (auto axis : axes) r.reduced[axis] = true;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (!r.reduced[d]) r.out_numel *= shape[d];
        if (!r.reduced[d] || keepdim) r.out_shape.push_back(r.reduced[d] ? 1 : shape[d]);
    }
    return r;
}

// amax, amin and norm(p = inf) have no identity, so no reduced dim may be empty.
void check_nonempty(const Reduction& r, const char* op, const char* context) {
    for (std::size_t d = 0; d < r.in_shape.size(); ++d) {
        check(!r.reduced[d] || r.in_shape[d] > 0,
              "{}: expected a non-empty reduced dim {}{} (got shape {})", op, d, context,
              shape_str(r.in_shape));
    }
}

// sum or mean over `axes`; the gradient spreads g (times `scale`) back over them.
Tensor reduce_sum(const Tensor& x, const std::vector<std::size_t>& axes, bool keepdim, bool mean,
                  const char* op) {
    const Reduction r = make_reduction(x.shape(), axes, keepdim);
    std::size_t count = 1;
    for (auto axis : axes) count *= r.in_shape[axis];
    double scale = mean ? 1.0 / static_cast<double>(count) : 1.0;
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> out = detail::sum_axes(a, r.reduced);
        if (mean) out *= T(scale);
        out.reshape(r.out_shape);
        return make_result(wrap(std::move(out)), mean ? "MeanBackward" : "SumBackward", {x},
                           [r, scale](const Tensor& g) {
                               return autograd::Gradients{wrap(detail::spread_axes(
                                   g.data<T>(), r.in_shape, r.reduced, T(scale)))};
                           });
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
template <bool Log, class T>
void run_softmax_rows(const T* x, T* y, std::size_t size, std::size_t n) {
    if constexpr (std::is_same_v<T, float>)
        softmax_rows_f32(Log, x, y, size, n);
    else
        softmax_rows<Log>(x, y, size, n);
}
template <bool Log, class T>
void run_softmax_rows_grad(const T* y, const T* g, T* d, std::size_t size, std::size_t n) {
    if constexpr (std::is_same_v<T, float>)
        softmax_rows_grad_f32(Log, y, g, d, size, n);
    else
        softmax_rows_grad<Log>(y, g, d, size, n);
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
        return make_result(result, node, {x}, [=, saved = result.detach()](const Tensor& grad) {
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
        });
    });
}

// ---- helpers of prod, cumsum, amax, amin and norm ----

// Calls f(xt::xarray<T>&) for float32, float64 or int64; bool counts as int64,
// as torch.prod and torch.cumsum promote it.
template <class F>
Tensor visit_numeric(const Tensor& t, const char* op, F&& f) {
    check(t.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    switch (t.dtype()) {
        case Dtype::Float32: return f(t.data<float>());
        case Dtype::Float64: return f(t.data<double>());
        case Dtype::Int64: return f(t.data<std::int64_t>());
        case Dtype::Bool: return f(t.to(kInt64).data<std::int64_t>());
    }
    throw Error(fmt::format("{}: unknown dtype", op));
}

// a * b; int64 wraps around as in PyTorch instead of overflowing (undefined in C++).
template <class T>
T times(T a, T b) {
    if constexpr (std::is_integral_v<T>)
        return static_cast<T>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
    else
        return a * b;
}

// Running sums along the middle extent of `s`, from the back when `reverse`
// (cumsum's gradient). float32 accumulates in double, as PyTorch's CPU kernel.
template <class T>
xt::xarray<T> running_sums(const xt::xarray<T>& a, const detail::DimSplit& s, bool reverse) {
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    auto out = detail::empty_array<T>(a.shape());
    for (std::size_t o = 0; o < s.outer; ++o) {
        for (std::size_t i = 0; i < s.inner; ++i) {
            Acc acc = 0;
            for (std::size_t k = 0; k < s.size; ++k) {
                const std::size_t at = (o * s.size + (reverse ? s.size - 1 - k : k)) * s.inner + i;
                acc += a.data()[at];
                out.data()[at] = static_cast<T>(acc);
            }
        }
    }
    return out;
}

// prod's gradient: g times the product of the other entries of each slice along
// the middle extent of `s`, from prefix and suffix products. No division, so
// with one zero only that entry's gradient is nonzero, and with two none is.
template <class T>
xt::xarray<T> products_of_others(const T* x, const T* g, const detail::DimSplit& s,
                                 const Shape& shape) {
    auto d = detail::empty_array<T>(shape);
    std::vector<T> before(s.size);  // before[j]: the product of entries 0 .. j-1
    for (std::size_t o = 0; o < s.outer; ++o) {
        for (std::size_t i = 0; i < s.inner; ++i) {
            const std::size_t base = o * s.size * s.inner + i;
            T acc = 1;
            for (std::size_t j = 0; j < s.size; ++j) {
                before[j] = acc;
                acc *= x[base + j * s.inner];
            }
            T after = g[o * s.inner + i];  // g times the entries after j
            for (std::size_t j = s.size; j-- > 0;) {
                d.data()[base + j * s.inner] = before[j] * after;
                after *= x[base + j * s.inner];
            }
        }
    }
    return d;
}

// PyTorch's gradient for amax, amin and norm(p = inf): g / count at the entries
// `hit` marks (those equal to their slice's extreme), 0 elsewhere. A slice with
// no hit (a NaN extreme) gets 0 / 0, NaN, as in PyTorch.
template <class T, class Hit>
xt::xarray<T> share_among_ties(const Reduction& r, const T* g, Hit hit) {
    std::vector<T> count(r.out_numel, T(0));
    r.for_each([&](std::size_t i, std::size_t o) { count[o] += T(hit(i, o)); });
    auto d = detail::empty_array<T>(r.in_shape);
    r.for_each([&](std::size_t i, std::size_t o) { d.data()[i] = g[o] / count[o] * T(hit(i, o)); });
    return d;
}

template <class T>
T sgn(T v) {
    return T((v > T(0)) - (v < T(0)));  // 0 at 0 and NaN, as torch.sgn
}

// PyTorch's norm_backward entry by entry: g times d||x||_p / dx_i, taken as 0
// where that is 0 / 0 (the norm is 0; for p < 1, x_i is 0) instead of NaN.
template <class T>
xt::xarray<T> norm_grad(const Reduction& r, double p, const T* x, const T* norm, const T* g) {
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

// amax (Max) or amin over dims: each slice's extreme, a NaN winning as in torch;
// any dtype, with a gradient for floating ones.
template <bool Max>
Tensor extreme(const Tensor& x, const std::vector<int>& dims, bool keepdim, const char* op) {
    check(x.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    const Reduction r = make_reduction(x.shape(), normalize_dims(dims, x.dim(), op), keepdim);
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
            return make_result(result, Max ? "AmaxBackward" : "AminBackward", {x},
                               [r, saved = x.detach(), top = result.detach()](const Tensor& grad) {
                                   const T* xv = saved.data<T>().data();
                                   const T* best = top.data<T>().data();
                                   return autograd::Gradients{wrap(share_among_ties<T>(
                                       r, grad.data<T>().data(), [&](std::size_t i, std::size_t o) {
                                           return xv[i] == best[o];
                                       }))};
                               });
        }
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

Tensor sum(const Tensor& x) { return sum(x, {}, false); }
Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "sum: expected a defined tensor (got an undefined one)");
    return reduce_sum(x, normalize_dims(dims, x.dim(), "sum"), keepdim, false, "sum");
}

Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "mean: expected a defined tensor (got an undefined one)");
    return reduce_sum(x, normalize_dims(dims, x.dim(), "mean"), keepdim, true, "mean");
}

std::pair<Tensor, Tensor> max(const Tensor& x, int dim, bool keepdim) {
    check(x.defined(), "max: expected a defined tensor (got an undefined one)");
    Shape shape = x.shape();
    std::size_t axis = detail::normalize_dim(dim, shape.size(), "max");
    Shape out_shape = shape;
    if (!shape.empty()) {
        check(shape[axis] > 0, "max: expected a non-empty dim {} (got shape {})", dim,
              shape_str(shape));
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
    values =
        make_result(values, "MaxBackward", {x}, [s, shape, saved = index_tensor](const Tensor& g) {
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
        });
    return {values, index_tensor};
}

Tensor softmax(const Tensor& x, int dim) {
    check(x.defined(), "softmax: expected a defined tensor (got an undefined one)");
    return softmax_impl<false>(x, dim, "softmax", "SoftmaxBackward");
}

Tensor log_softmax(const Tensor& x, int dim) {
    check(x.defined(), "log_softmax: expected a defined tensor (got an undefined one)");
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
std::size_t trailing_row_length(const Tensor& x, const std::vector<std::size_t>& axes) {
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
    const std::vector<std::size_t> axes = normalize_dims(dims, x.dim(), "var");
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
    const std::vector<std::size_t> trailing = normalize_dims(dims, x.dim(), "logsumexp");
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
    const std::vector<std::size_t> axes = normalize_dims(dims, x.dim(), "logsumexp");
    for (std::size_t d = 0; d < x.dim(); ++d) {
        if (std::find(axes.begin(), axes.end(), d) == axes.end())
            kept.push_back(static_cast<std::int64_t>(x.shape()[d]));
    }
    return reshape(out, kept);
}

// ---- prod, cumsum, amax, amin, norm: each node beside its forward ----

Tensor prod(const Tensor& x) {
    check(x.defined(), "prod: expected a defined tensor (got an undefined one)");
    return reshape(prod(reshape(x, {-1}), 0), {});
}

// Products along dim (1 for an empty slice); int64 (and bool) give int64 and no
// gradient. The gradient is exact with zeros (products_of_others).
Tensor prod(const Tensor& x, int dim, bool keepdim) {
    check(x.defined(), "prod: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "prod");
    const auto s = shape.empty() ? detail::DimSplit{} : detail::split_at(shape, axis);
    Shape out_shape = shape;
    if (!shape.empty()) {
        if (keepdim)
            out_shape[axis] = 1;
        else
            out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(axis));
    }
    return visit_numeric(x, "prod", [&]<class T>(xt::xarray<T>& a) {
        auto out = detail::empty_array<T>(out_shape);
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t i = 0; i < s.inner; ++i) {
                T p = 1;
                for (std::size_t j = 0; j < s.size; ++j)
                    p = times(p, a.data()[(o * s.size + j) * s.inner + i]);
                out.data()[o * s.inner + i] = p;
            }
        }
        Tensor result = wrap(std::move(out));
        if constexpr (!std::is_floating_point_v<T>) {
            return result;
        } else {
            return make_result(
                result, "ProdBackward", {x}, [s, shape, saved = x.detach()](const Tensor& g) {
                    return autograd::Gradients{wrap(
                        products_of_others(saved.data<T>().data(), g.data<T>().data(), s, shape))};
                });
        }
    });
}

// Running sums along dim; the gradient of entry j sums g over the entries from j on.
Tensor cumsum(const Tensor& x, int dim) {
    check(x.defined(), "cumsum: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "cumsum");
    const auto s = shape.empty() ? detail::DimSplit{} : detail::split_at(shape, axis);
    return visit_numeric(x, "cumsum", [&]<class T>(xt::xarray<T>& a) {
        Tensor result = wrap(running_sums(a, s, false));
        if constexpr (!std::is_floating_point_v<T>) {
            return result;
        } else {
            return make_result(result, "CumsumBackward", {x}, [s](const Tensor& g) {
                return autograd::Gradients{wrap(running_sums(g.data<T>(), s, true))};
            });
        }
    });
}

Tensor amax(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    return extreme<true>(x, dims, keepdim, "amax");
}
Tensor amin(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
    return extreme<false>(x, dims, keepdim, "amin");
}

// The p-norm over dims, as torch.linalg.vector_norm; sums run in double. The
// gradient follows PyTorch's norm_backward (norm_grad above).
Tensor norm(const Tensor& x, double p, const std::vector<int>& dims, bool keepdim) {
    check(x.defined(), "norm: expected a defined tensor (got an undefined one)");
    check(p > 0, "norm: expected p = 1, 2, any other p > 0, or inf (got {})", p);
    const Reduction r = make_reduction(x.shape(), normalize_dims(dims, x.dim(), "norm"), keepdim);
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
                return autograd::Gradients{wrap(norm_grad(
                    r, p, saved.data<T>().data(), top.data<T>().data(), g.data<T>().data()))};
            });
    });
}

}  // namespace xg
