// Sequential: children "0", "1", ... run in order (see sequential.hpp).
#include "xgrad/nn/sequential.hpp"

namespace xg::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
    for (const auto& module : modules) push_back(module);
}

Tensor Sequential::forward(const Tensor& input) {
    Tensor x = input;
    // The registry, not a member copy, so set_submodule("1", ...) takes effect;
    // a module appended twice runs twice.
    for (const auto& [member, child] : registered_children()) {
        check(child != nullptr, "Sequential: child {} is None and cannot be called", member);
        x = (*child)(x);
    }
    return x;
}

// Empty: clone() then copies each child over, in order, under its own name.
std::shared_ptr<Module> Sequential::make_fresh() const { return std::make_shared<Sequential>(); }

}  // namespace xg::nn
