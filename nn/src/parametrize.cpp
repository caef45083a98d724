// torch.nn.utils.parametrize (see parametrize.hpp): ParametrizationList, the
// cache, and registering and removing parametrizations.
//
// A parametrized tensor's slot in its module holds an undefined tensor (as a
// parameter set to None in PyTorch), so named_parameters and state_dict skip
// it; the originals live in module.parametrizations.<name>. A forward pre hook
// on the module computes the value at each call and hands it to the module's
// typed member through on_tensor_set, without touching the registry.
#include "xgrad/nn/parametrize.hpp"

#include <charconv>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "xgrad/autograd.hpp"
#include "xgrad/nn/module_dict.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn::utils::parametrize {

namespace detail {
struct ListAccess {
    static RemovableHandle& hook(ParametrizationList& list) { return list.hook_; }
};
}  // namespace detail

namespace {

constexpr const char* kDictName = "parametrizations";

// Module::on_tensor_set is protected, and only functional_call's swap may call
// Module::swap_tensor. A class derived from Module may name the member,
// though, and the pointer to member it forms calls it on any module (virtually),
// so the module's typed member takes the value while its registry slot stays
// undefined: the parameter is gone, as in PyTorch, and the layer reads the value.
struct TensorSetAccess : Module {
    static void set(Module& module, const std::string& member, const Tensor& value) {
        void (Module::*notify)(const std::string&, const Tensor&) = &TensorSetAccess::on_tensor_set;
        (module.*notify)(member, value);
    }
};

// ---- the cache (PyTorch's module-level _cache and _cache_enabled) ----

struct Cache {
    std::mutex mutex;
    int guards = 0;
    std::map<const ParametrizationList*, Tensor> values;
};

Cache& cache() {
    static Cache instance;
    return instance;
}

// The list's value, computed once while a CacheGuard is alive. The lock is not
// held while computing: a parametrization may read other parametrized tensors.
Tensor parametrized_value(ParametrizationList& list) {
    Cache& c = cache();
    bool caching = false;
    {
        std::lock_guard lock(c.mutex);
        caching = c.guards > 0;
        if (auto it = c.values.find(&list); caching && it != c.values.end()) return it->second;
    }
    Tensor value = list.forward();
    if (caching) {
        std::lock_guard lock(c.mutex);
        if (c.guards > 0) c.values.emplace(&list, value);
    }
    return value;
}

// Drops a list's cached value once the list changes or goes (its address may be reused).
void forget_cached(const ParametrizationList* list) {
    Tensor dropped;  // released after the lock
    std::lock_guard lock(cache().mutex);
    if (auto it = cache().values.find(list); it != cache().values.end()) {
        dropped = std::move(it->second);
        cache().values.erase(it);
    }
}

// ---- finding things ----

std::string where(const Module& module, const std::string& name) {
    return module.name() + "." + name;
}

std::shared_ptr<ModuleDict> parametrizations_of(const Module& module) {
    for (const auto& [member, child] : module.named_children()) {
        if (member == kDictName) return std::dynamic_pointer_cast<ModuleDict>(child);
    }
    return nullptr;
}

std::shared_ptr<ParametrizationList> list_of(const Module& module, const std::string& name) {
    auto dict = parametrizations_of(module);
    if (!dict || !dict->contains(name)) return nullptr;
    return dict->at<ParametrizationList>(name);
}

// The defined parameter (true) or buffer (false) `name` of `module` itself.
std::pair<Tensor, bool> find_tensor(const Module& module, const std::string& name) {
    for (const auto& [member, t] : module.named_parameters("", false, false)) {
        if (member == name) return {t, true};
    }
    for (const auto& [member, t] : module.named_buffers("", false, false)) {
        if (member == name) return {t, false};
    }
    fail(
        "register_parametrization: expected a parameter, a buffer or a parametrized tensor named "
        "'{}' in {} (got none by that name)",
        name, module.name());
}

// PyTorch's consistency checks: `what` must keep the tensor's dtype and shape.
void check_like(const Value& result, Dtype dtype, const Shape& shape, const std::string& at,
                const std::string& what) {
    if (!result.is_tensor()) {
        fail("register_parametrization: expected {} to return a Tensor for {} (got {})", what, at,
             result.describe());
    }
    const Tensor& t = result.tensor();
    if (t.dtype() != dtype) {
        fail(
            "register_parametrization: expected {} to keep the dtype of {}, {}, unless unsafe is "
            "set (got {})",
            what, at, dtype_name(dtype), dtype_name(t.dtype()));
    }
    if (t.shape() != shape) {
        fail(
            "register_parametrization: expected {} to keep the shape of {}, {}, unless unsafe is "
            "set (got {})",
            what, at, shape_str(shape), shape_str(t.shape()));
    }
}

// The hook that computes the tensor at each call of its module. It holds the
// list weakly: the module owns the list, and the list owns the hook's handle.
void install_hook(Module& module, const std::string& name,
                  const std::shared_ptr<ParametrizationList>& list) {
    std::weak_ptr<ParametrizationList> weak = list;
    auto compute = [weak, name](Module& owner, const Args&) {
        if (auto held = weak.lock()) TensorSetAccess::set(owner, name, parametrized_value(*held));
    };
    // First, so the module's own pre hooks see the value of this call.
    detail::ListAccess::hook(*list) = module.register_forward_pre_hook(compute, /*prepend=*/true);
}

// A further parametrization on an already parametrized tensor: checked on the
// current value unless unsafe, then appended.
void append(Module& module, const std::string& name, ParametrizationList& list,
            std::shared_ptr<Module> parametrization, bool unsafe) {
    const std::string at = where(module, name);
    Tensor value;
    if (!unsafe) {
        const Tensor current = parametrized_value(list);
        const Value result = parametrization->call(Args{current});
        check_like(result, current.dtype(), current.shape(), at, parametrization->name());
        value = result.tensor();
        if (auto* inverse = dynamic_cast<RightInverse*>(parametrization.get())) {
            check_like(inverse->right_inverse(value), current.dtype(), current.shape(), at,
                       "right_inverse of " + parametrization->name());
        }
    }
    list.push_back(std::move(parametrization));
    list.unsafe = list.unsafe || unsafe;
    forget_cached(&list);
    TensorSetAccess::set(module, name, value.defined() ? value : parametrized_value(list));
}

// The first parametrization of a parameter or buffer: the list takes the
// originals, the module's slot is emptied and the hook installed. Every check
// runs before the module changes; the original's values are put back if a
// check fails after right_inverse set them.
void first(Module& module, const std::string& name, std::shared_ptr<Module> parametrization,
           bool unsafe) {
    const std::string at = where(module, name);
    const auto [original, is_parameter] = find_tensor(module, name);
    const Tensor before = original.detach();  // shares the original's storage of now
    std::shared_ptr<ParametrizationList> list;
    std::shared_ptr<ModuleDict> dict = parametrizations_of(module);
    Tensor value;
    try {
        list = std::make_shared<ParametrizationList>(std::move(parametrization), original,
                                                     is_parameter, unsafe, at);
        if (!unsafe) {
            value = list->forward();
            check_like(value, before.dtype(), before.shape(), at, (*list)[0]->name());
        }
        // Refused when a parameter or buffer has the name.
        if (!dict) dict = module.register_module(kDictName, std::make_shared<ModuleDict>());
    } catch (...) {
        original.set_data(before);
        throw;
    }
    if (is_parameter)
        module.register_parameter(name, Tensor());
    else
        module.register_buffer(name, Tensor());
    dict->insert(name, list);
    install_hook(module, name, list);
    TensorSetAccess::set(module, name, value.defined() ? value : parametrized_value(*list));
}

// Takes `name` out of the module's ModuleDict. A ModuleDict cannot drop a key,
// so a new one with the other entries takes its place, or none when it was the last.
void drop_entry(Module& module, const ModuleDict& dict, const std::string& name) {
    if (dict.size() == 1) {
        module.register_module(kDictName, std::shared_ptr<Module>());
        return;
    }
    auto rest = std::make_shared<ModuleDict>();
    for (const std::string& key : dict.keys()) {
        if (key != name) rest->insert(key, dict.at(key));
    }
    module.register_module(kDictName, rest);
}

}  // namespace

