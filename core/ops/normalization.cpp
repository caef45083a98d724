// layer_norm as one fused op: one pass for the statistics, one node in the graph.
//
// Per row r of the trailing `n` elements (the normalized shape):
//   mu = mean(x),  rstd = 1 / sqrt(mean((x - mu)^2) + eps),  xhat = (x - mu) * rstd
//   y = xhat * weight + bias
// Backward, with gh = g * weight (or g without weight):
//   dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))
//   dweight = sum over rows of g * xhat,  dbias = sum over rows of g
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

namespace {

// The rows' loops, with the weight and bias cases as template flags so the
// loops carry no per-element branch; sums run in sixteen fixed lanes
// (row_kernels.hpp) so GCC vectorises them.
template <bool HasWeight, bool HasBias, class T>
void normalize_rows(const T* x, const T* w, const T* b, T eps, T* xhat, T* y, T* rstd,
                    std::size_t rows, std::size_t n) {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* xr = x + r * n;
        T* hr = xhat + r * n;
        T* yr = y + r * n;
        const T mu = detail::lane_sum<T>(n, [xr](std::size_t i) { return xr[i]; }) / T(n);
        const T var = detail::lane_sum<T>(
                          n, [xr, mu](std::size_t i) { return (xr[i] - mu) * (xr[i] - mu); }) /
                      T(n);
        const T s = T(1) / std::sqrt(var + eps);
        rstd[r] = s;
        for (std::size_t i = 0; i < n; ++i) {
            T h = (xr[i] - mu) * s;
            hr[i] = h;
            if constexpr (HasWeight) h = h * w[i];
            if constexpr (HasBias) h = h + b[i];
            yr[i] = h;
        }
    }
}

// dw[i] += g * xhat and db[i] += g over `rows` rows `stride` apart, columns
// [0, width), the rows in order; dw or db is skipped when null.
template <class T>
void column_sums(const T* g, const T* xhat, T* dw, T* db, std::size_t rows, std::size_t width,
                 std::size_t stride) {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* gr = g + r * stride;
        const T* hr = xhat + r * stride;
        if (dw) {
            for (std::size_t i = 0; i < width; ++i) dw[i] += gr[i] * hr[i];
        }
        if (db) {
            for (std::size_t i = 0; i < width; ++i) db[i] += gr[i];
        }
    }
}

// Backward, row by row while the row is in cache: dx from gh = g * weight
// (g without weight), and the weight and bias gradients summed over rows.
// Each of d, dw and db is skipped when null.
template <bool HasWeight, class T>
void normalize_rows_grad(const T* g, const T* w, const T* xhat, const T* rstd, T* d, T* dw, T* db,
                         std::size_t rows, std::size_t n) {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* gr = g + r * n;
        const T* hr = xhat + r * n;
        if (d) {
            T* dr = d + r * n;
            auto gh = [gr, w](std::size_t i) { return HasWeight ? gr[i] * w[i] : gr[i]; };
            const T mean_gh = detail::lane_sum<T>(n, gh) / T(n);
            const T mean_ghx =
                detail::lane_sum<T>(n, [&](std::size_t i) { return gh(i) * hr[i]; }) / T(n);
            const T s = rstd[r];  // a local: stores through dr could alias rstd
            for (std::size_t i = 0; i < n; ++i) dr[i] = s * (gh(i) - mean_gh - hr[i] * mean_ghx);
        }
        column_sums(gr, hr, dw, db, 1, n, n);
    }
}

template <class T>
void normalize(const T* x, const T* w, const T* b, T eps, T* xhat, T* y, T* rstd, std::size_t rows,
               std::size_t n) {
    if (w && b)
        normalize_rows<true, true>(x, w, b, eps, xhat, y, rstd, rows, n);
    else if (w)
        normalize_rows<true, false>(x, w, b, eps, xhat, y, rstd, rows, n);
    else if (b)
        normalize_rows<false, true>(x, w, b, eps, xhat, y, rstd, rows, n);
    else
        normalize_rows<false, false>(x, w, b, eps, xhat, y, rstd, rows, n);
}
template <class T>
void normalize_grad(const T* g, const T* w, const T* xhat, const T* rstd, T* d, T* dw, T* db,
                    std::size_t rows, std::size_t n) {
    if (w)
        normalize_rows_grad<true>(g, w, xhat, rstd, d, dw, db, rows, n);
    else
        normalize_rows_grad<false>(g, w, xhat, rstd, d, dw, db, rows, n);
}

