// mlp_regression: a two-layer MLP built from raw tensors learns y = sin(x) on 64
// points with hand-written gradient descent. Exits non-zero unless the loss at
// least halves, so CTest checks that training works end to end.
#include <cmath>
#include <cstdio>

#include <xgrad/xgrad.hpp>

int main() {
    xg::manual_seed(0);
    const std::size_t n = 64, hidden = 16;
    const double lr = 0.05;
    const int steps = 2000;

    xt::xarray<float> xs = xt::linspace<float>(-3.f, 3.f, n);
    xs.reshape({n, 1});
    xg::Tensor x = xg::tensor(xs), y = xg::tensor(xt::xarray<float>(xt::sin(xs)));

    // [n, 1] -> relu([n, 1] @ W1 [1, 16] + b1) -> @ W2 [16, 1] + b2 -> [n, 1]
    xg::Tensor w1 = xg::randn({1, hidden}).requires_grad_();
    xg::Tensor b1 = xg::zeros({hidden}).requires_grad_();
    xg::Tensor w2 = (xg::randn({hidden, 1}) / std::sqrt(double(hidden))).requires_grad_();
    xg::Tensor b2 = xg::zeros({1}).requires_grad_();

    float first = 0.f, last = 0.f;
    for (int step = 0; step <= steps; ++step) {
        xg::Tensor h = xg::relu(xg::matmul(x, w1) + b1);
        xg::Tensor loss = xg::mse_loss(xg::matmul(h, w2) + b2, y);
        loss.backward();
        {
            xg::NoGradGuard no_grad;
            for (const xg::Tensor& p : {w1, b1, w2, b2}) {
                p.data<float>() -= float(lr) * p.grad().data<float>();
                p.mutable_grad() = xg::Tensor();  // zero_grad(set_to_none = true)
            }
        }
        last = loss.item<float>();
        if (step == 0) first = last;
        if (step % 200 == 0) std::printf("step %4d  loss %.5f\n", step, last);
    }

    const bool learned = last < 0.5f * first;
    std::printf("loss %.5f -> %.5f: %s\n", first, last,
                learned ? "fell below half" : "did NOT fall below half");
    return learned ? 0 : 1;
}
