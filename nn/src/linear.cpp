// Linear: y = x W^T + b over the last dimension (see linear.hpp).
#include "xgrad/nn/linear.hpp"

#include <cmath>

#include "layer_helpers.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Linear::Linear(std::size_t in_features, std::size_t out_features, bool bias)
    : in_features(in_features), out_features(out_features) {
    weight = register_parameter("weight", empty({out_features, in_features}));
    this->bias = register_parameter("bias", bias ? empty({out_features}) : Tensor());
    reset_parameters();
}

void Linear::reset_parameters() {
    // kaiming_uniform_(a=sqrt(5)) gives bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in),
    // the same bound PyTorch uses for the bias.
    NoGradGuard no_grad;
    const double bound = in_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features)) : 0.0;
    auto fill = [bound](const Tensor& t) {
        if (!t.defined()) return;
        Tensor u = rand(t.shape(), t.dtype());
        if (t.dtype() == kFloat64)
            t.data<double>() = (u.data<double>() * 2.0 - 1.0) * bound;
        else
            t.data<float>() = (u.data<float>() * 2.0f - 1.0f) * static_cast<float>(bound);
    };
    fill(weight);
    fill(bias);
}

Tensor Linear::forward(const Tensor& input) { return linear(input, weight, bias); }

std::string Linear::extra_repr() const {
    return fmt::format("in_features={}, out_features={}, bias={}", in_features, out_features,
                       detail::py_bool(bias.defined()));
}

// Keeps the typed handles forward reads in step with the registry.
void Linear::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "weight")
        weight = value;
    else if (member == "bias")
        bias = value;
}

std::shared_ptr<Module> Linear::make_fresh() const {
    return detail::without_consuming_rng(
        [&] { return std::make_shared<Linear>(in_features, out_features, bias.defined()); });
}

}  // namespace xg::nn