// The float loops again, compiled for AVX2 and AVX-512 as well.
XG_CLONES_V4_V3 void normalize_f32(const float* x, const float* w, const float* b, float eps,
                                   float* xhat, float* y, float* rstd, std::size_t rows,
                                   std::size_t n) {
    normalize(x, w, b, eps, xhat, y, rstd, rows, n);
}
XG_CLONES_V4_V3 void normalize_grad_f32(const float* g, const float* w, const float* xhat,
                                        const float* rstd, float* d, float* dw, float* db,
                                        std::size_t rows, std::size_t n) {
    normalize_grad(g, w, xhat, rstd, d, dw, db, rows, n);
}
XG_CLONES_V4_V3 void column_sums_f32(const float* g, const float* xhat, float* dw, float* db,
                                     std::size_t rows, std::size_t width, std::size_t stride) {
    column_sums(g, xhat, dw, db, rows, width, stride);
}

// Rows split across threads (for_rows), each row computed as on one thread.
template <class T>
void run_normalize(const T* x, const T* w, const T* b, T eps, T* xhat, T* y, T* rstd,
                   std::size_t rows, std::size_t n) {
    detail::for_rows(rows * n, n, [=](std::size_t first, std::size_t count) {
        const std::size_t r = n ? first / n : 0, m = n ? count / n : rows;
        if constexpr (std::is_same_v<T, float>)
            normalize_f32(x + first, w, b, eps, xhat + first, y + first, rstd + r, m, n);
        else
            normalize(x + first, w, b, eps, xhat + first, y + first, rstd + r, m, n);
    });
}

// One pass on one thread. On more, dw and db by columns and then dx by rows,
// each column's rows still added in order: the same bits, for one more read of
// g and xhat.
template <class T>
void run_normalize_grad(const T* g, const T* w, const T* xhat, const T* rstd, T* d, T* dw, T* db,
                        std::size_t rows, std::size_t n) {
    auto grad = [](const T* g, const T* w, const T* xhat, const T* rstd, T* d, T* dw, T* db,
                   std::size_t rows, std::size_t n) {
        if constexpr (std::is_same_v<T, float>)
            normalize_grad_f32(g, w, xhat, rstd, d, dw, db, rows, n);
        else
            normalize_grad(g, w, xhat, rstd, d, dw, db, rows, n);
    };
    if (get_num_threads() < 2 || rows * n < 2 * static_cast<std::size_t>(kElementwiseGrain))
        return grad(g, w, xhat, rstd, d, dw, db, rows, n);
    if (dw || db) {  // first: d may be written over g one day
        detail::for_columns(rows, n, [=](std::size_t i, std::size_t width) {
            if constexpr (std::is_same_v<T, float>)
                column_sums_f32(g + i, xhat + i, dw ? dw + i : dw, db ? db + i : db, rows, width,
                                n);
            else
                column_sums(g + i, xhat + i, dw ? dw + i : dw, db ? db + i : db, rows, width, n);
        });
    }
    if (!d) return;
    detail::for_rows(rows * n, n, [=](std::size_t first, std::size_t count) {
        grad(g + first, w, xhat + first, rstd + first / n, d + first, nullptr, nullptr, count / n,
             n);
    });
}

// layer_norm written with ops over the last k dims, for double backward by
// recomputation: (x - mean) / sqrt(biased var + eps), then weight and bias.
Tensor layer_norm_composite(const Tensor& x, std::size_t k, const Tensor& weight,
                            const Tensor& bias, double eps) {
    std::vector<int> dims;
    for (std::size_t d = 0; d < k; ++d) dims.push_back(-1 - static_cast<int>(d));
    const Tensor centred = x - mean(x, dims, true);
    Tensor y = centred * rsqrt(mean(centred * centred, dims, true) + eps);
    if (weight.defined()) y = y * weight;
    if (bias.defined()) y = y + bias;
    return y;
}

}  // namespace

