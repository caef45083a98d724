// One FFN training step in xgrad: forward, MSE loss, backward, Adam, zero_grad;
// and forward-only inference (eval, NoGradGuard). Prints one key=value line.
//   ffn_step --size medium --variant swiglu --threads 2 --steps 20
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "bench_common.hpp"

namespace {

std::shared_ptr<xg::nn::FeedForward> make_ffn(const bench::Config& c) {
    auto d = static_cast<std::size_t>(c.d_model), f = static_cast<std::size_t>(c.d_ff);
    using FF = xg::nn::FeedForward;
    if (c.variant == "relu") return std::make_shared<FF>(d, f, c.dropout);
    if (c.variant == "gelu")
        return std::make_shared<FF>(d, f, c.dropout, std::make_shared<xg::nn::GELU>());
    if (c.variant == "silu")
        return std::make_shared<FF>(d, f, c.dropout, std::make_shared<xg::nn::SiLU>());
    if (c.variant == "swiglu") return FF::swiglu(d, f, c.dropout);
    if (c.variant == "geglu") return FF::geglu(d, f, c.dropout);
    if (c.variant == "reglu") return FF::reglu(d, f, c.dropout);
    std::fprintf(stderr, "unknown variant '%s'\n", c.variant.c_str());
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    bench::Config c = bench::parse(argc, argv);
    xg::set_num_threads(c.threads);
    xg::manual_seed(0);
    auto ffn = make_ffn(c);
    auto tokens = static_cast<std::size_t>(c.tokens), d = static_cast<std::size_t>(c.d_model);
    xg::Tensor x = xg::randn({tokens, d});
    if (c.input_grad) x.requires_grad_();
    xg::Tensor target = xg::randn({tokens, d});
    xg::optim::Adam adam(ffn->parameters(), xg::optim::AdamOptions(1e-4));

    auto step = [&] {
        xg::Tensor loss = xg::mse_loss((*ffn)(x), target);
        loss.backward();
        adam.step();
        adam.zero_grad();
        if (c.input_grad) x.mutable_grad() = xg::Tensor();
    };
    double allocs = 0, faults = 0;
    ffn->train();
    double step_ms = bench::timed(c, c.steps, step, &allocs, &faults);

    ffn->eval();
    double forward_ms = 0;
    {
        xg::NoGradGuard no_grad;
        forward_ms = bench::timed(c, c.steps, [&] { (*ffn)(x); });
    }
    bench::report("xgrad", c, step_ms, forward_ms, allocs, faults);
}
