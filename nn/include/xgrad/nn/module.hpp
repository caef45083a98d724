// xg::nn::Module: PyTorch's torch.nn.Module in C++.
//
// A module owns three insertion-ordered registries: parameters, buffers and
// child modules. Everything else (traversal, state_dict, modes, conversion,
// printing) is a walk over those registries, so the order users see is always
// registration order, exactly as in PyTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "xgrad/nn/hooks.hpp"
#include "xgrad/nn/value.hpp"
#include "xgrad/removable_handle.hpp"
#include "xgrad/state_dict.hpp"
#include "xgrad/tensor.hpp"

namespace xg::nn {

class Module;
namespace detail {
class TensorSwap;  // xg::func::functional_call's swap of tensors for one call
}

struct IncompatibleKeys {
    std::vector<std::string> missing_keys;
    std::vector<std::string> unexpected_keys;
};

using StateDictPreHook = std::function<void(Module&, const std::string& prefix, bool keep_vars)>;
using StateDictPostHook =
    std::function<void(Module&, StateDict& state_dict, const std::string& prefix)>;
using LoadStateDictPreHook =
    std::function<void(Module&, StateDict& state_dict, const std::string& prefix)>;
using LoadStateDictPostHook = std::function<void(Module&, IncompatibleKeys& incompatible_keys)>;

// Name -> value in registration order; re-inserting a name keeps its position.
template <class V>
class OrderedDict {
public:
    V* find(const std::string& key) {
        for (auto& [k, v] : items_) {
            if (k == key) return &v;
        }
        return nullptr;
    }
    const V* find(const std::string& key) const {
        return const_cast<OrderedDict*>(this)->find(key);
    }
    V& insert_or_assign(const std::string& key, V value) {
        if (V* existing = find(key)) return *existing = std::move(value);
        return items_.emplace_back(key, std::move(value)).second;
    }
    auto begin() { return items_.begin(); }
    auto end() { return items_.end(); }
    auto begin() const { return items_.begin(); }
    auto end() const { return items_.end(); }
    auto rbegin() const { return items_.rbegin(); }
    auto rend() const { return items_.rend(); }
    std::size_t size() const { return items_.size(); }

private:
    std::vector<std::pair<std::string, V>> items_;
};

class Module : public std::enable_shared_from_this<Module> {
public:
    Module() = default;
    virtual ~Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;

    // ---- running ----
    // A single-tensor module overrides this forward. A module whose forward
    // takes other arguments overrides forward_args instead (see value.hpp);
    // this one then hands its tensor to forward_args.
    virtual Tensor forward(const Tensor& input);
    // forward's parameters bound to a call's values, and forward run. The
    // default binds one tensor, named "input", to forward(const Tensor&).
    virtual Value forward_args(const Args& args, const Kwargs& kwargs);

    // A call: forward pre hooks, forward, forward hooks, and the wiring for
    // backward hooks; with no hooks, just forward.
    Tensor operator()(const Tensor& input);
    // A call with any arguments, as PyTorch's module(*args, **kwargs), for a
    // module held as std::shared_ptr<Module>: (*m)(q, k, v) or
    // m->call({q, k, v}, {{"need_weights", false}}). A module with a typed
    // forward gives itself a typed operator() with call_as.
    template <class... A>
    Value operator()(const A&... args) {
        return call(Args{Value(args)...});
    }
    Value call(Args args, Kwargs kwargs = {});

    // ---- registration ----
    Tensor& register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
    Tensor& register_buffer(const std::string& name, Tensor value, bool persistent = true);
    template <class M>
    std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
        register_child(name, module);
        return module;
    }
    template <class M>
    std::shared_ptr<M> add_module(const std::string& name, std::shared_ptr<M> module) {
        return register_module(name, std::move(module));
    }

    // ---- traversal (registration order; prefixes joined with '.') ----
    std::vector<Tensor> parameters(bool recurse = true) const;
    std::vector<std::pair<std::string, Tensor>> named_parameters(
        const std::string& prefix = "", bool recurse = true, bool remove_duplicate = true) const;
    std::vector<Tensor> buffers(bool recurse = true) const;
    std::vector<std::pair<std::string, Tensor>> named_buffers(const std::string& prefix = "",
                                                              bool recurse = true,
                                                              bool remove_duplicate = true) const;
    std::vector<std::shared_ptr<Module>> children() const;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
    // Self first; for a module not owned by a shared_ptr, by a handle that does not own it.
    std::vector<std::shared_ptr<Module>> modules() const;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules(
        const std::string& prefix = "", bool remove_duplicate = true) const;

