// Gradient clipping by total norm and by value, in place on each .grad.
// The norm follows torch.nn.utils.clip_grad_norm_: the norm of the per-tensor
// norms, accumulated here in double whatever the gradients' dtype.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "xgrad/error.hpp"
#include "xgrad/nn/utils.hpp"

namespace xg::nn::utils {

namespace {

// Calls f(pointer, size) on the gradient's values as float or double.
template <class F>
void with_grad_values(const Tensor& grad, F&& f) {
    if (grad.dtype() == kFloat32) {
        auto& a = grad.data<float>();
        f(a.data(), a.size());
    } else if (grad.dtype() == kFloat64) {
        auto& a = grad.data<double>();
        f(a.data(), a.size());
    } else {
        throw Error(fmt::format("clip_grad: expected floating-point gradients (got {})",
                                dtype_name(grad.dtype())));
    }
}

template <class T>
double tensor_norm(const T* g, std::size_t n, double p) {
    double acc = 0.0;
    if (std::isinf(p)) {
        for (std::size_t i = 0; i < n; ++i)
            acc = std::max(acc, std::abs(static_cast<double>(g[i])));
        return acc;
    }
    if (p == 2.0) {
        for (std::size_t i = 0; i < n; ++i) acc += static_cast<double>(g[i]) * g[i];
        return std::sqrt(acc);
    }
    if (p == 1.0) {
        for (std::size_t i = 0; i < n; ++i) acc += std::abs(static_cast<double>(g[i]));
        return acc;
    }
    for (std::size_t i = 0; i < n; ++i) acc += std::pow(std::abs(static_cast<double>(g[i])), p);
    return std::pow(acc, 1.0 / p);
}

double combine_norms(const std::vector<double>& norms, double p) {
    if (std::isinf(p)) return *std::max_element(norms.begin(), norms.end());
    double acc = 0.0;
    for (double n : norms) acc += std::pow(n, p);
    return std::pow(acc, 1.0 / p);
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
    check(norm_type > 0.0, "clip_grad_norm_: expected norm_type > 0 or inf (got {})", norm_type);
    std::vector<Tensor> grads;
    for (const Tensor& p : parameters) {
        if (Tensor g = p.grad(); g.defined()) grads.push_back(g);
    }
    if (grads.empty()) return 0.0;

    std::vector<double> norms;
    for (const Tensor& g : grads) {
        with_grad_values(g, [&](const auto* values, std::size_t n) {
            norms.push_back(tensor_norm(values, n, norm_type));
        });
    }
    const double total_norm = combine_norms(norms, norm_type);
    check(!error_if_nonfinite || std::isfinite(total_norm),
          "clip_grad_norm_: expected a finite total norm of order {} (got {})", norm_type,
          total_norm);

    const double clip_coef = std::min(max_norm / (total_norm + 1e-6), 1.0);
    for (const Tensor& g : grads) {
        with_grad_values(g, [&](auto* values, std::size_t n) {
            using T = std::remove_pointer_t<decltype(values)>;
            const T coef = static_cast<T>(clip_coef);
            for (std::size_t i = 0; i < n; ++i) values[i] *= coef;
        });
    }
    return total_norm;
}

double clip_grad_norm_(const Tensor& parameter, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
    return clip_grad_norm_(std::vector<Tensor>{parameter}, max_norm, norm_type, error_if_nonfinite);
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
    check(clip_value >= 0.0, "clip_grad_value_: expected clip_value >= 0 (got {})", clip_value);
    for (const Tensor& p : parameters) {
        Tensor g = p.grad();
        if (!g.defined()) continue;
        with_grad_values(g, [&](auto* values, std::size_t n) {
            using T = std::remove_pointer_t<decltype(values)>;
            const T hi = static_cast<T>(clip_value), lo = -hi;
            for (std::size_t i = 0; i < n; ++i) values[i] = std::clamp(values[i], lo, hi);
        });
    }
}

void clip_grad_value_(const Tensor& parameter, double clip_value) {
    clip_grad_value_(std::vector<Tensor>{parameter}, clip_value);
}

}  // namespace xg::nn::utils
