// inspect_gradients: seeing inside training with xg::inspect, which is built on
// the public module hooks (read inspect/src/ to see them used).
//
//   1. summary(): torchinfo's table for a deep stack of FeedForward blocks;
//   2. GradientMonitor: per-layer gradient norms, update/weight ratios and
//      activation statistics every 5 steps, for a well-initialised stack and
//      for a deliberately mis-initialised one whose gradients vanish, which the
//      monitor flags; report.html draws it all;
//   3. to_dot(): the backward graph of one block, clustered by module;
//   4. trace_nonfinite(): a hook injects a NaN, and the tracer names the layer;
//   5. the hooks underneath: a backward hook that rescales a gradient, and a
//      tensor hook that watches one.
#include <fstream>
#include <limits>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

#include "common/svg.hpp"

using namespace xg;

namespace {

double norm_of(const Tensor& t) { return t.defined() ? xg::norm(t).item<double>() : 0.0; }

std::shared_ptr<nn::Sequential> make_stack(std::size_t depth, double init_scale) {
    auto model = std::make_shared<nn::Sequential>();
    for (std::size_t i = 0; i < depth; ++i)
        model->push_back(std::make_shared<nn::FeedForward>(16, 32, 0.0));
    NoGradGuard no_grad;
    for (Tensor& p : model->parameters()) p.mul_(init_scale);  // 1: PyTorch's init
    return model;
}

// Trains `model` on a toy regression with `monitor` watching; returns the flags.
std::vector<inspect::Flag> train(nn::Sequential& model, inspect::GradientMonitor& monitor,
                                 std::size_t steps) {
    const Tensor x = randn({64, 16}), y = randn({64, 16});
    optim::SGD optimizer(model.parameters(), optim::SGDOptions(0.1));
    for (std::size_t step = 0; step < steps; ++step) {
        monitor.begin_step();  // on a sampled step: installs the hooks
        const Tensor loss = mse_loss(model(x), y);
        optimizer.zero_grad();
        loss.backward();
        monitor.step(optimizer, loss);  // records, steps, removes the hooks
    }
    return monitor.flags();
}

void print_flags(const std::string& what, const std::vector<inspect::Flag>& flags) {
    fmt::print("{}: {} flag(s)\n", what, flags.size());
    for (std::size_t i = 0; i < flags.size() && i < 4; ++i) {
        const auto& f = flags[i];
        fmt::print("  step {:3d}  {:<14} {:<9} {:.2e}\n", f.step, f.name, to_string(f.kind),
                   f.value);
    }
}

// A NaN injected into one layer's output; the tracer names that layer.
void nonfinite_demo(nn::Sequential& model) {
    auto poison =
        model[2]->register_forward_hook([](nn::Module&, const Tensor&, const Tensor& out) {
            return out * std::numeric_limits<double>::quiet_NaN();
        });
    auto trace = inspect::trace_nonfinite(model, 3);
    try {
        model(randn({4, 16}));
    } catch (const Error& e) {
        const std::string text = e.what();
        fmt::print("\n{}\n", text.substr(0, text.find('\n')));
    }
    trace.remove();
    poison.remove();
}

// The hooks the toolkit is made of: a backward hook replacing grad_input, and
// a tensor hook observing a gradient.
void hooks_demo(nn::Sequential& model) {
    const Tensor x = randn({64, 16}), y = randn({64, 16});
    auto gradient_at_input = [&] {
        Tensor probe = x.detach().clone().requires_grad_();
        mse_loss(model(probe), y).backward();
        return norm_of(probe.grad());
    };
    auto damp = model[0]->register_full_backward_hook(
        [](nn::Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>&) {
            return std::vector<Tensor>{grad_input[0].defined() ? grad_input[0] * 0.1
                                                               : grad_input[0]};
        });
    const double damped = gradient_at_input();
    damp.remove();
    const double plain = gradient_at_input();
    fmt::print("|dL/dx| with a damping backward hook {:.3e}, without {:.3e} (ratio {:.2f})\n",
               damped, plain, damped / plain);
    Tensor hidden = model[0]->forward(x);
    auto watch = hidden.register_hook([](const Tensor& g) {
        fmt::print("tensor hook: the gradient at block 0's output has norm {:.3e}\n", norm_of(g));
    });
    mse_loss(model[1]->forward(hidden), y).backward();
}

// Weight-gradient norm per layer at the last sampled step, as an SVG chart and a CSV.
void plot_last_step(const inspect::GradientMonitor& monitor, const std::string& plot) {
    monitor.write_csv(plot + ".csv");
    std::vector<double> layer, grad_norm;
    for (const auto& p : monitor.records().back().params) {
        if (p.name.ends_with("weight") && p.grad_norm)
            layer.push_back(double(layer.size())), grad_norm.push_back(*p.grad_norm);
    }
    xg::examples::SvgChart chart;
    chart.add_panel({"Weight-gradient norm by layer (last sampled step)",
                     "weight index (input to output)",
                     "|grad W|",
                     true,
                     {{"|grad W|", layer, grad_norm, "#1f77b4"}},
                     {}});
    chart.write(plot + ".svg");
    fmt::print("wrote {}.csv and {}.svg\n", plot, plot);
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t depth = 6, steps = 20;
    std::string report = "report.html", plot, dot;
    CLI::App app{"See inside the training of a deep FFN stack with xg::inspect."};
    app.add_option("--depth", depth, "number of FeedForward blocks");
    app.add_option("--steps", steps, "training steps (the monitor samples every 5th)");
    app.add_option("--report", report, "write the HTML report here ('' for none)");
    app.add_option("--plot", plot, "write per-layer gradient norms to PLOT.csv and PLOT.svg");
    app.add_option("--dot", dot, "write block 0's backward graph here as Graphviz DOT");
    CLI11_PARSE(app, argc, argv);
    manual_seed(0);

    auto model = make_stack(depth, 1.0);
    const inspect::ModelSummary summary = inspect::summary(*model, randn({64, 16}));
    fmt::print("{}\n", summary.to_string());

    inspect::GradientMonitor monitor(*model, {.every = 5});
    print_flags("well initialised", train(*model, monitor, steps));
    auto tiny = make_stack(depth, 0.05);  // weights 20x too small: gradients vanish with depth
    inspect::GradientMonitor tiny_monitor(*tiny, {.every = 5, .vanishing = 1e-4});
    print_flags("mis-initialised (weights x 0.05)", train(*tiny, tiny_monitor, steps));
    if (!report.empty()) {
        inspect::write_report(tiny_monitor, summary, report);
        fmt::print("wrote {} (the mis-initialised run)\n", report);
    }
    if (!plot.empty()) plot_last_step(monitor, plot);
    if (!dot.empty()) {
        inspect::GraphRecorder recorder(*(*model)[0]);
        std::ofstream(dot) << recorder.to_dot(sum((*(*model)[0])(randn({2, 16}))));
        fmt::print("wrote {}\n", dot);
    }
    nonfinite_demo(*model);
    hooks_demo(*model);
    return 0;
}