    // ---- paths ----
    std::shared_ptr<Module> get_submodule(const std::string& target);
    void set_submodule(const std::string& target, std::shared_ptr<Module> module);
    Tensor get_parameter(const std::string& target);
    Tensor get_buffer(const std::string& target);

    // ---- modes and gradients ----
    Module& train(bool mode = true);
    Module& eval() { return train(false); }
    bool is_training() const { return training_; }
    Module& requires_grad_(bool requires_grad = true);
    void zero_grad(bool set_to_none = true);
    Module& apply(const std::function<void(Module&)>& fn);

    // ---- state ----
    StateDict state_dict(const std::string& prefix = "", bool keep_vars = false);
    IncompatibleKeys load_state_dict(const StateDict& state_dict, bool strict = true,
                                     bool assign = false);
    // State that is neither parameter nor buffer, saved under "<prefix>_extra_state.<key>".
    // A module has extra state exactly when it overrides get_extra_state.
    virtual StateDict get_extra_state() const;
    virtual void set_extra_state(const StateDict& state);

    // ---- hooks (their forms: hooks.hpp) ----
    template <class F>
    RemovableHandle register_forward_pre_hook(F fn, bool prepend = false,
                                              bool with_kwargs = false) {
        return forward_pre_hooks_.add(detail::make_forward_pre_hook(std::move(fn), with_kwargs),
                                      prepend);
    }
    // always_call hooks also run when forward throws (then the error propagates).
    template <class F>
    RemovableHandle register_forward_hook(F fn, bool prepend = false, bool always_call = false,
                                          bool with_kwargs = false) {
        auto hook = detail::make_forward_hook(std::move(fn), with_kwargs);
        return forward_hooks_.add({std::move(hook), always_call}, prepend);
    }
    template <class F>
    RemovableHandle register_full_backward_pre_hook(F fn, bool prepend = false) {
        return backward_pre_hooks_.add(
            detail::adapt_hook<std::vector<Tensor>, F, Module&, const std::vector<Tensor>&>(
                std::move(fn)),
            prepend);
    }
    template <class F>
    RemovableHandle register_full_backward_hook(F fn, bool prepend = false) {
        return backward_hooks_.add(
            detail::adapt_hook<std::vector<Tensor>, F, Module&, const std::vector<Tensor>&,
                               const std::vector<Tensor>&>(std::move(fn)),
            prepend);
    }
    // PyTorch's older module backward hook, whose grad_input is that of the last
    // op inside forward rather than of the module's inputs: refused with an
    // xg::Error that points to register_full_backward_hook, as PyTorch's own
    // documentation does.
    template <class F>
    RemovableHandle register_backward_hook(F&&) {
        refuse_legacy_backward_hook();
    }
    // Whether calling this module runs any forward or backward hook, its own or
    // a global one. FeedForward fuses its middle only when its parts have none.
    bool has_hooks() const;

    RemovableHandle register_state_dict_pre_hook(StateDictPreHook fn, bool prepend = false) {
        return state_dict_pre_hooks_.add(std::move(fn), prepend);
    }
    RemovableHandle register_state_dict_post_hook(StateDictPostHook fn, bool prepend = false) {
        return state_dict_post_hooks_.add(std::move(fn), prepend);
    }
    RemovableHandle register_load_state_dict_pre_hook(LoadStateDictPreHook fn,
                                                      bool prepend = false) {
        return load_pre_hooks_.add(std::move(fn), prepend);
    }
    RemovableHandle register_load_state_dict_post_hook(LoadStateDictPostHook fn,
                                                       bool prepend = false) {
        return load_post_hooks_.add(std::move(fn), prepend);
    }

