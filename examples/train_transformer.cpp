// train_transformer: a small causal Transformer (token + learned position
// embeddings, 2 pre-norm SwiGLU TransformerEncoderLayers under a causal mask, a
// final LayerNorm, a Linear to vocabulary logits) learns a copy task that needs
// context: each sequence is 8 random tokens repeated, so token t equals token
// t - 8 and the second half is predictable only by looking 8 positions back.
// An FFN-only baseline (same embeddings, 2 residual pre-norm FeedForward
// blocks, no attention) sees one position at a time and stays at chance there.
//
//   train_transformer                      # defaults: well under a minute on 2 cores
//   train_transformer --plot transformer.svg --steps 1000 --d-model 32 --offset 6
#include <algorithm>
#include <cmath>
#include <random>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

#include "common/progress.hpp"
#include "common/svg.hpp"

using namespace xg;
namespace ex = xg::examples;

// Sequences of 2 * offset + 1 tokens: `offset` uniform random ones, then the same
// again (token t = token t - offset). Inputs are tokens [0, L), targets tokens
// [1, L] with L = 2 * offset, so the target at position t is predictable exactly
// when t + 1 >= offset; the others are fresh random tokens.
struct CopyTask {
    std::size_t vocab, offset;
    std::size_t length() const { return 2 * offset; }
    bool predictable(std::size_t t) const { return t + 1 >= offset; }
    std::pair<Tensor, Tensor> batch(std::mt19937_64& rng, std::size_t n) const {
        std::size_t L = length();
        std::uniform_int_distribution<std::int64_t> any(0, static_cast<std::int64_t>(vocab) - 1);
        xt::xarray<std::int64_t> x = xt::zeros<std::int64_t>({n, L}),
                                 y = xt::zeros<std::int64_t>({n * L});  // flat, for cross_entropy
        std::vector<std::int64_t> s(L + 1);
        for (std::size_t i = 0; i < n; ++i) {
            for (std::size_t t = 0; t <= L; ++t) s[t] = t < offset ? any(rng) : s[t - offset];
            for (std::size_t t = 0; t < L; ++t) x(i, t) = s[t], y(i * L + t) = s[t + 1];
        }
        return {tensor(std::move(x)), tensor(std::move(y))};
    }
};

// tokens int64 [N, L] -> logits [N, L, vocab]; position t sees tokens 0..t only.
struct TinyTransformer : nn::Module {
    std::shared_ptr<nn::Embedding> embed;
    Tensor pos, causal_mask;
    std::shared_ptr<nn::ModuleList> layers;
    std::shared_ptr<nn::LayerNorm> norm;
    std::shared_ptr<nn::Linear> head;

    TinyTransformer(std::size_t vocab, std::size_t length, std::size_t d_model, std::size_t heads,
                    std::size_t n_layers) {
        embed = register_module("embed", std::make_shared<nn::Embedding>(vocab, d_model));
        pos = register_parameter("pos", randn({length, d_model}));
        layers = register_module("layers", std::make_shared<nn::ModuleList>());
        // Pre-norm (norm_first) SwiGLU layers on [N, L, E] (batch_first), without dropout.
        for (std::size_t i = 0; i < n_layers; ++i)
            layers->push_back(std::make_shared<nn::TransformerEncoderLayer>(
                d_model, heads, nn::FeedForward::swiglu(d_model, 2 * d_model, 0.0), 0.0, 1e-5, true,
                true));
        norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{d_model}));
        head = register_module("head", std::make_shared<nn::Linear>(d_model, vocab));
        xt::xarray<bool> mask = xt::zeros<bool>({length, length});  // true = may not attend
        for (std::size_t i = 0; i < length; ++i)
            for (std::size_t j = i + 1; j < length; ++j) mask(i, j) = true;
        causal_mask = register_buffer("causal_mask", tensor(std::move(mask)), false);
    }

    Tensor forward(const Tensor& tokens) override {
        Tensor h = (*embed)(tokens) + pos;  // [N, L, d] + [L, d]
        for (std::size_t i = 0; i < layers->size(); ++i)
            h = (*layers->at<nn::TransformerEncoderLayer>(i))(h, causal_mask);
        return (*head)((*norm)(h));
    }
};

// The same without attention: every position is transformed on its own.
struct FfnOnly : nn::Module {
    std::shared_ptr<nn::Embedding> embed;
    Tensor pos;
    std::vector<std::pair<std::shared_ptr<nn::LayerNorm>, std::shared_ptr<nn::FeedForward>>> blocks;
    std::shared_ptr<nn::LayerNorm> norm;
    std::shared_ptr<nn::Linear> head;

