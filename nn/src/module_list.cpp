// ModuleList: registered children "0", "1", ... (see module_list.hpp).
#include "xgrad/nn/module_list.hpp"

#include <string>

namespace xg::nn {

ModuleList::ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) {
    for (const auto& module : modules) push_back(module);
}

ModuleList& ModuleList::push_back(std::shared_ptr<Module> module) {
    check(module != nullptr, "ModuleList.push_back: expected a module (got nullptr)");
    register_module(std::to_string(size()), std::move(module));
    return *this;
}

std::size_t ModuleList::size() const { return named_children().size(); }

std::shared_ptr<Module> ModuleList::operator[](std::size_t index) const {
    auto named = named_children();
    check(index < named.size(), "ModuleList: expected an index in [0, {}) (got {})", named.size(),
          index);
    return named[index].second;
}

// Empty: clone() then copies each child over, in order, under its own name.
std::shared_ptr<Module> ModuleList::make_fresh() const { return std::make_shared<ModuleList>(); }

}  // namespace xg::nn
