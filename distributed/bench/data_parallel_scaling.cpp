// data_parallel_scaling: steps/s of DistributedDataParallel at a fixed global
// batch, and what the gradient all-reduce costs, for the README's "Scaling out".
//
//   mpirun -np N data_parallel_scaling [--d-model 256] [--d-ff 1024] [--blocks 4]
//                                      [--batch 256] [--steps 30] [--bucket-mb 25]
//
// Model: Linear(d_model, d_model) then `blocks` residual FeedForward blocks
// (ReLU, no dropout); MSE on random data. Each rank runs batch / N rows per step.
// Rank 0 prints one line of key=value pairs.
#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include <fmt/format.h>
#include <xgrad/distributed.hpp>
#include <xgrad/xgrad.hpp>

using namespace xg;
namespace dist = xg::distributed;
using Clock = std::chrono::steady_clock;

struct Residual : nn::Module {
    std::shared_ptr<nn::Linear> input;
    std::vector<std::shared_ptr<nn::FeedForward>> blocks;
    Residual(std::size_t d, std::size_t f, std::size_t n) {
        input = register_module("input", std::make_shared<nn::Linear>(d, d));
        for (std::size_t i = 0; i < n; ++i)
            blocks.push_back(register_module(fmt::format("ffn{}", i),
                                             std::make_shared<nn::FeedForward>(d, f, 0.0)));
    }
    Tensor forward(const Tensor& x) override {
        Tensor h = (*input)(x);
        for (auto& b : blocks) h = h + (*b)(h);
        return h;
    }
};

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

int main(int argc, char** argv) {
    dist::Environment environment(argc, argv);
    std::map<std::string, double> o{{"--d-model", 256}, {"--d-ff", 1024}, {"--blocks", 4},
                                    {"--batch", 256},   {"--steps", 30},  {"--bucket-mb", 25}};
    for (int i = 1; i + 1 < argc; i += 2) o.at(argv[i]) = std::stod(argv[i + 1]);
    auto d = static_cast<std::size_t>(o["--d-model"]), f = static_cast<std::size_t>(o["--d-ff"]);
    int steps = static_cast<int>(o["--steps"]), rank = dist::rank(), world = dist::world_size();
    std::size_t local = static_cast<std::size_t>(o["--batch"]) / static_cast<std::size_t>(world);
    set_num_threads(1);

    manual_seed(0);
    auto model = std::make_shared<Residual>(d, f, static_cast<std::size_t>(o["--blocks"]));
    nn::DistributedDataParallel ddp(
        model, nn::DistributedDataParallelOptions().bucket_cap_mb(o["--bucket-mb"]));
    optim::SGD sgd(ddp.parameters(), optim::SGDOptions(1e-3));
    manual_seed(1 + static_cast<std::uint64_t>(rank));
    Tensor x = randn({local, d}), y = randn({local, d});
    std::size_t n_params = 0;
    for (const Tensor& p : ddp.parameters()) n_params += p.numel();

    // One step: through the wrapper (synchronised), or through the module alone
    // (the same local compute with no communication at all).
    auto step = [&](nn::Module& net) {
        Tensor loss = mse_loss(net(x), y);
        sgd.zero_grad();
        loss.backward();
        sgd.step();
    };
    auto time_steps = [&](nn::Module& net) {
        for (int s = 0; s < 3; ++s) step(net);  // warm up
        dist::barrier();
        auto start = Clock::now();
        for (int s = 0; s < steps; ++s) step(net);
        dist::barrier();
        return seconds_since(start) / steps;
    };
    // Alternate and keep the best of three: other processes share this machine.
    double synced = 1e9, local_only = 1e9;
    for (int round = 0; round < 3; ++round) {
        local_only = std::min(local_only, time_steps(*model));
        synced = std::min(synced, time_steps(ddp));
    }

    // The gradients' all-reduce on its own, blocking: the communication a step must hide.
    Tensor grads = zeros({n_params});
    double allreduce = 1e9;
    for (int round = 0; round < 3; ++round) {
        dist::barrier();
        auto start = Clock::now();
        for (int s = 0; s < steps; ++s) dist::all_reduce(grads);
        allreduce = std::min(allreduce, seconds_since(start) / steps);
    }

    if (rank == 0)
        fmt::print(
            "world={} global_batch={} local_batch={} params={} grad_mb={:.2f} "
            "step_ms={:.2f} steps_per_s={:.2f} local_step_ms={:.2f} allreduce_ms={:.2f}\n",
            world, local * static_cast<std::size_t>(world), local, n_params,
            static_cast<double>(n_params) * 4 / (1024 * 1024), synced * 1e3, 1 / synced,
            local_only * 1e3, allreduce * 1e3);
    return 0;
}