    FfnOnly(std::size_t vocab, std::size_t length, std::size_t d_model, std::size_t n_blocks) {
        embed = register_module("embed", std::make_shared<nn::Embedding>(vocab, d_model));
        pos = register_parameter("pos", randn({length, d_model}));
        for (std::size_t i = 0; i < n_blocks; ++i) {
            auto block_norm = register_module(fmt::format("norm{}", i),
                                              std::make_shared<nn::LayerNorm>(Shape{d_model}));
            auto ffn = register_module(fmt::format("ffn{}", i),
                                       nn::FeedForward::swiglu(d_model, 2 * d_model, 0.0));
            blocks.emplace_back(block_norm, ffn);
        }
        norm = register_module("norm", std::make_shared<nn::LayerNorm>(Shape{d_model}));
        head = register_module("head", std::make_shared<nn::Linear>(d_model, vocab));
    }

    Tensor forward(const Tensor& tokens) override {
        Tensor h = (*embed)(tokens) + pos;
        for (auto& [block_norm, ffn] : blocks) h = h + (*ffn)((*block_norm)(h));
        return (*head)((*norm)(h));
    }
};

struct Options {
    std::size_t vocab = 10, offset = 8, d_model = 64, heads = 4, steps = 600, batch = 32,
                eval_every = 100;
    double lr = 3e-3, min_accuracy = 0;
    std::uint64_t seed = 0;
    std::string plot;
    bool quiet = false;
};

struct Eval {
    double loss = 0, predictable = 0, unpredictable = 0;  // accuracies split by position kind
};

// logits [N, L, vocab] as the [N * L, vocab] rows cross_entropy takes.
Tensor logit_rows(nn::Module& model, const Tensor& x, std::size_t vocab) {
    return reshape(model(x), {-1, static_cast<std::int64_t>(vocab)});
}

Eval evaluate(nn::Module& model, const CopyTask& task, const Tensor& x, const Tensor& y) {
    NoGradGuard no_grad;
    model.eval();
    Tensor logits = logit_rows(model, x, task.vocab);
    model.train();
    Tensor predicted = max(logits, 1).second;
    const std::int64_t *p = predicted.data<std::int64_t>().data(),
                       *t = y.data<std::int64_t>().data();
    double hits[2] = {0, 0}, counts[2] = {0, 0};
    for (std::size_t i = 0; i < y.numel(); ++i) {
        int kind = task.predictable(i % task.length()) ? 1 : 0;
        counts[kind] += 1;
        hits[kind] += p[i] == t[i];
    }
    return {cross_entropy(logits, y).item<double>(), hits[1] / counts[1], hits[0] / counts[0]};
}

struct Run {  // one model's curves, one point per evaluation
    std::vector<double> steps, train_loss, val_loss, accuracy;
    Eval last;
};

Run train(nn::Module& model, const std::string& name, const CopyTask& task, const Options& o,
          const Tensor& val_x, const Tensor& val_y) {
    optim::Adam optimizer(model.parameters(), optim::AdamOptions(o.lr));
    optim::CosineAnnealingLR schedule(optimizer, static_cast<std::int64_t>(o.steps), o.lr / 10);
    std::mt19937_64 rng(o.seed * 2 + 1);  // fresh batches, the same for both models
    Run run;
    for (std::size_t done = 0; done < o.steps;) {
        std::size_t chunk = std::min(o.eval_every, o.steps - done);
        ex::ProgressBar bar(fmt::format("{:<11} to step {:>4}", name, done + chunk), chunk,
                            o.quiet);
        double total = 0;
        for (std::size_t s = 0; s < chunk; ++s) {
            auto [x, y] = task.batch(rng, o.batch);
            Tensor loss = cross_entropy(logit_rows(model, x, task.vocab), y);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            schedule.step();
            total += loss.item<double>();
            bar.update(s + 1, loss.item<double>());
        }
        bar.finish();
        done += chunk;
        run.last = evaluate(model, task, val_x, val_y);
        run.steps.push_back(static_cast<double>(done));
        run.train_loss.push_back(total / static_cast<double>(chunk));
        run.val_loss.push_back(run.last.loss);
        run.accuracy.push_back(run.last.predictable);
        if (!o.quiet)
            fmt::print(
                "{:<11} step {:>4}  train loss {:.4f}  val loss {:.4f}  val accuracy "
                "{:.3f} predictable, {:.3f} unpredictable  {:.2f}s\n",
                name, done, run.train_loss.back(), run.last.loss, run.last.predictable,
                run.last.unpredictable, bar.seconds());
    }
    return run;
}

