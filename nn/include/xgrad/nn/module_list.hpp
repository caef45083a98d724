// ModuleList: an indexable list of modules, as torch.nn.ModuleList.
//
// It only holds and registers its children ("0", "1", ...), so their parameters
// show up in parameters() and state_dict(); it has no forward of its own: the
// owner decides how to call them (iterate with children() or index with []).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class ModuleList : public Module {
public:
    ModuleList() = default;
    ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);

    // Appends `module` under the name str(size()).
    ModuleList& push_back(std::shared_ptr<Module> module);
    std::size_t size() const;
    bool empty() const { return size() == 0; }
    // The index-th child; an index past the end throws xg::Error.
    std::shared_ptr<Module> operator[](std::size_t index) const;
    template <class M>
    std::shared_ptr<M> at(std::size_t index) const {
        auto typed = std::dynamic_pointer_cast<M>((*this)[index]);
        check(typed != nullptr, "ModuleList: child {} is not of the requested type (got {})", index,
              (*this)[index]->name());
        return typed;
    }

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
