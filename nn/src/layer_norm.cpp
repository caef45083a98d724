// LayerNorm over the trailing dimensions (see layer_norm.hpp).
#include "xgrad/nn/layer_norm.hpp"

#include <algorithm>

#include "layer_helpers.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : normalized_shape(std::move(normalized_shape)),
      eps(eps),
      elementwise_affine(elementwise_affine) {
    check(!this->normalized_shape.empty(),
          "LayerNorm: expected a non-empty normalized_shape (got [])");
    weight =
        register_parameter("weight", elementwise_affine ? ones(this->normalized_shape) : Tensor());
    bias =
        register_parameter("bias", elementwise_affine ? zeros(this->normalized_shape) : Tensor());
}

void LayerNorm::reset_parameters() {
    NoGradGuard no_grad;
    if (!elementwise_affine) return;
    if (weight.dtype() == kFloat64) {
        weight.data<double>().fill(1.0);
        bias.data<double>().fill(0.0);
    } else {
        weight.data<float>().fill(1.0f);
        bias.data<float>().fill(0.0f);
    }
}

Tensor LayerNorm::forward(const Tensor& input) {
    const auto shape = input.sizes();
    const std::size_t k = normalized_shape.size();
    if (shape.size() < k || !std::ranges::equal(normalized_shape, shape.last(k))) {
        fail("LayerNorm: expected input with shape [*, {}] (got {})",
             fmt::join(normalized_shape, ", "), shape_str(input.shape()));
    }
    return layer_norm(input, normalized_shape, weight, bias, eps);
}

std::string LayerNorm::extra_repr() const {
    return fmt::format("{}, eps={}, elementwise_affine={}", detail::py_tuple(normalized_shape),
                       detail::py_float(eps), detail::py_bool(elementwise_affine));
}

// Keeps the typed handles forward reads in step with the registry.
void LayerNorm::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "weight")
        weight = value;
    else if (member == "bias")
        bias = value;
}

std::shared_ptr<Module> LayerNorm::make_fresh() const {
    return std::make_shared<LayerNorm>(normalized_shape, eps, elementwise_affine);
}

}  // namespace xg::nn