    // ---- conversion ----
    Module& to(Dtype dtype);
    Module& to(const std::string& device);  // "cpu" only
    // Module.float() and Module.double(), whose names are C++ keywords.
    Module& float_() { return to(kFloat32); }
    Module& double_() { return to(kFloat64); }
    // Module.half() and Module.bfloat16(): floating-point parameters, buffers
    // and gradients to 16 bits; the forward then computes in float32 inside
    // each op and rounds its results, as PyTorch's CPU kernels do.
    Module& half() { return to(kFloat16); }
    Module& bfloat16() { return to(kBFloat16); }
    Module& cpu() { return to(std::string("cpu")); }
    Module& cuda() { return to(std::string("cuda")); }
    Module& xpu() { return to(std::string("xpu")); }
    Module& ipu() { return to(std::string("ipu")); }
    Module& mtia() { return to(std::string("mtia")); }
    // Module.type(dst_type): every parameter and buffer cast to dtype, integer
    // ones included (to(dtype) converts only floating-point tensors).
    Module& type(Dtype dtype);
    // Module.share_memory_(): PyTorch moves storages into shared memory so that
    // worker processes see them. xgrad's workers are threads of one process,
    // which see every storage already: there is nothing to move.
    Module& share_memory_() { return *this; }
    // Module.compile(): PyTorch compiles forward with torch.compile. xgrad runs
    // eagerly and picks its fused kernels (FeedForward's middle, LayerNorm) at
    // call time, so there is nothing to compile; calls behave as without it.
    void compile() {}
    Module& to_empty();  // fresh uninitialised storage of the same shapes
    // A deep copy: same class, same values, no shared tensors, no hooks. A
    // module held twice (Sequential{lin, tanh, lin}) is one module in the copy,
    // as with Python's copy.deepcopy.
    std::shared_ptr<Module> clone() const;

    // ---- printing ----
    std::string name() const;  // the class name, like type(self).__name__
    virtual std::string extra_repr() const { return ""; }
    std::string repr() const;

protected:
    // The typed call behind a module's own operator(): `(*attn)(q, k, v)` as R.
    template <class R, class... A>
    R call_as(const A&... args) {
        return result_as<R>(*this, call(Args{Value(args)...}));
    }

    // A freshly constructed module of the same class and configuration; clone()
    // then copies values into it. Built-in layers override this.
    virtual std::shared_ptr<Module> make_fresh() const;

    // Runs before `child` is registered under `member`, whether new or a
    // replacement (register_module, set_submodule, clone). A module that keeps
    // typed members for its children overrides it to keep them in step with
    // the registry, and throws to refuse a child; then nothing has changed.
    virtual void on_child_set(const std::string& member, const std::shared_ptr<Module>& child);

    // Runs after `value` is registered as the parameter or buffer `member`
    // (register_parameter, register_buffer, and clone() re-tying a shared
    // parameter). A module that keeps typed handles to its tensors (Linear's
    // `weight`) overrides it to point them at the registered tensor, so tying
    // `b->register_parameter("weight", a->weight)` ties what forward uses too.
    virtual void on_tensor_set(const std::string& member, const Tensor& value);

    // Every registered child in order, repeats and None children included
    // (named_children() lists a module registered twice once, as PyTorch's
    // does; an indexed container counts both entries).
    const OrderedDict<std::shared_ptr<Module>>& registered_children() const { return children_; }

private:
    // The three registries a member name can live in (names are unique across them).
    enum class MemberKind { Parameter, Buffer, Child };
    void register_child(const std::string& name, std::shared_ptr<Module> module);
    [[noreturn]] void refuse_legacy_backward_hook() const;
    // Casts the parameters and buffers (and their grads) to dtype in place:
    // the floating-point ones, or all of them.
    void convert_tensors(Dtype dtype, bool floating_only);
    void check_name(const std::string& name, const char* op, MemberKind kind) const;
    // Puts `value` in the parameter or buffer slot `member` as it is (leaf or
    // not, requires_grad untouched), tells on_tensor_set, and returns the tensor
    // it replaced. Not a registration, so no checks: only detail::TensorSwap
    // calls it, to swap tensors in for one functional_call and back.
    friend class detail::TensorSwap;
    Tensor swap_tensor(const std::string& member, Tensor value);

