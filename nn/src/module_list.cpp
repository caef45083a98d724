// ModuleList: registered children "0", "1", ... (see module_list.hpp).
#include "xgrad/nn/module_list.hpp"

namespace xg::nn {

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) {
    for (const auto& module : modules) push_back(module);
}

// Empty: clone() then copies each child over, in order, under its own name.
std::shared_ptr<Module> ModuleList::make_fresh() const { return std::make_shared<ModuleList>(); }

}  // namespace xg::nn
