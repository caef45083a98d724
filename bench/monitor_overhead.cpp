// What a GradientMonitor costs a training run: bench_common's FFN step (forward,
// MSE loss, backward, Adam, zero_grad; the medium size by default) plain, and
// watched by a monitor sampling every 10th step (begin_step() before the
// forward, step() around Adam). Rounds of --steps steps (a multiple of --every,
// so each watched round samples the same share) alternate between the two,
// starting with each in turn, so drift in the machine's speed falls on both.
// The overhead is (median sampled step - median unsampled step) / (every x
// median unsampled step), from the watched rounds' per-step times: a VM whose
// speed drifts by 10-20 % between rounds hides a 5 % cost in whole-round
// ratios (also printed, as round_overhead_pct: the median over rounds of
// watched / plain - 1). Unsampled steps run no monitor code but a counter. Prints one key=value
// line, and exits 1 when the overhead exceeds the budget (5 %).
//   monitor_overhead [--size medium] [--threads 2] [--steps 20] [--rounds 5] [--every 10]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <xgrad/inspect/monitor.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "bench_common.hpp"

namespace {

constexpr double kBudgetPct = 5.0;

struct Extra {
    int rounds = 5;
    std::size_t every = 10;
    bool activations = true;  // --activations 0: parameters only, no module hooks
};

// Takes this program's own flags out of argv; bench::parse reads the rest, after
// defaults that make the medium step the one measured (later flags win).
std::vector<char*> split_flags(int argc, char** argv, Extra& extra) {
    static char defaults[][16] = {"--size", "medium", "--steps", "20", "--warmup", "2"};
    std::vector<char*> rest = {argv[0]};
    for (auto& flag : defaults) rest.push_back(flag);
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if ((flag == "--rounds" || flag == "--every" || flag == "--activations") && i + 1 < argc) {
            const long value = std::stol(argv[++i]);
            if (flag == "--rounds") extra.rounds = static_cast<int>(value);
            if (flag == "--every") extra.every = static_cast<std::size_t>(value);
            if (flag == "--activations") extra.activations = value != 0;
        } else {
            rest.push_back(argv[i]);
        }
    }
    return rest;
}

}  // namespace

int main(int argc, char** argv) {
    Extra extra;
    std::vector<char*> args = split_flags(argc, argv, extra);
    bench::Config c = bench::parse(static_cast<int>(args.size()), args.data());
    if (extra.rounds < 1 || extra.every < 1 || c.steps % static_cast<int>(extra.every) != 0) {
        std::fprintf(stderr,
                     "monitor_overhead: expected --rounds >= 1 and --steps a multiple of "
                     "--every >= 1\n");
        return 2;
    }
    xg::set_num_threads(c.threads);
    xg::manual_seed(0);
    auto d = static_cast<std::size_t>(c.d_model), f = static_cast<std::size_t>(c.d_ff);
    auto ffn = std::make_shared<xg::nn::FeedForward>(d, f, c.dropout);
    const auto tokens = static_cast<std::size_t>(c.tokens);
    xg::Tensor x = xg::randn({tokens, d});
    if (c.input_grad) x.requires_grad_();  // as ffn_step: a block inside a network
    const xg::Tensor target = xg::randn({tokens, d});
    xg::optim::Adam adam(ffn->parameters(), xg::optim::AdamOptions(1e-4));
    xg::inspect::GradientMonitor monitor(*ffn,
                                         {.every = extra.every, .activations = extra.activations});

    auto step = [&](bool watch) {
        if (watch) monitor.begin_step();
        const xg::Tensor loss = xg::mse_loss((*ffn)(x), target);
        loss.backward();
        if (watch)
            monitor.step(adam, loss);
        else
            adam.step();
        adam.zero_grad();
        if (c.input_grad) x.mutable_grad() = xg::Tensor();
    };
    // Each watched step's time, by whether the monitor sampled it: the VM's
    // speed drifts between rounds, but a sampled step and the unsampled steps
    // around it see the same machine.
    std::vector<double> sampled_ms, unsampled_ms;
    auto round_ms = [&](bool watch) {  // ms per step
        auto start = bench::Clock::now();
        for (int i = 0; i < c.steps; ++i) {
            const auto step_start = bench::Clock::now();
            const bool sampled = watch && monitor.sampled();
            step(watch);
            if (watch) (sampled ? sampled_ms : unsampled_ms).push_back(bench::ms_since(step_start));
        }
        return bench::ms_since(start) / c.steps;
    };

    for (int i = 0; i < c.warmup; ++i) step(false), step(true);
    std::vector<double> plain, watched, overhead;
    for (int r = 0; r < extra.rounds; ++r) {
        const bool watched_first = r % 2 == 1;
        if (watched_first) watched.push_back(round_ms(true));
        plain.push_back(round_ms(false));
        if (!watched_first) watched.push_back(round_ms(true));
        overhead.push_back(100.0 * (watched.back() / plain.back() - 1.0));
    }
    // The cost of one sampled step over an unsampled one, spread over `every` steps.
    const double extra_ms = bench::median(sampled_ms) - bench::median(unsampled_ms);
    const double pct =
        100.0 * extra_ms / (static_cast<double>(extra.every) * bench::median(unsampled_ms));
    std::printf(
        "impl=xgrad bench=monitor_overhead size=%s d_model=%ld d_ff=%ld tokens=%ld threads=%d "
        "steps=%d rounds=%d every=%zu plain_step_ms=%.3f watched_step_ms=%.3f "
        "round_overhead_pct=%.2f sampled_step_ms=%.3f unsampled_step_ms=%.3f overhead_pct=%.2f "
        "budget_pct=%.1f sampled=%zu peak_rss_mib=%.1f\n",
        c.size.c_str(), c.d_model, c.d_ff, c.tokens, c.threads, c.steps, extra.rounds, extra.every,
        bench::median(plain), bench::median(watched), bench::median(overhead),
        bench::median(sampled_ms), bench::median(unsampled_ms), pct, kBudgetPct,
        monitor.records().size(), bench::peak_rss_mib());
    return pct <= kBudgetPct ? 0 : 1;
}