    // Where a dotted path leads: a module, and the handle its parent holds it
    // by (for "", this module and its own handle, empty when no shared_ptr owns it).
    struct PathEnd {
        Module* module;
        std::shared_ptr<Module> handle;
    };
    // Walks "a.b.c" child by child; the error names the first part that is not a module.
    PathEnd resolve_path(const std::string& path);
    // "a.b.c" -> (the module at "a.b", "c"); "c" -> (this module, "c").
    std::pair<Module*, std::string> resolve_owner(const std::string& target);

    struct CloneMemo;  // source module or tensor -> its copy, so what is shared stays shared
    std::shared_ptr<Module> clone_with(CloneMemo& memo) const;
    static void copy_values(const Module& from, Module& to, CloneMemo& memo);

    // state_dict and load_state_dict (module_state.cpp). A load is planned,
    // applied, and rolled back if it fails after all, so a failed load changes nothing.
    std::optional<StateDict> extra_state_if_any() const;  // nullopt unless overridden
    std::vector<std::pair<std::string, Tensor>> saved_members() const;
    void save_into(StateDict& destination, const std::string& prefix, bool keep_vars);
    struct LoadPlan;
    struct LoadUndo;
    void plan_load(LoadPlan& plan, StateDict& state_dict, const std::string& prefix);
    static LoadUndo apply_load(const LoadPlan& plan, bool assign, bool keep_replaced);
    static void rollback_load(const LoadUndo& undo);

    Value call_with_hooks(Args args, Kwargs kwargs);

    bool training_ = true;
    OrderedDict<Tensor> parameters_;
    OrderedDict<Tensor> buffers_;
    std::vector<std::string> non_persistent_;
    OrderedDict<std::shared_ptr<Module>> children_;

    HookList<ForwardPreHook> forward_pre_hooks_;
    HookList<ForwardHookEntry> forward_hooks_;
    HookList<BackwardPreHook> backward_pre_hooks_;
    HookList<BackwardHook> backward_hooks_;
    HookList<StateDictPreHook> state_dict_pre_hooks_;
    HookList<StateDictPostHook> state_dict_post_hooks_;
    HookList<LoadStateDictPreHook> load_pre_hooks_;
    HookList<LoadStateDictPostHook> load_post_hooks_;
};

std::ostream& operator<<(std::ostream& out, const Module& module);

// torch.__future__'s switch between setting .data and torch.utils.swap_tensors
// when a module converts its parameters (to, type, to_empty) or loads a state
// dict. Either way PyTorch keeps each parameter object, and so does xgrad: a
// conversion changes the tensor every handle shares (Tensor::set_data), which
// is what both of PyTorch's paths give. The switch is kept and read back for
// code written against it; xgrad's results are the same with either value.
void set_swap_module_params_on_conversion(bool value);
bool get_swap_module_params_on_conversion();

// Hooks for every module, run before each module's own.
namespace detail {
RemovableHandle add_global_forward_pre_hook(ForwardPreHook fn);
RemovableHandle add_global_forward_hook(ForwardHook fn, bool always_call);
RemovableHandle add_global_backward_pre_hook(BackwardPreHook fn);
RemovableHandle add_global_backward_hook(BackwardHook fn);
}  // namespace detail

template <class F>
RemovableHandle register_module_forward_pre_hook(F fn, bool with_kwargs = false) {
    return detail::add_global_forward_pre_hook(
        detail::make_forward_pre_hook(std::move(fn), with_kwargs));
}
template <class F>
RemovableHandle register_module_forward_hook(F fn, bool always_call = false,
                                             bool with_kwargs = false) {
    return detail::add_global_forward_hook(detail::make_forward_hook(std::move(fn), with_kwargs),
                                           always_call);
}
template <class F>
RemovableHandle register_module_full_backward_pre_hook(F fn) {
    return detail::add_global_backward_pre_hook(
        detail::adapt_hook<std::vector<Tensor>, F, Module&, const std::vector<Tensor>&>(
            std::move(fn)));
}
template <class F>
RemovableHandle register_module_full_backward_hook(F fn) {
    return detail::add_global_backward_hook(
        detail::adapt_hook<std::vector<Tensor>, F, Module&, const std::vector<Tensor>&,
                           const std::vector<Tensor>&>(std::move(fn)));
}

}  // namespace xg::nn
