// Activation modules: thin wrappers over the elementwise ops (see activation.hpp).
#include "xgrad/nn/activation.hpp"

#include "xgrad/ops.hpp"

namespace xg::nn {

Tensor ReLU::forward(const Tensor& input) { return relu(input); }
std::shared_ptr<Module> ReLU::make_fresh() const { return std::make_shared<ReLU>(); }

GELU::GELU(std::string approximate) : approximate(std::move(approximate)) {
    check(this->approximate == "none" || this->approximate == "tanh",
          "GELU: expected approximate 'none' or 'tanh' (got '{}')", this->approximate);
}
Tensor GELU::forward(const Tensor& input) { return gelu(input, approximate); }
std::string GELU::extra_repr() const { return "approximate='" + approximate + "'"; }
std::shared_ptr<Module> GELU::make_fresh() const { return std::make_shared<GELU>(approximate); }

Tensor SiLU::forward(const Tensor& input) { return silu(input); }
std::shared_ptr<Module> SiLU::make_fresh() const { return std::make_shared<SiLU>(); }

Tensor Sigmoid::forward(const Tensor& input) { return sigmoid(input); }
std::shared_ptr<Module> Sigmoid::make_fresh() const { return std::make_shared<Sigmoid>(); }

Tensor Tanh::forward(const Tensor& input) { return xg::tanh(input); }
std::shared_ptr<Module> Tanh::make_fresh() const { return std::make_shared<Tanh>(); }

// Returns the same tensor, as torch.nn.Identity does (no copy, no graph node).
Tensor Identity::forward(const Tensor& input) { return input; }
std::shared_ptr<Module> Identity::make_fresh() const { return std::make_shared<Identity>(); }

}  // namespace xg::nn
