// ModuleDict: modules by name, in insertion order, as torch.nn.ModuleDict.
//
// Like ModuleList it only registers its children (under their own names) and has
// no forward; re-inserting a name replaces the module and keeps its position.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class ModuleDict : public Module {
public:
    ModuleDict() = default;
    ModuleDict(std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> modules);

    ModuleDict& insert(const std::string& key, std::shared_ptr<Module> module);
    // The module under `key`; a missing key throws xg::Error naming it.
    std::shared_ptr<Module> at(const std::string& key) const;
    std::shared_ptr<Module> operator[](const std::string& key) const { return at(key); }
    template <class M>
    std::shared_ptr<M> at(const std::string& key) const {
        std::shared_ptr<Module> module = at(key);
        auto typed = std::dynamic_pointer_cast<M>(module);
        check(typed != nullptr, "ModuleDict: '{}' is not of the requested type (got {})", key,
              module ? module->name() : "None");
        return typed;
    }
    bool contains(const std::string& key) const;
    std::size_t size() const { return registered_children().size(); }
    bool empty() const { return size() == 0; }
    std::vector<std::string> keys() const;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
