// Reductions and the dim-wise normalisations (softmax, log_softmax).
#include <algorithm>
#include <cmath>
#include <limits>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xreducer.hpp>

#include "buffer_cache.hpp"
#include "internal.hpp"
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
    return axes;
}

// `shape` with the reduced axes kept as size 1.
Shape kept_shape(Shape shape, const std::vector<std::size_t>& axes) {
    for (auto axis : axes) shape[axis] = 1;
    return shape;
}

// sum or mean over `axes`; the gradient spreads g (times `scale`) back over them.
Tensor reduce_sum(const Tensor& x, const std::vector<std::size_t>& axes, bool keepdim, bool mean,
                  const char* op) {
    Shape in_shape = x.shape();
    Shape keep = kept_shape(in_shape, axes);
    Shape out_shape;
    for (std::size_t i = 0; i < in_shape.size(); ++i) {
        bool reduced = std::find(axes.begin(), axes.end(), i) != axes.end();
        if (!reduced || keepdim) out_shape.push_back(keep[i]);
    }
    std::size_t count = 1;
    for (auto axis : axes) count *= in_shape[axis];
    double scale = mean ? 1.0 / static_cast<double>(count) : 1.0;
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        std::vector<bool> reduced(in_shape.size(), false);
        for (auto axis : axes) reduced[axis] = true;
        xt::xarray<T> out = detail::sum_axes(a, reduced);
        if (mean) out *= T(scale);
        out.reshape(out_shape);
        return make_result(wrap(std::move(out)), mean ? "MeanBackward" : "SumBackward", {x},
                           [=](const Tensor& g) {
                               xt::xarray<T> gk = g.data<T>();
                               gk.reshape(keep);
                               xt::xarray<T> spread = xt::broadcast(gk * T(scale), in_shape);
                               return autograd::Gradients{wrap(std::move(spread))};
                           });
    });
}

// Shared shape of softmax and log_softmax: out = f(x) along dim, with the
// rule grad(y, g, split) written as raw loops over [outer, size, inner].
template <bool Log>
Tensor softmax_impl(const Tensor& x, int dim, const char* op, const char* node) {
    Shape shape = x.shape();
    std::size_t axis = detail::normalize_dim(dim, shape.size(), op);
    auto s = detail::split_at(shape, shape.empty() ? 0 : axis);
    if (shape.empty()) s = {};
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        auto out = xt::xarray<T>::from_shape(a.shape());
        const T* in = a.data();
        T* y = out.data();
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t i = 0; i < s.inner; ++i) {
                std::size_t base = o * s.size * s.inner + i;
                T top = -std::numeric_limits<T>::infinity();
                for (std::size_t j = 0; j < s.size; ++j)
                    top = std::max(top, in[base + j * s.inner]);
                T total = 0;
                for (std::size_t j = 0; j < s.size; ++j)
                    total += std::exp(in[base + j * s.inner] - top);
                T log_total = std::log(total);
                for (std::size_t j = 0; j < s.size; ++j) {
                    T shifted = in[base + j * s.inner] - top - log_total;
                    y[base + j * s.inner] = Log ? shifted : std::exp(shifted);
                }
            }
        }
        Tensor result = wrap(std::move(out));
        return make_result(result, node, {x}, [s, saved = result.detach()](const Tensor& grad) {
            auto gx = xt::xarray<T>::from_shape(grad.shape());
            const T* g = grad.data<T>().data();
            const T* y = saved.data<T>().data();
            T* d = gx.data();
            for (std::size_t o = 0; o < s.outer; ++o) {
                for (std::size_t i = 0; i < s.inner; ++i) {
                    std::size_t base = o * s.size * s.inner + i;
                    T dot = 0;  // softmax: sum(g * y); log_softmax: sum(g)
                    for (std::size_t j = 0; j < s.size; ++j) {
                        std::size_t at = base + j * s.inner;
                        dot += Log ? g[at] : g[at] * y[at];
                    }
                    for (std::size_t j = 0; j < s.size; ++j) {
                        std::size_t at = base + j * s.inner;
                        d[at] = Log ? g[at] - std::exp(y[at]) * dot : y[at] * (g[at] - dot);
                    }
                }
            }
            return autograd::Gradients{wrap(std::move(gx))};
        });
    });
}

}  // namespace

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

}  // namespace xg
