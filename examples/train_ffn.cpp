// train_ffn: forecast the next 8 values of a seasonal series from the last 48
// with a stack of residual FeedForward blocks — the example the README runs.
//
//   model:  Linear(48, d_model) -> N x [x + FeedForward(LayerNorm(x))] -> Linear(d_model, 8)
//
// Try `train_ffn --variant swiglu`, `--optimizer sgd --lr 0.05`, `--plot loss.svg --mc-samples 50`,
// or data-parallel over MPI: `mpirun -np 2 train_ffn --distributed` (xgrad built with MPI).
#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <optional>
#include <random>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

#include "common/progress.hpp"
#include "common/series.hpp"
#include "common/step_clock.hpp"
#include "common/svg.hpp"
#ifdef XGRAD_WITH_MPI
#include <xgrad/distributed.hpp>
#endif

using namespace xg;
namespace ex = xg::examples;

// Residual FFN blocks between an input and an output projection.
struct Forecaster : nn::Module {
    std::shared_ptr<nn::Linear> input, output;
    std::vector<std::pair<std::shared_ptr<nn::LayerNorm>, std::shared_ptr<nn::FeedForward>>> blocks;

    Forecaster(std::size_t lookback, std::size_t horizon, std::size_t d_model, std::size_t d_ff,
               std::size_t n_blocks, double dropout, const std::string& variant) {
        input = register_module("input", std::make_shared<nn::Linear>(lookback, d_model));
        for (std::size_t i = 0; i < n_blocks; ++i) {
            auto norm = register_module(fmt::format("norm{}", i),
                                        std::make_shared<nn::LayerNorm>(Shape{d_model}));
            auto ffn =
                register_module(fmt::format("ffn{}", i), make_ffn(variant, d_model, d_ff, dropout));
            blocks.emplace_back(norm, ffn);
        }
        output = register_module("output", std::make_shared<nn::Linear>(d_model, horizon));
    }

    static std::shared_ptr<nn::FeedForward> make_ffn(const std::string& v, std::size_t d,
                                                     std::size_t f, double p) {
        using FF = nn::FeedForward;
        if (v == "relu") return std::make_shared<FF>(d, f, p);
        if (v == "gelu") return std::make_shared<FF>(d, f, p, std::make_shared<nn::GELU>());
        if (v == "glu") return FF::glu(d, f, p);
        if (v == "bilinear") return FF::bilinear(d, f, p);
        if (v == "reglu") return FF::reglu(d, f, p);
        if (v == "geglu") return FF::geglu(d, f, p);
        return FF::swiglu(d, f, p);
    }

    Tensor forward(const Tensor& x) override {
        Tensor h = (*input)(x);
        for (auto& [norm, ffn] : blocks) h = h + (*ffn)((*norm)(h));
        return (*output)(h);
    }
};

struct Options {
    std::string variant = "relu", optimizer = "adam", schedule = "cosine", save, resume, plot,
                report;
    std::size_t d_model = 64, d_ff = 256, blocks = 2, epochs = 40, batch = 64, mc_samples = 0;
    double dropout = 0.1, lr = 3e-3, clip = 1.0, max_ratio = 0;
    std::uint64_t seed = 0;
    int threads = 1;
    bool quiet = false, distributed = false, bench_line = false;
};

// The last line, key=value, in the form bench/compare_python.sh parses from both programs.
void print_bench_line(const Options& o, const ex::StepClock& timer) {
    fmt::print(
        "impl=xgrad example=train_ffn variant={} d_model={} d_ff={} blocks={} batch={} threads={} "
        "steps={} step_ms={:.4f} train_s={:.3f}\n",
        o.variant, o.d_model, o.d_ff, o.blocks, o.batch, o.threads, timer.step_ms.size(),
        timer.median_ms(), timer.train_s);
}

std::shared_ptr<optim::Optimizer> make_optimizer(const Options& o,
                                                 const std::vector<Tensor>& params) {
    if (o.optimizer == "sgd")
        return std::make_shared<optim::SGD>(params, optim::SGDOptions(o.lr).momentum(0.9));
    if (o.optimizer == "adamw")
        return std::make_shared<optim::AdamW>(params, optim::AdamWOptions(o.lr));
    return std::make_shared<optim::Adam>(params, optim::AdamOptions(o.lr));
}

