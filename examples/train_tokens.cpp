// train_tokens: next-token prediction on a toy language whose next token
// depends on the previous two (t+1 = (3 t + 5 t-1 + 1) mod V), with a little
// noise. An Embedding of the context window, flattened, feeds FFN blocks and
// a Linear to vocabulary logits, trained with cross_entropy.
//
// The best possible accuracy is set by the noise: a corrupted token is
// unpredictable, so accuracy / best_possible is what we report.
#include <algorithm>
#include <random>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

#include "common/progress.hpp"
#include "common/step_clock.hpp"

using namespace xg;

struct TokenModel : nn::Module {
    std::size_t context, dim;
    std::shared_ptr<nn::Embedding> embed;
    std::shared_ptr<nn::Linear> input, head;
    std::shared_ptr<nn::Sequential> blocks;

    TokenModel(std::size_t vocab, std::size_t context_, std::size_t dim_, std::size_t d_model,
               std::size_t d_ff)
        : context(context_), dim(dim_) {
        embed = register_module("embed", std::make_shared<nn::Embedding>(vocab, dim));
        input = register_module("input", std::make_shared<nn::Linear>(context * dim, d_model));
        blocks = register_module("blocks", std::make_shared<nn::Sequential>());
        blocks->push_back(std::make_shared<nn::LayerNorm>(Shape{d_model}));
        blocks->push_back(nn::FeedForward::swiglu(d_model, d_ff, 0.0));
        head = register_module("head", std::make_shared<nn::Linear>(d_model, vocab));
    }

    Tensor forward(const Tensor& tokens) override {  // tokens: int64 [batch, context]
        Tensor e = (*embed)(tokens);
        Tensor h = (*input)(reshape(e, {static_cast<std::int64_t>(tokens.shape()[0]), -1}));
        h = h + (*blocks)(h);
        return (*head)(h);
    }
};

// The sequence: a rule on the last two tokens, corrupted with probability `noise`.
std::vector<std::int64_t> make_tokens(std::size_t vocab, std::size_t length, double noise,
                                      std::mt19937_64& rng) {
    std::uniform_int_distribution<std::size_t> any(0, vocab - 1);
    std::bernoulli_distribution corrupt(noise);
    std::vector<std::int64_t> tokens{1, 2};
    while (tokens.size() < length) {
        auto t = static_cast<std::size_t>(tokens.back()),
             t1 = static_cast<std::size_t>(tokens[tokens.size() - 2]);
        std::size_t next = (3 * t + 5 * t1 + 1) % vocab;
        tokens.push_back(static_cast<std::int64_t>(corrupt(rng) ? any(rng) : next));
    }
    return tokens;
}

double accuracy(const Tensor& logits, const Tensor& y) {
    auto predicted = max(logits, 1).second;
    double hits = 0;
    for (std::size_t i = 0; i < y.numel(); ++i)
        hits += predicted.data<std::int64_t>()(i) == y.data<std::int64_t>()(i);
    return hits / static_cast<double>(y.numel());
}

int main(int argc, char** argv) {
    std::size_t vocab = 12, context = 3, length = 6000, epochs = 25, batch = 128;
    double noise = 0.1, lr = 1e-2, min_ratio = 0;
    std::uint64_t seed = 0;
    bool quiet = false, bench_line = false;
    CLI::App app{
        "Next-token prediction with Embedding + FeedForward on a toy rule-based sequence."};
    app.add_option("--vocab", vocab, "vocabulary size");
    app.add_option("--length", length, "tokens in the generated sequence");
    app.add_option("--noise", noise, "probability that a token is replaced at random");
    app.add_option("--epochs", epochs, "passes over the training windows");
    app.add_option("--batch", batch, "windows per step");
    app.add_option("--lr", lr, "Adam learning rate");
    app.add_option("--seed", seed, "seed for data, initialisation and shuffling");
    app.add_flag("--quiet", quiet, "print only the final summary");
    app.add_flag("--bench-line", bench_line,
                 "end with one key=value line: median train-step ms and training seconds "
                 "(bench/compare_python.sh)");
    app.add_option("--min-ratio", min_ratio,
                   "exit with status 1 unless accuracy >= this x the best achievable (tests)");
    CLI11_PARSE(app, argc, argv);
    manual_seed(seed);

    std::mt19937_64 rng(seed);  // the sequence first, then each epoch's shuffle
    std::vector<std::int64_t> tokens = make_tokens(vocab, length, noise, rng);
    std::size_t windows = length - context, n_train = windows * 4 / 5;
    auto batch_of = [&](std::size_t first, std::size_t count,
                        const std::vector<std::size_t>& order) {
        xt::xarray<std::int64_t> x = xt::zeros<std::int64_t>({count, context}),
                                 y = xt::zeros<std::int64_t>({count});
        for (std::size_t i = 0; i < count; ++i) {
            std::size_t w = order.empty() ? first + i : order[first + i];
            for (std::size_t j = 0; j < context; ++j) x(i, j) = tokens[w + j];
            y(i) = tokens[w + context];
        }
        return std::pair{tensor(std::move(x)), tensor(std::move(y))};
    };

    auto model = std::make_shared<TokenModel>(vocab, context, 16, 64, 128);
    optim::Adam optimizer(model->parameters(), optim::AdamOptions(lr));
    std::vector<std::size_t> order(n_train);
    std::iota(order.begin(), order.end(), 0);
    auto [val_x, val_y] = batch_of(n_train, windows - n_train, {});
    double val_accuracy = 0;
    examples::StepClock timer;
    for (std::size_t epoch = 0; epoch < epochs; ++epoch) {
        std::shuffle(order.begin(), order.end(), rng);
        std::size_t steps = (n_train + batch - 1) / batch;
        xg::examples::ProgressBar bar(fmt::format("epoch {:>3}", epoch + 1), steps, quiet);
        double total = 0;
        for (std::size_t s = 0; s < steps; ++s) {
            std::size_t count = std::min(batch, n_train - s * batch);
            auto [x, y] = batch_of(s * batch, count, order);
            timer.start_step();
            Tensor loss = cross_entropy((*model)(x), y);
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            timer.end_step();
            total += loss.item<double>() * static_cast<double>(count);
            bar.update(s + 1, loss.item<double>());
        }
        bar.finish();
        NoGradGuard no_grad;
        val_accuracy = accuracy((*model)(val_x), val_y);
        if (!quiet)
            fmt::print("epoch {:>3}  train loss {:.4f}  val accuracy {:.3f}\n", epoch + 1,
                       total / double(n_train), val_accuracy);
    }
    timer.end_run();
    // A corrupted token is right by chance 1/V of the time.
    double best = 1 - noise + noise / static_cast<double>(vocab);
    fmt::print("validation accuracy {:.3f} | best achievable {:.3f} | ratio {:.3f}\n", val_accuracy,
               best, val_accuracy / best);
    if (bench_line)  // the last line, in the form bench/compare_python.sh parses from both programs
        fmt::print(
            "impl=xgrad example=train_tokens vocab={} context={} d_model=64 d_ff=128 batch={} "
            "threads={} steps={} step_ms={:.4f} train_s={:.3f}\n",
            vocab, context, batch, get_num_threads(), timer.step_ms.size(), timer.median_ms(),
            timer.train_s);
    return val_accuracy / best < min_ratio ? 1 : 0;
}