// ---- ParametrizationList ----

ParametrizationList::ParametrizationList(std::shared_ptr<Module> parametrization,
                                         const Tensor& original, bool is_parameter, bool unsafe,
                                         const std::string& where)
    : unsafe(unsafe) {
    check(parametrization != nullptr,
          "register_parametrization: expected a parametrization module for {} (got nullptr)",
          where);
    Value inverted(original);
    if (auto* inverse = dynamic_cast<RightInverse*>(parametrization.get())) {
        NoGradGuard no_grad;
        inverted = inverse->right_inverse(original);
    }
    push_back(std::move(parametrization));
    register_originals(inverted, original, is_parameter, where);
}

// One tensor becomes `original`, the original itself with the new values (so an
// optimizer holding it keeps working); a tuple becomes original0, original1, ...
void ParametrizationList::register_originals(const Value& inverted, const Tensor& original,
                                             bool is_parameter, const std::string& where) {
    const bool requires_grad = original.requires_grad();
    auto keep = [&](const std::string& member, Tensor t) {
        if (is_parameter) {
            register_parameter(member, std::move(t), requires_grad);
        } else {
            t.requires_grad_(requires_grad);
            register_buffer(member, std::move(t));
        }
    };
    if (inverted.is_tensor()) {
        const Tensor& fresh = inverted.tensor();
        if (fresh.dtype() != original.dtype()) {
            fail(
                "register_parametrization: expected right_inverse to keep the dtype of {}, {}, "
                "when it returns one tensor (got {})",
                where, dtype_name(original.dtype()), dtype_name(fresh.dtype()));
        }
        is_tensor_ = true;
        if (fresh.impl() != original.impl()) original.set_data(fresh.detach());
        keep("original", original);
        return;
    }
    if (!inverted.is_list()) {
        fail(
            "register_parametrization: expected right_inverse to return a Tensor or a tuple of "
            "Tensors for {} (got {})",
            where, inverted.describe());
    }
    const Value::List& items = inverted.list();
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (!items[i].is_tensor()) {
            fail(
                "register_parametrization: expected right_inverse to return Tensors for {} (got {} "
                "at position {})",
                where, items[i].describe(), i);
        }
    }
    is_tensor_ = false;
    for (std::size_t i = 0; i < items.size(); ++i) {
        keep("original" + std::to_string(i), items[i].tensor().detach());
    }
}

