// Soak test: trains a small FeedForward for many steps and reports the resident
// set size (RSS) every 10,000 steps. A framework that leaks a graph, a hook or
// an optimizer buffer per step shows it here as steady growth.
//
//   build/bench/soak [steps = 200000] [report every = 10000]
//
// Exits 1 when RSS grew by more than 1 MiB between the first report after
// warm-up (step 20,000) and the last one.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <xgrad/xgrad.hpp>

namespace {

// Resident set size in KiB, from /proc/self/status (Linux).
long rss_kib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

}  // namespace

int main(int argc, char** argv) {
    long steps = argc > 1 ? std::atol(argv[1]) : 200000;
    long every = argc > 2 ? std::atol(argv[2]) : 10000;
    long warm_up = 2 * every;

    xg::manual_seed(0);
    auto model = xg::nn::FeedForward::swiglu(16, 64, 0.1);  // dropout draws every step
    auto params = model->parameters();
    xg::optim::AdamW optimizer(params, xg::optim::AdamWOptions(1e-3));
    xg::Tensor x = xg::randn({32, 16});
    xg::Tensor y = xg::tanh(xg::matmul(x, xg::randn({16, 16}) * 0.25));

    std::printf("%10s %12s %12s %10s\n", "step", "rss_kib", "loss", "seconds");
    auto start = std::chrono::steady_clock::now();
    long rss_after_warm_up = -1, rss_last = -1;
    for (long step = 1; step <= steps; ++step) {
        xg::Tensor loss = xg::mse_loss((*model)(x), y);
        optimizer.zero_grad();
        loss.backward();
        xg::nn::utils::clip_grad_norm_(params, 1.0);
        optimizer.step();
        if (step % every == 0) {
            rss_last = rss_kib();
            if (step == warm_up) rss_after_warm_up = rss_last;
            double seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            std::printf("%10ld %12ld %12.6f %10.1f\n", step, rss_last, loss.item<float>(), seconds);
            std::fflush(stdout);
        }
    }
    if (rss_after_warm_up < 0) return 0;  // too short a run to judge
    long growth = rss_last - rss_after_warm_up;
    std::printf("RSS growth after warm-up (step %ld): %ld KiB (%.3f MiB)\n", warm_up, growth,
                growth / 1024.0);
    return growth > 1024 ? 1 : 0;
}