std::shared_ptr<optim::LRScheduler> make_schedule(const Options& o, optim::Optimizer& opt) {
    double epochs = static_cast<double>(o.epochs);
    if (o.schedule == "step")
        return std::make_shared<optim::StepLR>(opt, std::max<std::size_t>(o.epochs / 3, 1), 0.3);
    if (o.schedule == "cosine") return std::make_shared<optim::CosineAnnealingLR>(opt, o.epochs);
    if (o.schedule == "warmup-cosine") {
        return std::make_shared<optim::LambdaLR>(opt, [epochs](std::int64_t e) {
            double warmup = std::max(1.0, epochs / 10), t = static_cast<double>(e);
            if (t < warmup) return (t + 1) / warmup;
            return 0.5 *
                   (1 + std::cos(std::numbers::pi * (t - warmup) / std::max(1.0, epochs - warmup)));
        });
    }
    return nullptr;
}

// This process's windows for an epoch, in order: all of them, shuffled, or with
// --distributed this rank's shard. Both depend only on (seed, epoch), so a resumed run matches.
std::vector<std::size_t> epoch_order(const Options& o, std::size_t n, std::int64_t epoch,
                                     [[maybe_unused]] int rank, [[maybe_unused]] int world) {
#ifdef XGRAD_WITH_MPI
    if (o.distributed) {
        distributed::DistributedSampler sampler(n, world, rank, true, o.seed);
        sampler.set_epoch(static_cast<std::uint64_t>(epoch));
        return sampler.indices();
    }
#endif
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 shuffle(o.seed * 1000003 + static_cast<std::uint64_t>(epoch));
    std::shuffle(order.begin(), order.end(), shuffle);
    return order;
}

double evaluate(Forecaster& model, const Tensor& x, const Tensor& y) {
    NoGradGuard no_grad;
    model.eval();
    double loss = mse_loss(model(x), y).item<double>();
    model.train();
    return loss;
}

