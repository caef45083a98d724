// One FFN training step in xgrad: forward, MSE loss, backward, Adam, zero_grad;
// and forward-only inference (eval, NoGradGuard). Prints one key=value line.
//   ffn_step --size medium --variant swiglu --threads 2 --steps 20
//   ffn_step --size tiny --steps 100000 --phases 1   # and a line of each phase's median
#include <array>
#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "bench_common.hpp"

namespace {

// Takes `--phases N` out of argv (bench::parse reads the rest).
bool take_phases_flag(int& argc, char** argv) {
    bool phases = false;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--phases" && i + 1 < argc)
            phases = std::string(argv[++i]) != "0";
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    return phases;
}

// The training step's phases timed one by one (medians over the steps, in µs),
// and the training-mode forward again without a graph: the difference is what
// recording the graph costs. Each timer read adds its own ~20 ns.
template <class Step>
void report_phases(const bench::Config& c, Step& phase_step) {
    const char* names[] = {"forward", "loss", "backward", "step", "zero_grad", "forward_no_graph"};
    std::vector<std::vector<double>> times(6);
    for (int i = 0; i < c.warmup + c.steps; ++i) {
        std::array<bench::Clock::time_point, 7> at{};
        phase_step(at);
        if (i < c.warmup) continue;
        for (std::size_t k = 0; k < 6; ++k)
            times[k].push_back(
                std::chrono::duration<double, std::micro>(at[k + 1] - at[k]).count());
    }
    std::printf("phases_us");
    for (std::size_t k = 0; k < 6; ++k) std::printf(" %s=%.2f", names[k], bench::median(times[k]));
    std::printf("\n");
}

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
    const bool phases = take_phases_flag(argc, argv);
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
    auto phase_step = [&](std::array<bench::Clock::time_point, 7>& at) {
        at[0] = bench::Clock::now();
        xg::Tensor y = (*ffn)(x);
        at[1] = bench::Clock::now();
        xg::Tensor loss = xg::mse_loss(y, target);
        at[2] = bench::Clock::now();
        loss.backward();
        at[3] = bench::Clock::now();
        adam.step();
        at[4] = bench::Clock::now();
        adam.zero_grad();
        if (c.input_grad) x.mutable_grad() = xg::Tensor();
        at[5] = bench::Clock::now();
        {
            xg::NoGradGuard no_graph;
            (*ffn)(x);
        }
        at[6] = bench::Clock::now();
    };
    if (phases) report_phases(c, phase_step);

    ffn->eval();
    double forward_ms = 0;
    {
        xg::NoGradGuard no_grad;
        forward_ms = bench::timed(c, c.steps, [&] { (*ffn)(x); });
    }
    bench::report("xgrad", c, step_ms, forward_ms, allocs, faults);
}
