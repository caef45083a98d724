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

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

Tensor layer_norm(const Tensor& input, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
    Shape shape = input.shape();
    const std::size_t k = normalized_shape.size();
    check(k > 0 && shape.size() >= k &&
              std::equal(normalized_shape.begin(), normalized_shape.end(),
                         shape.end() - static_cast<std::ptrdiff_t>(k)),
          "layer_norm: expected input with shape [*, {}] (got {})",
          fmt::join(normalized_shape, ", "), shape_str(shape));
    for (const Tensor* p : {&weight, &bias}) {
        if (!p->defined()) continue;
        detail::check_same_dtype(input, *p, "layer_norm");
        check(p->shape() == normalized_shape,
              "layer_norm: expected weight and bias of shape {} (got {})",
              shape_str(normalized_shape), shape_str(p->shape()));
    }
    std::size_t n = 1;
    for (auto d : normalized_shape) n *= d;
    const std::size_t rows = n == 0 ? 0 : input.numel() / n;
    return detail::visit_floating(input, "layer_norm", [&]<class T>(xt::xarray<T>& xa) {
        const T* x = xa.data();
        const T* w = weight.defined() ? weight.data<T>().data() : nullptr;
        const T* b = bias.defined() ? bias.data<T>().data() : nullptr;
        auto out = detail::empty_array<T>(shape);
        auto xhat = detail::empty_array<T>(shape);  // saved for backward
        auto rstd = xt::xarray<T>::from_shape({rows});
        for (std::size_t r = 0; r < rows; ++r) {
            const T* xr = x + r * n;
            T* hr = xhat.data() + r * n;
            T* yr = out.data() + r * n;
            T mu = 0, var = 0;
            for (std::size_t i = 0; i < n; ++i) mu += xr[i];
            mu /= T(n);
            for (std::size_t i = 0; i < n; ++i) var += (xr[i] - mu) * (xr[i] - mu);
            var /= T(n);
            const T s = T(1) / std::sqrt(var + T(eps));
            rstd(r) = s;
            for (std::size_t i = 0; i < n; ++i) {
                hr[i] = (xr[i] - mu) * s;
                yr[i] = hr[i] * (w ? w[i] : T(1)) + (b ? b[i] : T(0));
            }
        }
        const bool need_x = input.requires_grad();
        const bool need_w = weight.defined() && weight.requires_grad();
        const bool need_b = bias.defined() && bias.requires_grad();
        return autograd::make_result(
            detail::wrap(std::move(out)), "LayerNormBackward", {input, weight, bias},
            [=, xhat = std::move(xhat), rstd = std::move(rstd),
             saved_w = weight.defined() ? weight.detach() : Tensor()](const Tensor& grad) {
                const T* g = grad.data<T>().data();
                const T* wv = saved_w.defined() ? saved_w.data<T>().data() : nullptr;
                Tensor gx, gw, gb;
                if (need_x) {
                    auto d = detail::empty_array<T>(shape);
                    std::vector<T> gh(n);
                    for (std::size_t r = 0; r < rows; ++r) {
                        const T* gr = g + r * n;
                        const T* hr = xhat.data() + r * n;
                        T mean_gh = 0, mean_ghx = 0;
                        for (std::size_t i = 0; i < n; ++i) {
                            gh[i] = gr[i] * (wv ? wv[i] : T(1));
                            mean_gh += gh[i];
                            mean_ghx += gh[i] * hr[i];
                        }
                        mean_gh /= T(n);
                        mean_ghx /= T(n);
                        T* dr = d.data() + r * n;
                        for (std::size_t i = 0; i < n; ++i)
                            dr[i] = rstd(r) * (gh[i] - mean_gh - hr[i] * mean_ghx);
                    }
                    gx = detail::wrap(std::move(d));
                }
                if (need_w || need_b) {
                    xt::xarray<T> dw = xt::zeros<T>(normalized_shape),
                                  db = xt::zeros<T>(normalized_shape);
                    for (std::size_t r = 0; r < rows; ++r) {
                        for (std::size_t i = 0; i < n; ++i) {
                            dw.data()[i] += g[r * n + i] * xhat.data()[r * n + i];
                            db.data()[i] += g[r * n + i];
                        }
                    }
                    if (need_w) gw = detail::wrap(std::move(dw));
                    if (need_b) gb = detail::wrap(std::move(db));
                }
                return autograd::Gradients{gx, gw, gb};
            });
    });
}

}  // namespace xg