Tensor ParametrizationList::forward() {
    Value x = (*this)[0]->call(Args(originals_.begin(), originals_.end()));
    for (std::size_t i = 1; i < size(); ++i) x = (*this)[i]->call(Args{x});
    if (!x.is_tensor()) {
        fail("ParametrizationList: expected the parametrizations to return a Tensor (got {})",
             x.describe());
    }
    return x.tensor();
}

Value ParametrizationList::forward_args(const Args& args, const Kwargs& kwargs) {
    check(args.empty() && kwargs.empty(),
          "ParametrizationList: forward() takes no arguments (got {} positional and {} keyword)",
          args.size(), kwargs.size());
    return forward();
}

void ParametrizationList::right_inverse(const Tensor& value) {
    NoGradGuard no_grad;
    Value x(value);
    for (std::size_t i = size(); i-- > 0;) {
        const std::shared_ptr<Module> p = (*this)[i];
        auto* inverse = dynamic_cast<RightInverse*>(p.get());
        check(inverse != nullptr,
              "ParametrizationList.right_inverse: expected every parametrization to implement "
              "right_inverse (got {} without one)",
              p->name());
        if (!x.is_tensor()) {
            fail("ParametrizationList.right_inverse: expected a Tensor for {} (got {})", p->name(),
                 x.describe());
        }
        x = inverse->right_inverse(x.tensor());
    }
    Value::List items;
    if (is_tensor_ && x.is_tensor())
        items = {x};
    else if (!is_tensor_ && x.is_list())
        items = x.list();
    if (items.size() != originals_.size() || items.empty()) {
        fail("ParametrizationList.right_inverse: expected {} (got {})",
             is_tensor_ ? std::string("a Tensor")
                        : fmt::format("a tuple of {} Tensors", originals_.size()),
             x.describe());
    }
    // Every value checked before any is set, so a refused one changes nothing.
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (!(items[i].is_tensor() && items[i].tensor().dtype() == originals_[i].dtype())) {
            fail("ParametrizationList.right_inverse: expected a {} Tensor for original {} (got {})",
                 dtype_name(originals_[i].dtype()), i, items[i].describe());
        }
    }
    for (std::size_t i = 0; i < items.size(); ++i)
        originals_[i].set_data(items[i].tensor().detach());
    forget_cached(this);
}

