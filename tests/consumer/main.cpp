// Builds against an installed or add_subdirectory'd xgrad using only the umbrella
// header, runs a forward and backward pass and checks the gradients by hand.
#include <cmath>
#include <cstdio>

#include <xgrad/xgrad.hpp>

int main() {
    // loss = sum((x @ w)^2) with x [1, 2], w [2, 1]: d loss / d w = 2 * (x @ w) * x^T.
    xg::Tensor x = xg::tensor(xt::xarray<float>({{1.f, 2.f}}));
    xt::xarray<float> w_values = {3.f, -1.f};
    w_values.reshape({2, 1});
    xg::Tensor w = xg::tensor(w_values, true);
    xg::Tensor loss = xg::sum(xg::pow(xg::matmul(x, w), 2.0));
    loss.backward();

    const xt::xarray<float>& g = w.grad().data<float>();
    const bool ok = loss.item<float>() == 1.f && w.grad().shape() == xg::Shape{2, 1} &&
                    std::abs(g(0, 0) - 2.f) < 1e-6f && std::abs(g(1, 0) - 4.f) < 1e-6f &&
                    loss.grad_fn_name() == "SumBackward";
    std::printf("xgrad consumer: loss %g, grad [%g, %g], grad_fn %s: %s\n", loss.item<float>(),
                g(0, 0), g(1, 0), loss.grad_fn_name().c_str(), ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
