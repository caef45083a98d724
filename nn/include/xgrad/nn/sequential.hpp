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

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class Sequential : public Module {
public:
    Sequential() = default;
    Sequential(std::initializer_list<std::shared_ptr<Module>> modules);

    Tensor forward(const Tensor& input) override;

    // Appends `module` under the name str(size()).
    Sequential& push_back(std::shared_ptr<Module> module);
    std::size_t size() const;
    bool empty() const { return size() == 0; }
    // The index-th child; an index past the end throws xg::Error.
    std::shared_ptr<Module> operator[](std::size_t index) const;
    // The index-th child as an M; throws if it is not one.
    template <class M>
    std::shared_ptr<M> at(std::size_t index) const {
        auto typed = std::dynamic_pointer_cast<M>((*this)[index]);
        check(typed != nullptr, "Sequential: child {} is not of the requested type (got {})", index,
              (*this)[index]->name());
        return typed;
    }

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
