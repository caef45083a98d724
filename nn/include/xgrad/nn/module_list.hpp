// ModuleList: an indexable list of modules, as torch.nn.ModuleList.
//
// It only holds and registers its children ("0", "1", ...), so their parameters
// show up in parameters() and state_dict(); it has no forward of its own: the
// owner decides how to call them: `for (const auto& layer : list)` or `list[i]`.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <utility>

#include "xgrad/nn/indexed_modules.hpp"

namespace xg::nn {

class ModuleList : public IndexedModules {
public:
    ModuleList() = default;
    ModuleList(std::initializer_list<std::shared_ptr<Module>> modules);

    // Appends `module` under the name str(size()).
    ModuleList& push_back(std::shared_ptr<Module> module) {
        append("push_back", std::move(module));
        return *this;
    }

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