std::size_t count_parameters(const nn::Module& model) {
    std::size_t n = 0;
    for (const Tensor& p : model.parameters()) n += p.numel();
    return n;
}

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"A causal Transformer vs an FFN-only baseline on a copy task that needs context."};
    app.add_option("--vocab", o.vocab, "vocabulary size")->check(CLI::Range(2, 1000));
    app.add_option("--offset", o.offset, "token t repeats token t - offset; sequences are 2x this")
        ->check(CLI::Range(2, 256));
    app.add_option("--d-model", o.d_model, "width of the residual stream")
        ->check(CLI::PositiveNumber);
    app.add_option("--heads", o.heads, "attention heads (must divide --d-model)")
        ->check(CLI::PositiveNumber);
    app.add_option("--steps", o.steps, "training steps per model")->check(CLI::PositiveNumber);
    app.add_option("--batch", o.batch, "sequences per step")->check(CLI::PositiveNumber);
    app.add_option("--eval-every", o.eval_every, "steps between validation reports")
        ->check(CLI::PositiveNumber);
    app.add_option("--lr", o.lr, "Adam learning rate (cosine-annealed to a tenth)");
    app.add_option("--seed", o.seed, "seed for data and initialisation");
    app.add_option("--plot", o.plot, "write an SVG with both models' loss and accuracy curves");
    app.add_flag("--quiet", o.quiet, "print only the final summary");
    app.add_option("--min-accuracy", o.min_accuracy,
                   "exit with status 1 unless the Transformer's accuracy on predictable "
                   "positions >= this (tests)");
    CLI11_PARSE(app, argc, argv);
    manual_seed(o.seed);

    CopyTask task{o.vocab, o.offset};
    std::mt19937_64 val_rng(o.seed * 2 + 2);
    auto [val_x, val_y] = task.batch(val_rng, 512);
    auto transformer =
        std::make_shared<TinyTransformer>(o.vocab, task.length(), o.d_model, o.heads, 2);
    auto baseline = std::make_shared<FfnOnly>(o.vocab, task.length(), o.d_model, 2);
    double chance = 1.0 / static_cast<double>(o.vocab);
    // Unpredictable targets cost ln(vocab) at best; predictable ones can cost 0.
    double loss_floor = static_cast<double>(o.offset - 1) / static_cast<double>(task.length()) *
                        std::log(static_cast<double>(o.vocab));
    if (!o.quiet)
        fmt::print(
            "copy task: vocab {}, {} input tokens, token t = token t - {}; {} of {} targets "
            "predictable\nTransformer {} parameters | FFN-only {} parameters\n",
            o.vocab, task.length(), o.offset, o.offset + 1, task.length(),
            count_parameters(*transformer), count_parameters(*baseline));

    Run a = train(*transformer, "Transformer", task, o, val_x, val_y);
    Run b = train(*baseline, "FFN-only", task, o, val_x, val_y);
    fmt::print(
        "validation loss              Transformer {:.4f} | FFN-only {:.4f} | best "
        "achievable {:.4f}\n",
        a.last.loss, b.last.loss, loss_floor);
    fmt::print(
        "accuracy, predictable pos.   Transformer {:.3f} | FFN-only {:.3f} | best "
        "achievable 1.000 | chance {:.3f}\n",
        a.last.predictable, b.last.predictable, chance);
    fmt::print(
        "accuracy, unpredictable pos. Transformer {:.3f} | FFN-only {:.3f} | best "
        "achievable = chance {:.3f}\n",
        a.last.unpredictable, b.last.unpredictable, chance);

    if (!o.plot.empty()) {
        std::vector<double> ends{0.0, a.steps.back()};
        ex::SvgChart chart;
        chart.add_panel({"Loss per step (validation dashed)",
                         "step",
                         "cross-entropy",
                         false,
                         {{"Transformer train", a.steps, a.train_loss, "#1f77b4"},
                          {"Transformer validation", a.steps, a.val_loss, "#1f77b4", true},
                          {"FFN-only train", b.steps, b.train_loss, "#d62728"},
                          {"FFN-only validation", b.steps, b.val_loss, "#d62728", true},
                          {"best achievable", ends, {loss_floor, loss_floor}, "#444444", true}},
                         {}});
        chart.add_panel({"Validation accuracy on predictable positions",
                         "step",
                         "accuracy",
                         false,
                         {{"Transformer", a.steps, a.accuracy, "#1f77b4"},
                          {"FFN-only", b.steps, b.accuracy, "#d62728"},
                          {"best achievable", ends, {1.0, 1.0}, "#444444", true},
                          {"chance 1/vocab", ends, {chance, chance}, "#888888", true}},
                         {}});
        chart.write(o.plot);
        fmt::print("wrote {}\n", o.plot);
    }
    return a.last.predictable < o.min_accuracy ? 1 : 0;
}
