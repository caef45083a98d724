// IndexedModules: what Sequential and ModuleList share.
//
// Children are registered as "0", "1", ... in the order appended, and are
// counted, indexed and iterated as registered: a module appended twice is two
// entries (weight tying by repetition), as in PyTorch, even though
// named_children() and parameters() list it once.
#pragma once

#include <cstddef>
#include <iterator>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class IndexedModules : public Module {
public:
    std::size_t size() const { return registered_children().size(); }
    bool empty() const { return size() == 0; }
    // The index-th entry; an index past the end throws xg::Error.
    std::shared_ptr<Module> operator[](std::size_t index) const;
    // The index-th entry as an M; throws if it is not one.
    template <class M>
    std::shared_ptr<M> at(std::size_t index) const {
        std::shared_ptr<Module> entry = (*this)[index];
        auto typed = std::dynamic_pointer_cast<M>(entry);
        if (!typed) fail_not_a(index, entry);
        return typed;
    }

    // for (const auto& module : list): every entry in order, repeats included.
    class const_iterator {
    public:
        using Entries = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;
        using iterator_category = std::forward_iterator_tag;
        using value_type = std::shared_ptr<Module>;
        using difference_type = std::ptrdiff_t;
        using pointer = const value_type*;
        using reference = const value_type&;

        const_iterator() = default;
        explicit const_iterator(Entries::const_iterator at) : at_(at) {}
        reference operator*() const { return at_->second; }
        pointer operator->() const { return &at_->second; }
        const_iterator& operator++() {
            ++at_;
            return *this;
        }
        const_iterator operator++(int) { return const_iterator(at_++); }
        bool operator==(const const_iterator&) const = default;

    private:
        Entries::const_iterator at_;
    };
    const_iterator begin() const { return const_iterator(registered_children().begin()); }
    const_iterator end() const { return const_iterator(registered_children().end()); }

protected:
    // Registers `module` under the name str(size()); `op` names the caller in errors.
    void append(const char* op, std::shared_ptr<Module> module);

private:
    [[noreturn]] void fail_not_a(std::size_t index, const std::shared_ptr<Module>& entry) const;
};

}  // namespace xg::nn
