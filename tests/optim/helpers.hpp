// Shared by the optimizer tests: the least-squares problem of
// reference/gen_optim.py in xgrad ops, and readers for parameter values.
#pragma once

#include <cstddef>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xarray.hpp>

#include "optim/reference/optim_reference.hpp"

namespace optim_test {

template <class T, std::size_t R, std::size_t C>
xg::Tensor matrix(const double (&values)[R][C], bool requires_grad = false) {
    auto a = xt::xarray<T>::from_shape({R, C});
    for (std::size_t i = 0; i < R; ++i) {
        for (std::size_t j = 0; j < C; ++j) a(i, j) = static_cast<T>(values[i][j]);
    }
    return xg::tensor(std::move(a), requires_grad);
}

template <class T, std::size_t N>
xg::Tensor vector(const double (&values)[N], bool requires_grad = false) {
    auto a = xt::xarray<T>::from_shape({N});
    for (std::size_t i = 0; i < N; ++i) a(i) = static_cast<T>(values[i]);
    return xg::tensor(std::move(a), requires_grad);
}

// The problem's data and fresh parameters w [3, 2], b [2] in dtype T.
template <class T>
struct Problem {
    xg::Tensor x = matrix<T>(optim_ref::x);
    xg::Tensor y = matrix<T>(optim_ref::y);
    xg::Tensor w = matrix<T>(optim_ref::w0, true);
    xg::Tensor b = vector<T>(optim_ref::b0, true);

    // loss = sum((x @ w + b - y)^2), then backward into w.grad and b.grad.
    void backward(const xg::Tensor& w_, const xg::Tensor& b_) const {
        xg::Tensor loss = xg::sum(xg::pow(xg::matmul(x, w_) + b_ - y, 2.0));
        loss.backward();
    }
    void backward() const { backward(w, b); }
};

// A leaf holding a copy of t's values.
inline xg::Tensor copy_param(const xg::Tensor& t) {
    xg::Tensor c = t.detach().clone();
    c.requires_grad_(true);
    return c;
}

// w (row-major) then b, as float64.
template <class T>
std::vector<double> flat_values(const xg::Tensor& w, const xg::Tensor& b) {
    std::vector<double> out;
    for (T v : w.data<T>()) out.push_back(static_cast<double>(v));
    for (T v : b.data<T>()) out.push_back(static_cast<double>(v));
    return out;
}

// Bitwise equality of two tensors' values (same dtype and shape).
inline bool identical(const xg::Tensor& a, const xg::Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    if (a.dtype() == xg::kFloat32) return a.data<float>() == b.data<float>();
    return a.data<double>() == b.data<double>();
}

}  // namespace optim_test