std::shared_ptr<Module> ParametrizationList::make_fresh() const {
    fail(
        "clone: a parametrized module cannot be cloned (the forward pre hook that computes its "
        "tensor is not copied); clone it before register_parametrization, or call "
        "remove_parametrizations first");
}

// Keeps originals_ in step with the registry: registration, functional_call's
// swaps, load_state_dict(assign=true).
void ParametrizationList::on_tensor_set(const std::string& member, const Tensor& value) {
    const std::string_view prefix = "original";
    if (!member.starts_with(prefix)) return;
    std::size_t index = 0;
    const char* digits = member.data() + prefix.size();
    const char* end = member.data() + member.size();
    if (digits != end) {
        auto [stop, error] = std::from_chars(digits, end, index);
        if (error != std::errc() || stop != end) return;
    }
    if (originals_.size() <= index) originals_.resize(index + 1);
    originals_[index] = value;
}

// ---- the functions ----

Module& register_parametrization(Module& module, const std::string& tensor_name,
                                 std::shared_ptr<Module> parametrization, bool unsafe) {
    check(parametrization != nullptr,
          "register_parametrization: expected a parametrization module for {} (got nullptr)",
          where(module, tensor_name));
    parametrization->train(module.is_training());
    if (auto list = list_of(module, tensor_name))
        append(module, tensor_name, *list, std::move(parametrization), unsafe);
    else
        first(module, tensor_name, std::move(parametrization), unsafe);
    return module;
}

bool is_parametrized(const Module& module, const std::string& tensor_name) {
    auto dict = parametrizations_of(module);
    if (!dict) return false;
    return tensor_name.empty() ? !dict->empty() : dict->contains(tensor_name);
}

Module& remove_parametrizations(Module& module, const std::string& tensor_name,
                                bool leave_parametrized) {
    const auto list = list_of(module, tensor_name);
    if (!list) {
        auto dict = parametrizations_of(module);
        fail(
            "remove_parametrizations: expected a parametrized tensor of {} (got '{}'; "
            "parametrized: {})",
            module.name(), tensor_name,
            dict && !dict->empty() ? fmt::format("'{}'", fmt::join(dict->keys(), "', '"))
                                   : std::string("none"));
    }
    // A parameter again if its originals are parameters, as the slot it came from.
    const bool is_parameter = !list->named_parameters("", false).empty();
    Tensor restored;
    if (list->is_tensor()) {
        restored = list->originals()[0];
        if (leave_parametrized) {
            NoGradGuard no_grad;
            restored.set_data(parametrized_value(*list).detach());
        }
    } else {
        check(leave_parametrized,
              "remove_parametrizations: leave_parametrized=false expects {} to be parametrized by "
              "one original tensor (got {})",
              where(module, tensor_name), list->ntensors());
        const Tensor value = parametrized_value(*list);  // with grad mode: it tells requires_grad
        restored = value.detach();
        restored.requires_grad_(value.requires_grad());
    }
    detail::ListAccess::hook(*list).remove();
    forget_cached(list.get());
    drop_entry(module, *parametrizations_of(module), tensor_name);
    if (is_parameter)
        module.register_parameter(tensor_name, restored, restored.requires_grad());
    else
        module.register_buffer(tensor_name, restored);
    return module;
}

// ---- CacheGuard ----

CacheGuard::CacheGuard() {
    std::lock_guard lock(cache().mutex);
    ++cache().guards;
}

CacheGuard::~CacheGuard() {
    std::map<const ParametrizationList*, Tensor> dropped;  // released after the lock
    std::lock_guard lock(cache().mutex);
    if (--cache().guards == 0) dropped.swap(cache().values);
}

}  // namespace xg::nn::utils::parametrize
