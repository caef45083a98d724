// functional_call (see functional_call.hpp): the keys are checked and turned
// into slots first, then each slot's registered Tensor handle is swapped for
// the given one (Module::swap_tensor) and swapped back by an RAII guard.
//
// Swapping handles, not values (Tensor::set_data), is what makes gradients
// reach the given tensors: the module's forward then records its ops on them,
// and the module's own parameters take no part in the call.
#include "xgrad/nn/functional_call.hpp"

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace xg::nn::detail {

// Swaps tensors into parameter and buffer slots, and on destruction puts the
// originals back, last swapped first. swap_tensor cannot fail for a slot that
// exists, so restoring does not throw.
class TensorSwap {
public:
    explicit TensorSwap(std::size_t count) { swapped_.reserve(count); }
    TensorSwap(const TensorSwap&) = delete;
    TensorSwap& operator=(const TensorSwap&) = delete;
    ~TensorSwap() {
        for (auto it = swapped_.rbegin(); it != swapped_.rend(); ++it) {
            it->owner->swap_tensor(it->member, std::move(it->original));
        }
    }

    void swap_in(Module& owner, const std::string& member, Tensor value) {
        // The entry first, so nothing is swapped unless it can be swapped back.
        swapped_.push_back({&owner, member, Tensor()});
        try {
            swapped_.back().original = owner.swap_tensor(member, std::move(value));
        } catch (...) {
            swapped_.pop_back();  // swap_tensor refuses before changing anything
            throw;
        }
    }

private:
    struct Swapped {
        Module* owner;
        std::string member;
        Tensor original;
    };
    std::vector<Swapped> swapped_;
};

}  // namespace xg::nn::detail

namespace xg::func {

namespace {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// One replacement: the tensor to put in `owner`'s parameter or buffer `member`.
struct Slot {
    nn::Module* owner;
    std::string member;
    Tensor tensor;
};

std::string quoted(const std::vector<std::string>& names) {
    std::vector<std::string> out;
    for (const auto& name : names) out.push_back("'" + name + "'");
    return fmt::format("{}", fmt::join(out, ", "));
}

// Every name of a defined parameter or buffer, tied names and the paths of a
// module registered twice included, so a tie can be found by its tensor.
NamedTensors all_named_tensors(const nn::Module& module) {
    NamedTensors named = module.named_parameters("", true, /*remove_duplicate=*/false);
    NamedTensors buffers = module.named_buffers("", true, /*remove_duplicate=*/false);
    named.insert(named.end(), buffers.begin(), buffers.end());
    return named;
}

// The tensor each name of `module` takes for the call, in named_parameters
// then named_buffers order: a name given in `tensors` takes its tensor, and so
// does every name tied to it (PyTorch's _untie_named_tensors_map). Throws on
// an unknown key, an undefined tensor, two tensors for one tie, and, with
// `strict`, on names left out.
NamedTensors untied_replacements(const nn::Module& module, const StateDict& tensors, bool strict) {
    const NamedTensors named = all_named_tensors(module);
    std::map<std::string, const TensorImpl*> impl_of;
    for (const auto& [name, tensor] : named) impl_of.emplace(name, tensor.impl());
    std::vector<std::string> unexpected;
    for (const auto& [key, value] : tensors) {
        if (!impl_of.contains(key)) unexpected.push_back(key);
    }
    if (!unexpected.empty()) {
        fail(
            "functional_call: expected names of parameters or buffers of {} (got unexpected "
            "key(s) {})",
            module.name(), quoted(unexpected));
    }
    // A tie is one original tensor: what replaces it, and the key that said so.
    std::map<const TensorImpl*, std::pair<std::string, Tensor>> replacement;
    for (const auto& [key, value] : tensors) {
        check(value.defined(), "functional_call: expected a tensor for '{}' (got an undefined one)",
              key);
        auto [it, fresh] = replacement.try_emplace(impl_of.at(key), key, value);
        if (!fresh && it->second.second.impl() != value.impl()) {
            fail(
                "functional_call: expected one tensor for the tied keys '{}' and '{}' of {} (got "
                "two different tensors)",
                it->second.first, key, module.name());
        }
    }
    NamedTensors out;
    std::vector<std::string> missing;
    for (const auto& [name, tensor] : named) {
        auto it = replacement.find(tensor.impl());
        if (it != replacement.end())
            out.emplace_back(name, it->second.second);
        else
            missing.push_back(name);
    }
    if (strict && !missing.empty()) {
        fail(
            "functional_call: strict expects a tensor for every parameter and buffer of {} "
            "(got missing key(s) {})",
            module.name(), quoted(missing));
    }
    return out;
}

// The slots behind the names: "a.b.weight" is member "weight" of the module at
// "a.b". A module registered under two paths has one slot, listed once.
std::vector<Slot> slots_of(nn::Module& module, const NamedTensors& replacements) {
    std::vector<Slot> slots;
    std::set<std::pair<const nn::Module*, std::string>> seen;
    for (const auto& [name, tensor] : replacements) {
        const auto dot = name.rfind('.');
        nn::Module* owner =
            dot == std::string::npos ? &module : module.get_submodule(name.substr(0, dot)).get();
        std::string member = dot == std::string::npos ? name : name.substr(dot + 1);
        if (seen.emplace(owner, member).second) slots.push_back({owner, member, tensor});
    }
    return slots;
}

}  // namespace

nn::Value functional_call(nn::Module& module, const StateDict& tensors, const nn::Args& args,
                          const nn::Kwargs& kwargs, bool strict) {
    // Everything that can refuse the call runs before the first swap.
    const std::vector<Slot> slots = slots_of(module, untied_replacements(module, tensors, strict));
    nn::detail::TensorSwap swap(slots.size());
    for (const Slot& slot : slots) swap.swap_in(*slot.owner, slot.member, slot.tensor);
    return module.call(args, kwargs);
}

}  // namespace xg::func
