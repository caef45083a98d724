// Activation checkpointing's trade on a stack of residual FeedForward blocks
// (pre-norm, x + ffn(norm(x)), as examples/train_ffn.cpp stacks them): one
// training step (forward, MSE loss, backward, Adam, zero_grad) repeated, with
// every block checkpointed (--checkpoint) or not (--plain). One mode per
// process, so that getrusage's peak RSS is the mode's own. Prints one
// key=value line; bench/checkpoint.sh runs both modes side by side.
//   checkpoint_step --checkpoint [--blocks 8] [--d-model 512] [--d-ff 2048]
//                   [--tokens 2048] [--threads 2] [--steps 8] [--warmup 2]
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/activation_checkpoint.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "bench_common.hpp"

namespace {

struct Options {
    std::string mode;  // "plain" or "checkpoint"
    long blocks = 8, d_model = 512, d_ff = 2048, tokens = 2048;
    int threads = 2, steps = 8, warmup = 2;
    double dropout = 0.1;
};

[[noreturn]] void usage(const char* program, int status) {
    std::fprintf(stderr,
                 "usage: %s --plain|--checkpoint [--blocks N] [--d-model N] [--d-ff N] "
                 "[--tokens N]\n  [--threads N] [--steps N] [--warmup N] [--dropout P]\n",
                 program);
    std::exit(status);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--plain" || flag == "--checkpoint") {
            o.mode = flag.substr(2);
            continue;
        }
        if (flag == "--help" || flag == "-h") usage(argv[0], 0);
        if (i + 1 >= argc) usage(argv[0], 2);
        const char* value = argv[++i];
        if (flag == "--blocks")
            o.blocks = std::atol(value);
        else if (flag == "--d-model")
            o.d_model = std::atol(value);
        else if (flag == "--d-ff")
            o.d_ff = std::atol(value);
        else if (flag == "--tokens")
            o.tokens = std::atol(value);
        else if (flag == "--threads")
            o.threads = std::atoi(value);
        else if (flag == "--steps")
            o.steps = std::atoi(value);
        else if (flag == "--warmup")
            o.warmup = std::atoi(value);
        else if (flag == "--dropout")
            o.dropout = std::atof(value);
        else
            usage(argv[0], 2);
    }
    if (o.mode.empty()) usage(argv[0], 2);  // no default: each run names its mode
    return o;
}

// The residual stack; forward checkpoints every block or none.
struct Stack {
    std::vector<std::shared_ptr<xg::nn::LayerNorm>> norms;
    std::vector<std::shared_ptr<xg::nn::FeedForward>> ffns;

    explicit Stack(const Options& o) {
        const auto d = static_cast<std::size_t>(o.d_model), f = static_cast<std::size_t>(o.d_ff);
        for (long i = 0; i < o.blocks; ++i) {
            norms.push_back(std::make_shared<xg::nn::LayerNorm>(xg::Shape{d}));
            ffns.push_back(std::make_shared<xg::nn::FeedForward>(d, f, o.dropout));
        }
    }
    std::vector<xg::Tensor> parameters() const {
        std::vector<xg::Tensor> out;
        for (std::size_t i = 0; i < ffns.size(); ++i) {
            for (const auto& p : norms[i]->parameters()) out.push_back(p);
            for (const auto& p : ffns[i]->parameters()) out.push_back(p);
        }
        return out;
    }
    xg::Tensor block(std::size_t i, const xg::Tensor& h) { return h + (*ffns[i])((*norms[i])(h)); }
    xg::Tensor forward(xg::Tensor h, bool checkpointed) {
        for (std::size_t i = 0; i < ffns.size(); ++i) {
            if (checkpointed) {
                h = xg::utils::checkpoint(
                    [this, i](const std::vector<xg::Tensor>& in) { return block(i, in[0]); }, {h});
            } else {
                h = block(i, h);
            }
        }
        return h;
    }
};

// MiB that no checkpointing can save: the parameters, their gradients and
// Adam's two moments, four floats per parameter.
double state_mib(const std::vector<xg::Tensor>& params) {
    double bytes = 0;
    for (const auto& p : params) bytes += 4.0 * static_cast<double>(p.numel()) * sizeof(float);
    return bytes / (1024.0 * 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    const bool checkpointed = o.mode == "checkpoint";
    xg::set_num_threads(o.threads);
    xg::manual_seed(0);
    Stack net(o);
    const auto tokens = static_cast<std::size_t>(o.tokens), d = static_cast<std::size_t>(o.d_model);
    xg::Tensor x = xg::randn({tokens, d});  // data: no gradient, as the first block's input
    xg::Tensor target = xg::randn({tokens, d});
    const std::vector<xg::Tensor> params = net.parameters();
    xg::optim::Adam adam(params, xg::optim::AdamOptions(1e-4));

    float loss_value = 0;
    auto step = [&] {
        xg::Tensor loss = xg::mse_loss(net.forward(x, checkpointed), target);
        loss.backward();
        adam.step();
        adam.zero_grad();
        loss_value = loss.item<float>();
    };
    bench::Config timing;
    timing.warmup = o.warmup;
    double allocs = 0, faults = 0;
    const double step_ms = bench::timed(timing, o.steps, step, &allocs, &faults);
    // Both modes compute the same values, so the last loss must agree to the bit.
    std::printf(
        "impl=xgrad mode=%s blocks=%ld d_model=%ld d_ff=%ld tokens=%ld threads=%d steps=%d "
        "step_ms=%.3f peak_rss_mib=%.1f state_mib=%.1f allocs_per_step=%.1f "
        "faults_per_step=%.1f loss=%.9g\n",
        o.mode.c_str(), o.blocks, o.d_model, o.d_ff, o.tokens, o.threads, o.steps, step_ms,
        bench::peak_rss_mib(), state_mib(params), allocs, faults, static_cast<double>(loss_value));
}
