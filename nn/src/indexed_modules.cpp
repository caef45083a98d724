// IndexedModules: the shared part of Sequential and ModuleList (see indexed_modules.hpp).
#include "xgrad/nn/indexed_modules.hpp"

namespace xg::nn {

std::shared_ptr<Module> IndexedModules::operator[](std::size_t index) const {
    check(index < size(), "{}: expected an index in [0, {}) (got {})", name(), size(), index);
    return std::next(registered_children().begin(), static_cast<std::ptrdiff_t>(index))->second;
}

void IndexedModules::append(const char* op, std::shared_ptr<Module> module) {
    check(module != nullptr, "{}.{}: expected a module (got nullptr)", name(), op);
    register_module(std::to_string(size()), std::move(module));
}

void IndexedModules::fail_not_a(std::size_t index, const std::shared_ptr<Module>& entry) const {
    throw Error(fmt::format("{}: child {} is not of the requested type (got {})", name(), index,
                            entry ? entry->name() : "None"));
}

}  // namespace xg::nn
