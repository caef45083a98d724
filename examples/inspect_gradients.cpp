// inspect_gradients: why full backward hooks exist. We hook every Linear of a
// deep stack of FeedForward blocks (no normalisation, so gradients shrink with
// depth), train a few steps and print per layer: the norm of the gradient that
// flows out of the layer (grad_output), the weight-gradient norm, and the size
// of the update relative to the weight. Then a hook that rescales a gradient,
// and a tensor hook on an activation.
#include <fstream>
#include <map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <xgrad/xgrad.hpp>

#include "common/svg.hpp"

using namespace xg;

double norm_of(const Tensor& t) { return t.defined() ? xg::norm(t).item<double>() : 0.0; }

int main(int argc, char** argv) {
    std::size_t depth = 6, steps = 3;
    std::string plot;
    CLI::App app{"Inspect per-layer gradients of a deep FFN stack with backward hooks."};
    app.add_option("--depth", depth, "number of FeedForward blocks");
    app.add_option("--steps", steps, "training steps to show");
    app.add_option("--plot", plot, "write per-layer norms to PLOT.csv and PLOT.svg");
    CLI11_PARSE(app, argc, argv);
    manual_seed(0);

    auto model = std::make_shared<nn::Sequential>();
    for (std::size_t i = 0; i < depth; ++i)
        model->push_back(std::make_shared<nn::FeedForward>(16, 32, 0.0));
    Tensor x = randn({64, 16}), y = randn({64, 16});
    optim::SGD optimizer(model->parameters(), optim::SGDOptions(0.1));

    // One backward hook per Linear records the norm of grad_output by name.
    std::map<std::string, double> grad_output_norm;
    std::vector<std::pair<std::string, std::shared_ptr<nn::Linear>>> linears;
    std::vector<RemovableHandle> handles;
    for (auto& [name, module] : model->named_modules()) {
        if (auto linear = std::dynamic_pointer_cast<nn::Linear>(module)) {
            linears.emplace_back(name, linear);
            handles.push_back(linear->register_full_backward_hook(
                [&grad_output_norm, name = name](nn::Module&, const std::vector<Tensor>&,
                                                 const std::vector<Tensor>& grad_output) {
                    grad_output_norm[name] = norm_of(grad_output[0]);
                }));
        }
    }
    std::ofstream csv;
    if (!plot.empty())
        csv.open(plot + ".csv"),
            csv << "step,layer,grad_output_norm,weight_grad_norm,update_ratio\n";
    std::vector<double> depth_axis, last_grad_norms;
    for (std::size_t step = 1; step <= steps; ++step) {
        Tensor loss = mse_loss((*model)(x), y);
        optimizer.zero_grad();
        loss.backward();
        std::vector<Tensor> before;
        for (auto& [name, linear] : linears) before.push_back(linear->weight.detach().clone());
        optimizer.step();
        fmt::print("\nstep {}  loss {:.5f}\n{:<16} {:>14} {:>14} {:>14}  note\n", step,
                   loss.item<double>(), "layer", "|grad_output|", "|grad W|", "|dW|/|W|");
        depth_axis.clear(), last_grad_norms.clear();
        for (std::size_t i = 0; i < linears.size(); ++i) {
            auto& [name, linear] = linears[i];
            double g = norm_of(linear->weight.grad());
            double ratio = norm_of(linear->weight - before[i]) / norm_of(before[i]);
            const char* note = g < 1e-4 ? "vanishing?" : g > 1e2 ? "exploding?" : "";
            fmt::print("{:<16} {:>14.3e} {:>14.3e} {:>14.3e}  {}\n", name, grad_output_norm[name],
                       g, ratio, note);
            if (csv)
                csv << fmt::format("{},{},{},{},{}\n", step, name, grad_output_norm[name], g,
                                   ratio);
            depth_axis.push_back(double(i)), last_grad_norms.push_back(g);
        }
    }

    // A backward hook may replace grad_input: here it damps the gradient entering the first block
    // by 10x.
    auto first = linears.front().second;
    auto damp = first->register_full_backward_hook(
        [](nn::Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>&) {
            return std::vector<Tensor>{grad_input[0].defined() ? grad_input[0] * 0.1
                                                               : grad_input[0]};
        });
    Tensor probe = x.detach().clone().requires_grad_();
    mse_loss((*model)(probe), y).backward();
    double damped = norm_of(probe.grad());
    damp.remove();
    Tensor probe2 = x.detach().clone().requires_grad_();
    mse_loss((*model)(probe2), y).backward();
    fmt::print("\n|dL/dx| with the damping hook {:.3e}, without {:.3e} (ratio {:.2f})\n", damped,
               norm_of(probe2.grad()), damped / norm_of(probe2.grad()));

    // A tensor hook watches the gradient of one activation.
    Tensor hidden = (*model)[0]->forward(x);
    auto watch = hidden.register_hook([](const Tensor& g) {
        fmt::print("tensor hook: gradient at block 0's output has norm {:.3e}\n", norm_of(g));
    });
    mse_loss((*model)[1]->forward(hidden), y).backward();

    if (!plot.empty()) {
        xg::examples::SvgChart chart;
        chart.add_panel({"Weight-gradient norm by layer (last step)",
                         "layer index (input to output)",
                         "|grad W|",
                         true,
                         {{"|grad W|", depth_axis, last_grad_norms, "#1f77b4"}},
                         {}});
        chart.write(plot + ".svg");
        fmt::print("wrote {}.csv and {}.svg\n", plot, plot);
    }
    return 0;
}
