// ModuleDict: named children in insertion order (see module_dict.hpp).
#include "xgrad/nn/module_dict.hpp"

namespace xg::nn {

ModuleDict::ModuleDict(
    std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> modules) {
    for (const auto& [key, module] : modules) insert(key, module);
}

ModuleDict& ModuleDict::insert(const std::string& key, std::shared_ptr<Module> module) {
    check(module != nullptr, "ModuleDict.insert: expected a module for '{}' (got nullptr)", key);
    register_module(key, std::move(module));
    return *this;
}

// The registry, not named_children(), which lists a module held under two keys once.
std::shared_ptr<Module> ModuleDict::at(const std::string& key) const {
    if (const auto* module = registered_children().find(key)) return *module;
    throw Error(fmt::format("ModuleDict: expected one of the keys [{}] (got '{}')",
                            fmt::join(keys(), ", "), key));
}

bool ModuleDict::contains(const std::string& key) const {
    return registered_children().find(key) != nullptr;
}

std::vector<std::string> ModuleDict::keys() const {
    std::vector<std::string> out;
    for (const auto& [key, module] : registered_children()) out.push_back(key);
    return out;
}

// Empty: clone() then copies each child over, in order, under its own name.
std::shared_ptr<Module> ModuleDict::make_fresh() const { return std::make_shared<ModuleDict>(); }

}  // namespace xg::nn
