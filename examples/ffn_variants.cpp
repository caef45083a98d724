// ffn_variants: the FeedForward block and its GLU variants (Shazeer 2020) side by side.
//
// For one d_model / d_ff it builds each variant, prints it like PyTorch would, counts
// its parameters, runs a batch through it, and makes a Monte Carlo dropout prediction:
// in eval mode with MC dropout enabled, 100 stochastic passes give a mean and a spread.
// The weights are untrained, so the numbers only show the mechanics; the seed is fixed.
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

using namespace xg;

namespace {

constexpr std::size_t kDModel = 16, kDFF = 64, kSamples = 100;
constexpr double kDropout = 0.1;

struct Variant {
    std::string name;
    std::function<std::shared_ptr<nn::FeedForward>()> make;
};

std::size_t parameter_count(const nn::Module& module) {
    std::size_t n = 0;
    for (const Tensor& p : module.parameters()) n += p.numel();
    return n;
}

// Mean and standard deviation, over kSamples stochastic passes, of output[0, 0, 0].
std::pair<double, double> mc_prediction(nn::FeedForward& ffn, const Tensor& x) {
    NoGradGuard no_grad;  // inference: no graph needed
    ffn.eval();
    ffn.dropout->enable_mc_dropout(true);
    double sum = 0.0, sum_sq = 0.0;
    for (std::size_t i = 0; i < kSamples; ++i) {
        double v = ffn(x).data<float>()(0, 0, 0);
        sum += v;
        sum_sq += v * v;
    }
    ffn.dropout->enable_mc_dropout(false);
    double mean = sum / kSamples;
    double var = sum_sq / kSamples - mean * mean;
    return {mean, std::sqrt(std::max(var, 0.0))};
}

}  // namespace

int main() {
    manual_seed(0);
    using FF = nn::FeedForward;
    const std::vector<Variant> variants = {
        {"FFN-ReLU", [] { return std::make_shared<FF>(kDModel, kDFF, kDropout); }},
        {"FFN-GELU",
         [] {
             return std::make_shared<FF>(kDModel, kDFF, kDropout, std::make_shared<nn::GELU>());
         }},
        {"FFN-GELU(tanh)",
         [] {
             return std::make_shared<FF>(kDModel, kDFF, kDropout,
                                         std::make_shared<nn::GELU>("tanh"));
         }},
        {"GLU", [] { return FF::glu(kDModel, kDFF, kDropout); }},
        {"Bilinear", [] { return FF::bilinear(kDModel, kDFF, kDropout); }},
        {"ReGLU", [] { return FF::reglu(kDModel, kDFF, kDropout); }},
        {"GEGLU", [] { return FF::geglu(kDModel, kDFF, kDropout); }},
        {"SwiGLU", [] { return FF::swiglu(kDModel, kDFF, kDropout); }},
    };

    // One batch of 8 sequences of 5 positions: the block acts on the last dim only.
    Tensor x = randn({8, 5, kDModel});
    std::printf("d_model = %zu, d_ff = %zu, dropout = %.1f, input %s\n\n", kDModel, kDFF, kDropout,
                shape_str(x.shape()).c_str());

    struct Row {
        std::string name;
        std::size_t params;
        std::string out_shape;
        double mean, std;
    };
    std::vector<Row> rows;
    for (const auto& variant : variants) {
        auto ffn = variant.make();
        std::printf("== %s ==\n", variant.name.c_str());
        std::printf("%s\n", ffn->repr().c_str());
        ffn->train();
        Tensor y = (*ffn)(x);
        auto [mean, std] = mc_prediction(*ffn, x);
        Row row{variant.name, parameter_count(*ffn), shape_str(y.shape()), mean, std};
        std::printf("parameters: %zu, output shape: %s\n", row.params, row.out_shape.c_str());
        std::printf("MC dropout prediction of y[0, 0, 0] over %zu samples: %+.4f ± %.4f\n\n",
                    kSamples, row.mean, row.std);
        rows.push_back(row);
    }

    // The gated variants have a third d_model x d_ff matrix; Shazeer (2020) shrinks d_ff
    // to 2/3 to compare at equal parameter count.
    std::printf("%-16s %10s %14s %22s\n", "variant", "params", "output", "MC mean ± std");
    for (const auto& r : rows) {
        std::printf("%-16s %10zu %14s %+12.4f ± %.4f\n", r.name.c_str(), r.params,
                    r.out_shape.c_str(), r.mean, r.std);
    }
    auto swiglu = FF::swiglu(kDModel, kDFF * 2 / 3, kDropout);
    std::printf(
        "\nSwiGLU with d_ff = %zu (2/3 of %zu): %zu parameters, vs %zu for FFN-ReLU without "
        "biases.\n",
        kDFF * 2 / 3, kDFF, parameter_count(*swiglu), 2 * kDModel * kDFF);
    return 0;
}
