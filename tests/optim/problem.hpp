// The least-squares problem of tests/optim/reference/gen_optim.py, shared by
// the optimizer and scheduler tests.
#pragma once

#include "helpers.hpp"
#include "optim/reference/optim_reference.hpp"

namespace test {

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

}  // namespace test
