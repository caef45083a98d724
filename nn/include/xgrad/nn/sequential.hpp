// Sequential: a chain of modules, as torch.nn.Sequential.
//
//   forward(x) = m_{n-1}(... m_1(m_0(x)))   (input and output shapes are the chain's)
//
// Children are registered as "0", "1", ... in the order given, so state_dict keys
// ("0.weight", ...) and printing match PyTorch. Each child is called through
// operator(), so its hooks fire.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <utility>

#include "xgrad/nn/indexed_modules.hpp"

namespace xg::nn {

class Sequential : public IndexedModules {
public:
    Sequential() = default;
    Sequential(std::initializer_list<std::shared_ptr<Module>> modules);

    Tensor forward(const Tensor& input) override;

    // Appends `module` under the name str(size()).
    Sequential& push_back(std::shared_ptr<Module> module) {
        append("push_back", std::move(module));
        return *this;
    }

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
