// The TransformerEncoderLayer step of encoder_step.cpp in libtorch 1.13, the
// yardstick: same sizes, layout ([seq, batch, d_model]), dropout, loss and Adam.
#include <torch/torch.h>

#include "bench_common.hpp"

extern "C" void openblas_set_num_threads(int num_threads) __attribute__((weak));

int main(int argc, char** argv) {
    bench::EncoderConfig c = bench::parse_encoder(argc, argv);
    torch::set_num_threads(c.threads);
    if (openblas_set_num_threads) openblas_set_num_threads(c.threads);
    torch::manual_seed(0);
    torch::nn::TransformerEncoderLayer layer(
        torch::nn::TransformerEncoderLayerOptions(c.d_model, c.nhead)
            .dim_feedforward(c.d_ff)
            .dropout(c.dropout));
    torch::Tensor x = torch::randn({c.seq, c.batch, c.d_model});
    torch::Tensor target = torch::randn({c.seq, c.batch, c.d_model});
    torch::optim::Adam adam(layer->parameters(), torch::optim::AdamOptions(1e-4));
    layer->train();
    auto step = [&] {
        torch::Tensor loss = torch::mse_loss(layer->forward(x), target);
        loss.backward();
        adam.step();
        adam.zero_grad();
    };
    double step_ms = bench::timed_steps(c, step);
    bench::report_encoder("libtorch", c, step_ms);
}
