// LayerNorm: normalises over the trailing dimensions, as torch.nn.LayerNorm.
//
//   input [..., *normalized_shape] -> output (same shape)
//   y = (x - mean) / sqrt(var + eps) * weight + bias
//
// mean and the biased variance var = mean((x - mean)^2) are taken over the last
// normalized_shape.size() dimensions of each sample; weight (ones) and bias
// (zeros) have shape normalized_shape and exist only when elementwise_affine.
// The forward is the fused xg::layer_norm op: one graph node with a closed-form backward.
#pragma once

#include <memory>
#include <string>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class LayerNorm : public Module {
public:
    explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);

    Tensor forward(const Tensor& input) override;
    std::string extra_repr() const override;
    void reset_parameters();  // weight = 1, bias = 0

    Shape normalized_shape;
    double eps;
    bool elementwise_affine;
    Tensor weight, bias;  // undefined unless elementwise_affine

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;
};

}  // namespace xg::nn
