// The same FFN step in libtorch, the yardstick: forward, MSE loss, backward,
// Adam, zero_grad (set to none, as xgrad's default). Same flags and output as ffn_step.
// allocs_per_step counts C++ operator new only: libtorch mallocs tensor data directly.
#include <torch/torch.h>

#include "bench_common.hpp"

extern "C" void openblas_set_num_threads(int num_threads) __attribute__((weak));

namespace {

struct FfnImpl : torch::nn::Module {
    FfnImpl(const bench::Config& c) : c(c) {
        bool gate = bench::gated(c);
        layer1 = register_module(
            "layer1", torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.d_ff).bias(!gate)));
        layer2 = register_module(
            "layer2", torch::nn::Linear(torch::nn::LinearOptions(c.d_ff, c.d_model).bias(!gate)));
        if (gate)
            linear_v = register_module(
                "linear_v",
                torch::nn::Linear(torch::nn::LinearOptions(c.d_model, c.d_ff).bias(false)));
    }
    torch::Tensor act(const torch::Tensor& t) {
        if (c.variant == "relu" || c.variant == "reglu") return torch::relu(t);
        if (c.variant == "gelu" || c.variant == "geglu") return torch::gelu(t);
        return torch::silu(t);
    }
    torch::Tensor forward(const torch::Tensor& x) {
        torch::Tensor g = act(layer1(x));
        if (linear_v) g = g * linear_v(x);
        return layer2(torch::dropout(g, c.dropout, is_training()));
    }
    bench::Config c;
    torch::nn::Linear layer1{nullptr}, layer2{nullptr}, linear_v{nullptr};
};
TORCH_MODULE(Ffn);

}  // namespace

int main(int argc, char** argv) {
    bench::Config c = bench::parse(argc, argv);
    torch::set_num_threads(c.threads);
    if (openblas_set_num_threads) openblas_set_num_threads(c.threads);
    torch::manual_seed(0);
    Ffn ffn(c);
    torch::Tensor x = torch::randn({c.tokens, c.d_model}).requires_grad_(c.input_grad);
    torch::Tensor target = torch::randn({c.tokens, c.d_model});
    torch::optim::Adam adam(ffn->parameters(), torch::optim::AdamOptions(1e-4));

    auto step = [&] {
        torch::Tensor loss = torch::mse_loss(ffn->forward(x), target);
        loss.backward();
        adam.step();
        for (auto& p : ffn->parameters()) p.mutable_grad().reset();
        if (c.input_grad) x.mutable_grad().reset();
    };
    double allocs = 0, faults = 0;
    ffn->train();
    double step_ms = bench::timed(c, c.steps, step, &allocs, &faults);

    ffn->eval();
    double forward_ms = 0;
    {
        torch::NoGradGuard no_grad;
        forward_ms = bench::timed(c, c.steps, [&] { ffn->forward(x); });
    }
    bench::report("libtorch", c, step_ms, forward_ms, allocs, faults);
}
