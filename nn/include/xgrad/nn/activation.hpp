// Elementwise activations as modules, as torch.nn's: each maps [...] -> [...]
// (same shape) and has no parameters.
//
//   ReLU:     max(x, 0)
//   GELU:     x * Phi(x), Phi the standard normal CDF ("none"), or its tanh
//             approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) ("tanh")
//   SiLU:     x * sigmoid(x) (also called Swish)
//   Sigmoid:  1 / (1 + exp(-x))
//   Tanh:     tanh(x)
//   Identity: x (a placeholder, e.g. the "bilinear" gate of FeedForward)
#pragma once

#include <memory>
#include <string>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class ReLU : public Module {
public:
    Tensor forward(const Tensor& input) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class GELU : public Module {
public:
    // approximate: "none" (exact, erf) or "tanh"; anything else throws.
    explicit GELU(std::string approximate = "none");
    Tensor forward(const Tensor& input) override;
    std::string extra_repr() const override;

    std::string approximate;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class SiLU : public Module {
public:
    Tensor forward(const Tensor& input) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class Sigmoid : public Module {
public:
    Tensor forward(const Tensor& input) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class Tanh : public Module {
public:
    Tensor forward(const Tensor& input) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class Identity : public Module {
public:
    Tensor forward(const Tensor& input) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
