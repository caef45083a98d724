// Sequential: children "0", "1", ... run in order (see sequential.hpp).
#include "xgrad/nn/sequential.hpp"

#include <string>

namespace xg::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
    for (const auto& module : modules) push_back(module);
}

Tensor Sequential::forward(const Tensor& input) {
    Tensor x = input;
    // The registry, not a member copy, so set_submodule("1", ...) takes effect.
    for (const auto& child : children()) x = (*child)(x);
    return x;
}

Sequential& Sequential::push_back(std::shared_ptr<Module> module) {
    check(module != nullptr, "Sequential.push_back: expected a module (got nullptr)");
    register_module(std::to_string(size()), std::move(module));
    return *this;
}

std::size_t Sequential::size() const { return named_children().size(); }

std::shared_ptr<Module> Sequential::operator[](std::size_t index) const {
    auto named = named_children();
    check(index < named.size(), "Sequential: expected an index in [0, {}) (got {})", named.size(),
          index);
    return named[index].second;
}

// Empty: clone() then copies each child over, in order, under its own name.
std::shared_ptr<Module> Sequential::make_fresh() const { return std::make_shared<Sequential>(); }

}  // namespace xg::nn