// layer_norm's backward. It saves x-hat and 1/std as tensors, not arrays, so
// that the closure fits BackwardFn's inline buffer: no allocation per step.
template <class T>
autograd::BackwardFn layer_norm_backward(const Tensor& input, const Tensor& weight,
                                         const Tensor& bias, Tensor xhat, Tensor rstd,
                                         std::size_t k, double eps) {
    const bool need_x = input.requires_grad();
    const bool need_w = weight.defined() && weight.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    return [=, saved_x = input.detach(), saved_w = weight.defined() ? weight.detach() : Tensor(),
            saved_b = bias.defined() ? bias.detach() : Tensor()](const Tensor& grad) {
        if (autograd::creating_graph()) {
            return autograd::recomputed_gradients(
                grad, {saved_x, saved_w, saved_b}, [&](const std::vector<Tensor>& in) {
                    return layer_norm_composite(in[0], k, in[1], in[2], eps);
                });
        }
        const T* g = grad.data<T>().data();
        const T* wv = saved_w.defined() ? saved_w.data<T>().data() : nullptr;
        const auto& xh = xhat.data<T>();
        const std::size_t rows = rstd.numel(), n = rows == 0 ? 0 : xh.size() / rows;
        // Only the gradients asked for (a default xt::xarray would allocate one element).
        Tensor gx = need_x ? detail::wrap(detail::empty_array<T>(xh.shape())) : Tensor();
        Tensor gw = need_w ? detail::wrap(detail::zeros_array<T>(saved_w.sizes())) : Tensor();
        Tensor gb = need_b ? detail::wrap(detail::zeros_array<T>(saved_b.sizes())) : Tensor();
        auto out = [](Tensor& t) { return t.defined() ? t.data<T>().data() : nullptr; };
        run_normalize_grad(g, wv, xh.data(), rstd.data<T>().data(), out(gx), out(gw), out(gb), rows,
                           n);
        return autograd::Gradients{gx, gw, gb};
    };
}

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
    if (auto to = detail::storage_dtype(input, weight, bias)) {
        return detail::rounded(
            layer_norm(detail::computable(input), normalized_shape, detail::computable(weight),
                       detail::computable(bias), eps),
            *to);
    }
    const auto shape = input.sizes();
    const std::size_t k = normalized_shape.size();
    if (k == 0 || shape.size() < k || !std::ranges::equal(normalized_shape, shape.last(k))) {
        fail("layer_norm: expected input with shape [*, {}] (got {})",
             fmt::join(normalized_shape, ", "), shape_str(input.shape()));
    }
    for (const Tensor* p : {&weight, &bias}) {
        if (!p->defined()) continue;
        detail::check_same_dtype(input, *p, "layer_norm");
        if (!std::ranges::equal(p->sizes(), normalized_shape)) {
            fail("layer_norm: expected weight and bias of shape {} (got {})",
                 shape_str(normalized_shape), shape_str(p->shape()));
        }
    }
    std::size_t n = 1;
    for (auto d : normalized_shape) n *= d;
    const std::size_t rows = n == 0 ? 0 : input.numel() / n;
    return detail::visit_floating(input, "layer_norm", [&]<class T>(xt::xarray<T>& xa) {
        const T* w = weight.defined() ? weight.data<T>().data() : nullptr;
        const T* b = bias.defined() ? bias.data<T>().data() : nullptr;
        auto out = detail::empty_array<T>(shape);
        auto xhat = detail::empty_array<T>(shape);  // saved for backward
        auto rstd = detail::empty_array<T>({rows});
        run_normalize(xa.data(), w, b, T(eps), xhat.data(), out.data(), rstd.data(), rows, n);
        return autograd::make_result(
            detail::wrap(std::move(out)), "LayerNormBackward", {input, weight, bias},
            layer_norm_backward<T>(input, weight, bias, detail::wrap(std::move(xhat)),
                                   detail::wrap(std::move(rstd)), k, eps),
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg
