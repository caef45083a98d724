// var and logsumexp over a tensor's trailing dims, one node each: the rows are
// contiguous, so forward is one or two passes per row and backward one pass,
// where the composition of mean, sub, square and sum (or max, exp, sum, log)
// makes five to seven passes and as many temporaries. reduce.cpp takes this
// path for floating tensors whose reduced dims are the trailing ones. Under
// create_graph each backward is PyTorch's formula written with ops instead.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg::detail {

namespace {

// The rows of x as [rows] values, one per row, for the caller to reshape.
template <class T>
xt::xarray<T> per_row(std::size_t rows) {
    return empty_array<T>(Shape{rows});
}

std::vector<std::int64_t> sizes_of(const Shape& shape) { return {shape.begin(), shape.end()}; }

// var's gradient with ops, for double backward: PyTorch's var_backward,
// 2 / divisor * g * (x - mean(x)) row by row, so x's own mean is differentiated
// too. x is [..., trailing dims] and g holds one value per row.
Tensor var_grad_op(const Tensor& x, const Tensor& g, std::size_t n, double divisor) {
    const Tensor rows = reshape(x, {-1, static_cast<std::int64_t>(n)});
    const Tensor d = (2.0 / divisor) * reshape(g, {-1, 1}) * (rows - mean(rows, {1}, true));
    return reshape(d, sizes_of(x.shape()));
}

// logsumexp's gradient with ops: PyTorch's logsumexp_backward, g * exp(x - out),
// with out the node's own output, so its dependence on x is differentiated too.
Tensor logsumexp_grad_op(const Tensor& x, const Tensor& out, const Tensor& g, std::size_t n) {
    const Tensor rows = reshape(x, {-1, static_cast<std::int64_t>(n)});
    const Tensor d = reshape(g, {-1, 1}) * exp(rows - reshape(out, {-1, 1}));
    return reshape(d, sizes_of(x.shape()));
}

}  // namespace

// var = sum((x - mean)^2) / max(n - correction, 0), the sums in double as
// PyTorch's CPU kernel accumulates float; d/dx = g * 2 (x - mean) / (n - correction).
Tensor var_rows(const Tensor& x, std::size_t n, double correction) {
    return visit_floating(x, "var", [&]<class T>(xt::xarray<T>& a) {
        const std::size_t rows = a.size() / n;
        const double divisor = std::max(static_cast<double>(n) - correction, 0.0);
        auto out = per_row<T>(rows);
        std::vector<double> means(rows);
        parallel_rows(rows, n, [&](std::size_t r) {
            const T* row = a.data() + r * n;
            const double m =
                lane_sum<double>(n, [row](std::size_t j) { return double(row[j]); }) / double(n);
            const double squares = lane_sum<double>(n, [row, m](std::size_t j) {
                const double d = double(row[j]) - m;
                return d * d;
            });
            means[r] = m;
            out.data()[r] = static_cast<T>(squares / divisor);
        });
        return autograd::make_result(
            wrap(std::move(out)), "VarBackward", {x},
            [saved = x.detach(), means = std::move(means), n, divisor](const Tensor& g) {
                if (autograd::creating_graph())
                    return autograd::Gradients{
                        var_grad_op(autograd::saved_input(0, saved), g, n, divisor)};
                auto grad = empty_array<T>(saved.shape());
                const T *xv = saved.data<T>().data(), *gv = g.data<T>().data();
                parallel_rows(means.size(), n, [&](std::size_t r) {
                    const T scale = static_cast<T>(2.0 / divisor) * gv[r];
                    const T m = static_cast<T>(means[r]);
                    for (std::size_t j = 0; j < n; ++j)
                        grad.data()[r * n + j] = scale * (xv[r * n + j] - m);
                });
                return autograd::Gradients{wrap(std::move(grad))};
            },
            autograd::DoubleBackward::Supported);
    });
}

// log(sum(exp(x - m))) + m with m the row's max (0 when infinite, as PyTorch,
// so a row of -inf gives -inf); d/dx = g * exp(x - out), PyTorch's rule.
Tensor logsumexp_rows(const Tensor& x, std::size_t n) {
    return visit_floating(x, "logsumexp", [&]<class T>(xt::xarray<T>& a) {
        const std::size_t rows = a.size() / n;
        auto out = per_row<T>(rows);
        parallel_rows(rows, n, [&](std::size_t r) {
            const T* row = a.data() + r * n;
            T m = row_max(row, n);
            if (std::isinf(m)) m = T(0);
            const T total =
                lane_sum<T>(n, [row, m](std::size_t j) { return fast_exp(row[j] - m); });
            out.data()[r] = std::log(total) + m;
        });
        Tensor result = wrap(std::move(out));
        return autograd::make_result(
            result, "LogsumexpBackward", {x},
            [saved = x.detach(), out = result.detach(), n](const Tensor& g) {
                if (autograd::creating_graph())
                    return autograd::Gradients{logsumexp_grad_op(
                        autograd::saved_input(0, saved), autograd::saved_output(out), g, n)};
                auto grad = empty_array<T>(saved.shape());
                const T *xv = saved.data<T>().data(), *gv = g.data<T>().data();
                const T* ov = out.data<T>().data();
                parallel_rows(out.numel(), n, [&](std::size_t r) {
                    for (std::size_t j = 0; j < n; ++j)
                        grad.data()[r * n + j] = gv[r] * fast_exp(xv[r * n + j] - ov[r]);
                });
                return autograd::Gradients{wrap(std::move(grad))};
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg::detail
