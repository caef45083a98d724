// One TransformerEncoderLayer training step in xgrad: d_model 256, nhead 4,
// dim_feedforward 1024, batch 16, seq 128, dropout 0.1, [seq, batch, d_model]
// input (PyTorch's default layout), MSE loss, backward, Adam, zero_grad.
// torch_encoder_step.cpp runs the same step in libtorch; both print one line
// of key=value pairs (bench/compare_encoder.sh puts them side by side).
//
//   encoder_step [--threads N] [--steps N] [--warmup N]
#include <xgrad/xgrad.hpp>

#include "bench_common.hpp"

extern "C" void openblas_set_num_threads(int num_threads) __attribute__((weak));

int main(int argc, char** argv) {
    bench::EncoderConfig c = bench::parse_encoder(argc, argv);
    if (openblas_set_num_threads) openblas_set_num_threads(c.threads);
    xg::manual_seed(0);
    auto layer = std::make_shared<xg::nn::TransformerEncoderLayer>(
        std::size_t(c.d_model), std::size_t(c.nhead), std::size_t(c.d_ff), c.dropout);
    const xg::Shape shape{std::size_t(c.seq), std::size_t(c.batch), std::size_t(c.d_model)};
    xg::Tensor x = xg::randn(shape);
    xg::Tensor target = xg::randn(shape);
    xg::optim::Adam adam(layer->parameters(), xg::optim::AdamOptions(1e-4));
    layer->train();
    auto step = [&] {
        xg::Tensor loss = xg::mse_loss((*layer)(x), target);
        loss.backward();
        adam.step();
        adam.zero_grad();
    };
    double step_ms = bench::timed_steps(c, step);
    // operator new calls over three more steps, the caches warm (count_allocations.cpp).
    const long before = bench::allocations.load();
    for (int i = 0; i < 3; ++i) step();
    const double allocs = static_cast<double>(bench::allocations.load() - before) / 3;
    bench::report_encoder("xgrad", c, step_ms, allocs);
}
