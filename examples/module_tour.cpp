// module_tour: a first walk through xg::nn::Module.
//
// Builds a small model out of custom modules, prints it the way PyTorch would,
// lists its parameters and buffers, saves a state_dict and loads it into a
// second model, and shows forward and backward hooks firing.
#include <cmath>
#include <string>

#include <xgrad/xgrad.hpp>

namespace nn = xg::nn;
using xg::Tensor;

// y = x W^T + b, initialised like torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)).
struct Dense : nn::Module {
    Dense(std::size_t in, std::size_t out) : in_features(in), out_features(out) {
        double bound = 1.0 / std::sqrt(static_cast<double>(in));
        weight = register_parameter("weight", (xg::rand({out, in}) * 2.0 - 1.0) * bound);
        bias = register_parameter("bias", (xg::rand({out}) * 2.0 - 1.0) * bound);
    }
    Tensor forward(const Tensor& x) override { return xg::linear(x, weight, bias); }
    std::string extra_repr() const override {
        return fmt::format("in_features={}, out_features={}, bias=True", in_features, out_features);
    }
    std::size_t in_features, out_features;
    Tensor weight, bias;
};

// (x - mean) / std with statistics kept as buffers: saved, but never trained.
struct Standardize : nn::Module {
    explicit Standardize(std::size_t features) {
        mean = register_buffer("mean", xg::zeros({features}));
        stddev = register_buffer("std", xg::ones({features}));
        register_buffer("last_batch", xg::zeros({1}), /*persistent=*/false);  // not saved
    }
    Tensor forward(const Tensor& x) override { return (x - mean) / stddev; }
    Tensor mean, stddev;
};

struct Tanh : nn::Module {
    Tensor forward(const Tensor& x) override { return xg::tanh(x); }
};

// Children are registered in the order they run; that order is also the order of
// parameters(), state_dict() and the printout.
struct TinyMLP : nn::Module {
    TinyMLP() {
        norm = register_module("norm", std::make_shared<Standardize>(4));
        fc1 = register_module("fc1", std::make_shared<Dense>(4, 8));
        act = register_module("act", std::make_shared<Tanh>());
        fc2 = register_module("fc2", std::make_shared<Dense>(8, 2));
    }
    Tensor forward(const Tensor& x) override { return (*fc2)((*act)((*fc1)((*norm)(x)))); }
    std::shared_ptr<Standardize> norm;
    std::shared_ptr<Dense> fc1, fc2;
    std::shared_ptr<Tanh> act;
};

std::string values(const Tensor& t) {
    const auto& a = t.data<float>();
    return fmt::format("[{:.4f}]", fmt::join(a.begin(), a.end(), ", "));
}

int main() {
    xg::manual_seed(0);
    auto model = std::make_shared<TinyMLP>();

    fmt::print("== The model, printed like PyTorch's repr ==\n{}\n\n", model->repr());

    fmt::print("== named_parameters() ==\n");
    std::size_t count = 0;
    for (const auto& [name, p] : model->named_parameters()) {
        fmt::print("  {:<12} {}\n", name, xg::shape_str(p.shape()));
        count += p.numel();
    }
    fmt::print("  {} trainable values\n== named_buffers() ==\n", count);
    for (const auto& [name, b] : model->named_buffers()) {
        fmt::print("  {:<16} {}\n", name, xg::shape_str(b.shape()));
    }
    fmt::print("== named_modules() ==\n");
    for (const auto& [path, m] : model->named_modules()) {
        fmt::print("  '{}' -> {}\n", path, m->name());
    }

    // ---- state_dict: parameters and persistent buffers, by dotted name ----
    model->norm->mean.data<float>().fill(0.5f);  // pretend we measured the data
    xg::StateDict saved = model->state_dict();
    fmt::print("\n== state_dict() keys (last_batch is non-persistent, so absent) ==\n  {}\n",
               fmt::join(saved.keys(), ", "));

    xg::manual_seed(1);
    auto restored = std::make_shared<TinyMLP>();  // different random weights
    Tensor x = xg::randn({3, 4});
    fmt::print("before loading, outputs differ: {} vs {}\n", values((*model)(x)),
               values((*restored)(x)));
    restored->load_state_dict(saved);
    fmt::print("after loading, they agree:      {} vs {}\n", values((*model)(x)),
               values((*restored)(x)));

    // A strict load refuses a checkpoint that does not fit, and changes nothing.
    xg::StateDict broken = saved;
    broken.erase("fc2.bias");
    broken.insert_or_assign("head.weight", xg::zeros({2, 8}));
    try {
        restored->load_state_dict(broken);
    } catch (const xg::Error& e) {
        fmt::print("strict load failed as expected:\n{}\n", e.what());
    }
    auto keys = restored->load_state_dict(broken, /*strict=*/false);
    fmt::print("non-strict load: missing [{}], unexpected [{}]\n\n",
               fmt::join(keys.missing_keys, ", "), fmt::join(keys.unexpected_keys, ", "));

    // ---- hooks: observe (return nothing) or replace (return a value) ----
    fmt::print("== Hooks ==\n");
    auto pre = model->fc1->register_forward_pre_hook([](nn::Module& m, const Tensor& input) {
        fmt::print("  forward pre hook: {} gets input {}\n", m.name(),
                   xg::shape_str(input.shape()));
    });
    auto post =
        model->act->register_forward_hook([](nn::Module& m, const Tensor&, const Tensor& output) {
            fmt::print("  forward hook: {} produced {}\n", m.name(), xg::shape_str(output.shape()));
        });
    int calls = 0;
    auto global = nn::register_module_forward_hook(
        [&calls](nn::Module&, const Tensor&, const Tensor&) { ++calls; });
    auto bpre = model->fc2->register_full_backward_pre_hook(
        [](nn::Module& m, const std::vector<Tensor>& grad_output) {
            fmt::print("  backward pre hook: {} grad_output {}\n", m.name(),
                       values(grad_output[0]));
        });
    // Doubling grad_input doubles every gradient that flows back past fc2.
    auto bwd = model->fc2->register_full_backward_hook(
        [](nn::Module& m, const std::vector<Tensor>& grad_input, const std::vector<Tensor>&) {
            fmt::print("  backward hook: {} grad_input {} (doubling it)\n", m.name(),
                       xg::shape_str(grad_input[0].shape()));
            return std::vector<Tensor>{grad_input[0] * 2.0};
        });

    Tensor loss = xg::mse_loss((*model)(x), xg::zeros({3, 2}));
    fmt::print("  loss = {:.6f}; {} module calls seen by the global hook\n", loss.item<double>(),
               calls);
    loss.backward();
    fmt::print("  fc1.bias.grad = {}\n", values(model->fc1->bias.grad()));

    for (auto* handle : {&pre, &post, &global, &bpre, &bwd}) handle->remove();
    model->zero_grad();
    xg::mse_loss((*model)(x), xg::zeros({3, 2})).backward();  // silent now
    fmt::print("  without the hooks: fc1.bias.grad = {} (half of the above)\n",
               values(model->fc1->bias.grad()));

    model->eval();
    fmt::print("\nafter eval(): fc1.is_training() = {}\n", model->fc1->is_training());
    return 0;
}