int main(int argc, char** argv) {
    Options o;
    CLI::App app{"Train residual FeedForward blocks to forecast a seasonal time series."};
    app.add_option("--variant", o.variant, "FFN variant")
        ->check(CLI::IsMember({"relu", "gelu", "glu", "bilinear", "reglu", "geglu", "swiglu"}));
    app.add_option("--d-model", o.d_model, "width of the residual stream");
    app.add_option("--d-ff", o.d_ff, "hidden width inside each FeedForward");
    app.add_option("--blocks", o.blocks, "number of residual FFN blocks");
    app.add_option("--dropout", o.dropout, "dropout inside the FFN blocks");
    app.add_option("--optimizer", o.optimizer, "optimizer")
        ->check(CLI::IsMember({"sgd", "adam", "adamw"}));
    app.add_option("--lr", o.lr, "peak learning rate");
    app.add_option("--schedule", o.schedule, "learning-rate schedule")
        ->check(CLI::IsMember({"none", "step", "cosine", "warmup-cosine"}));
    app.add_option("--clip", o.clip, "clip the gradient norm to this (0 = off)");
    app.add_option("--epochs", o.epochs, "passes over the training windows");
    app.add_option("--batch", o.batch, "windows per step");
    app.add_option("--seed", o.seed, "seed for data, initialisation and dropout");
    app.add_option("--threads", o.threads, "threads for BLAS and xgrad kernels");
    app.add_option("--save", o.save, "write a safetensors checkpoint here at the end");
    app.add_option("--resume", o.resume, "continue from this checkpoint");
    app.add_option("--plot", o.plot, "write an SVG with the loss curves and a forecast");
    app.add_option("--report", o.report,
                   "watch training with xg::inspect::GradientMonitor (every 10th step) and write "
                   "its HTML report here");
    app.add_option("--mc-samples", o.mc_samples,
                   "Monte Carlo dropout samples for the plotted forecast");
    app.add_flag("--quiet", o.quiet, "print only the final summary");
    app.add_flag("--bench-line", o.bench_line,
                 "end with one key=value line: median train-step ms and training seconds "
                 "(bench/compare_python.sh)");
    app.add_flag("--distributed", o.distributed,
                 "data-parallel over MPI, under mpirun -np N: --batch stays the global batch, "
                 "rank 0 prints, saves and plots");
    app.add_option(
        "--max-ratio", o.max_ratio,
        "exit with status 1 unless validation MSE <= this x the best naive baseline (tests)");
    CLI11_PARSE(app, argc, argv);

    int rank = 0, world = 1;
#ifdef XGRAD_WITH_MPI
    std::optional<distributed::Environment> mpi;
    if (o.distributed) {
        mpi.emplace(&argc, &argv);
        rank = distributed::rank(), world = distributed::world_size();
        o.quiet = o.quiet || rank != 0;
    }
#else
    if (o.distributed) {
        fmt::print(stderr, "--distributed needs xgrad built with MPI (-DXGRAD_WITH_MPI=ON)\n");
        return 2;
    }
#endif
    set_num_threads(o.threads);
    manual_seed(o.seed);
    ex::SeriesConfig config;
    config.seed = o.seed;
    ex::ForecastData data = ex::make_forecast_data(config);
    auto model = std::make_shared<Forecaster>(config.lookback, config.horizon, o.d_model, o.d_ff,
                                              o.blocks, o.dropout, o.variant);
    std::shared_ptr<nn::Module> net = model;  // what the training loop calls
#ifdef XGRAD_WITH_MPI
    if (o.distributed) {
        net = std::make_shared<nn::DistributedDataParallel>(model);  // rank 0's weights everywhere
        manual_seed(o.seed * 1000003 + 1 + static_cast<std::uint64_t>(rank));  // own dropout masks
    }
#endif
    auto optimizer = make_optimizer(o, model->parameters());
    auto schedule = make_schedule(o, *optimizer);
    std::int64_t first_epoch = 0;
    if (!o.resume.empty()) {
        // Replay the schedule up to the saved epoch, then restore the exact state.
        first_epoch = std::stoll(load_metadata(o.resume).at("step"));
        for (std::int64_t e = 0; schedule && e < first_epoch; ++e) schedule->step();
        load_checkpoint(o.resume, *model, *optimizer);
    }
    std::size_t n_params = 0;
    for (const Tensor& p : model->parameters()) n_params += p.numel();
    if (!o.quiet)
        fmt::print("{}\n{} parameters, {} training windows\n", model->repr(), n_params,
                   data.train_x.shape()[0]);

    // Gradient telemetry every 10th step: the monitor hooks the model only then.
    std::optional<inspect::GradientMonitor> monitor;
    if (!o.report.empty() && rank == 0)
        monitor.emplace(*model, inspect::MonitorOptions{.every = 10});
    // Each rank takes an equal share of the global batch from its own shard.
    std::size_t batch = (o.batch + static_cast<std::size_t>(world) - 1) / world;
    std::vector<double> epochs_x, train_curve, val_curve;
    ex::StepClock timer;
    for (std::int64_t epoch = first_epoch; epoch < static_cast<std::int64_t>(o.epochs); ++epoch) {
        std::vector<std::size_t> order =
            epoch_order(o, data.train_x.shape()[0], epoch, rank, world);
        std::size_t n = order.size(), steps = (n + batch - 1) / batch;
        ex::ProgressBar bar(fmt::format("epoch {:>3}", epoch + 1), steps, o.quiet);
        double total = 0;
        for (std::size_t s = 0; s < steps; ++s) {
            std::vector<std::size_t> rows(
                order.begin() + static_cast<std::ptrdiff_t>(s * batch),
                order.begin() + static_cast<std::ptrdiff_t>(std::min(n, (s + 1) * batch)));
            if (monitor) monitor->begin_step();
            Tensor x = ex::take_rows(data.train_x, rows), y = ex::take_rows(data.train_y, rows);
            timer.start_step();
            Tensor loss = mse_loss((*net)(x), y);
            optimizer->zero_grad();
            loss.backward();
            if (o.clip > 0) nn::utils::clip_grad_norm_(model->parameters(), o.clip);
            if (monitor)
                monitor->step(*optimizer, loss);  // optimizer->step() between its records
            else
                optimizer->step();
            timer.end_step();
            total += loss.item<double>() * static_cast<double>(rows.size());
            bar.update(s + 1, loss.item<double>());
        }
        if (schedule) schedule->step();
        bar.finish();
#ifdef XGRAD_WITH_MPI
        if (o.distributed) {  // the mean over every rank's windows
            Tensor sums = tensor(xt::xarray<double>{total, static_cast<double>(n)});
            distributed::all_reduce(sums);
            total = sums.data<double>()(0), n = static_cast<std::size_t>(sums.data<double>()(1));
        }
#endif
        double train_loss = total / static_cast<double>(n),
               val_loss = evaluate(*model, data.val_x, data.val_y);
        epochs_x.push_back(static_cast<double>(epoch + 1));
        train_curve.push_back(train_loss);
        val_curve.push_back(val_loss);
        if (!o.quiet)
            fmt::print("epoch {:>3}  train {:.5f}  val {:.5f}  lr {:.2e}  {:.2f}s\n", epoch + 1,
                       train_loss, val_loss, optimizer->param_groups()[0].options().get_lr(),
                       bar.seconds());
    }
    timer.end_run();
    if (!o.save.empty() && rank == 0)
        save_checkpoint(o.save, *model, *optimizer, static_cast<std::int64_t>(o.epochs));
    if (monitor) {
        const std::vector<std::size_t> first_rows{0, 1, 2, 3};
        inspect::write_report(
            *monitor, inspect::summary(*model, ex::take_rows(data.train_x, first_rows)), o.report);
        fmt::print("wrote {} ({} flagged)\n", o.report, monitor->flags().size());
    }

    double val = evaluate(*model, data.val_x, data.val_y);
    double best_naive = std::min(data.naive_last_mse, data.naive_season_mse);
    if (rank == 0)
        fmt::print(
            "validation MSE {:.5f} | naive last value {:.5f} | naive last season {:.5f} | ratio to "
            "best naive {:.3f}\n",
            val, data.naive_last_mse, data.naive_season_mse, val / best_naive);

    if (!o.plot.empty() && rank == 0) {
        ex::SvgChart chart;
        chart.add_panel({"Loss per epoch",
                         "epoch",
                         "MSE",
                         true,
                         {{"train", epochs_x, train_curve, "#1f77b4"},
                          {"validation", epochs_x, val_curve, "#d62728"}},
                         {}});
        // One validation window: history, truth and forecast (with an MC dropout band).
        std::size_t w = data.val_x.shape()[0] / 2;
        Tensor window = ex::take_rows(data.val_x, {w}), truth = ex::take_rows(data.val_y, {w});
        std::vector<double> hx, hy, fx, fy, ty, lo, hi;
        for (std::size_t j = 0; j < config.lookback; ++j)
            hx.push_back(double(j)), hy.push_back(window.data<float>()(0, j));
        NoGradGuard no_grad;
        model->eval();
        std::vector<std::vector<double>> samples;
        if (o.mc_samples > 0) {
            for (auto& m : model->modules())
                if (auto d = std::dynamic_pointer_cast<nn::MonteCarloDropout>(m))
                    d->enable_mc_dropout(true);
            for (std::size_t s = 0; s < o.mc_samples; ++s) {
                Tensor y = (*model)(window);
                samples.emplace_back(y.data<float>().begin(), y.data<float>().end());
            }
        }
        Tensor forecast = (*model)(window);
        for (std::size_t h = 0; h < config.horizon; ++h) {
            fx.push_back(double(config.lookback + h));
            ty.push_back(truth.data<float>()(0, h));
            double mean = forecast.data<float>()(0, h), sd = 0;
            if (!samples.empty()) {
                mean = sd = 0;
                for (auto& s : samples) mean += s[h] / double(samples.size());
                for (auto& s : samples)
                    sd += (s[h] - mean) * (s[h] - mean) / double(samples.size());
                sd = std::sqrt(sd);
            }
            fy.push_back(mean), lo.push_back(mean - 2 * sd), hi.push_back(mean + 2 * sd);
        }
        ex::Panel panel{"One validation window",
                        "time step",
                        "value (standardised)",
                        false,
                        {{"history", hx, hy, "#444444"},
                         {"truth", fx, ty, "#2ca02c"},
                         {"forecast", fx, fy, "#d62728", true}},
                        {}};
        if (!samples.empty()) panel.bands.push_back({"MC dropout mean ± 2 std", fx, lo, hi});
        chart.add_panel(panel);
        chart.write(o.plot);
        fmt::print("wrote {}\n", o.plot);
    }
    if (o.bench_line && rank == 0) print_bench_line(o, timer);
    return o.max_ratio > 0 && val / best_naive > o.max_ratio ? 1 : 0;
}
