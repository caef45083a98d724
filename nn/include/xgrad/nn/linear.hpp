// Linear: an affine map over the last dimension, as torch.nn.Linear.
//
//   input [..., in_features] -> output [..., out_features]
//   y = x W^T + b,  W: [out_features, in_features], b: [out_features]
//
// Initialised like PyTorch (kaiming-uniform with a = sqrt(5), which reduces to
// W and b uniform in ±1/sqrt(in_features)), drawn from xg::rand so
// xg::manual_seed makes it reproducible. The forward is one GEMM over all
// leading dimensions (xg::linear), whatever the input's rank.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class Linear : public Module {
public:
    Linear(std::size_t in_features, std::size_t out_features, bool bias = true);

    Tensor forward(const Tensor& input) override;
    std::string extra_repr() const override;
    // Re-draws weight and bias from PyTorch's default distribution.
    void reset_parameters();

    std::size_t in_features, out_features;
    Tensor weight, bias;  // bias is undefined when built with bias = false

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;
};

}  // namespace xg::nn
