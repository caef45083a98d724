// Calling a module: forward pre hooks, forward, forward hooks, and the wiring
// that lets full backward hooks see grad_output and grad_input
// (backward_hooks.hpp).
#include <string_view>
#include <tuple>

#include "backward_hooks.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/nn/module.hpp"

namespace xg::nn {

namespace {

struct GlobalHooks {
    HookList<ForwardPreHook> forward_pre;
    HookList<ForwardHookEntry> forward;
    HookList<BackwardPreHook> backward_pre;
    HookList<BackwardHook> backward;
};

GlobalHooks& global_hooks() {
    static GlobalHooks hooks;
    return hooks;
}

// Global hooks first, then the module's own, as PyTorch runs them.
template <class Fn>
std::vector<std::pair<std::uint64_t, Fn>> both(const HookList<Fn>& global,
                                               const HookList<Fn>& local) {
    auto all = global.snapshot();
    auto own = local.snapshot();
    all.insert(all.end(), own.begin(), own.end());
    return all;
}

// Anomaly mode only: the modules being called on this thread, outermost first,
// so nodes can record a path like "FeedForward.layer1".
thread_local std::vector<const Module*> calling;

// A module's segment of that path: its name in the calling parent, else its class.
std::string path_segment(const Module& module) {
    if (!calling.empty()) {
        for (const auto& [member, child] : calling.back()->named_children()) {
            if (child.get() == &module) return member;
        }
    }
    return module.name();
}

// forward, then the forward hooks, each of which may replace the output.
// always_call hooks also run when forward or a hook throws; their own errors
// must not mask the first one, which propagates.
Value forward_with_hooks(Module& module, const Args& args, const Kwargs& kwargs,
                         const std::vector<std::pair<std::uint64_t, ForwardHookEntry>>& hooks) {
    std::vector<bool> called(hooks.size(), false);
    Value output;
    try {
        output = module.forward_args(args, kwargs);
        for (std::size_t i = 0; i < hooks.size(); ++i) {
            called[i] = true;
            if (Value replaced = hooks[i].second.fn(module, args, kwargs, output);
                !replaced.is_none()) {
                output = std::move(replaced);
            }
        }
    } catch (...) {
        for (std::size_t i = 0; i < hooks.size(); ++i) {
            if (called[i] || !hooks[i].second.always_call) continue;
            try {
                hooks[i].second.fn(module, args, kwargs, output);
            } catch (...) {
            }
        }
        throw;
    }
    return output;
}

// Set while the default forward hands its tensor to the default forward_args,
// which would hand it straight back: then neither is overridden.
thread_local const Module* defaulted_forward = nullptr;

struct AnomalyCall {
    explicit AnomalyCall(const Module& module) : scope(path_segment(module)) {
        calling.push_back(&module);
    }
    ~AnomalyCall() { calling.pop_back(); }
    autograd::AnomalyScope scope;
};

}  // namespace

namespace detail {
RemovableHandle add_global_forward_pre_hook(ForwardPreHook fn) {
    return global_hooks().forward_pre.add(std::move(fn), false);
}
RemovableHandle add_global_forward_hook(ForwardHook fn, bool always_call) {
    return global_hooks().forward.add({std::move(fn), always_call}, false);
}
RemovableHandle add_global_backward_pre_hook(BackwardPreHook fn) {
    return global_hooks().backward_pre.add(std::move(fn), false);
}
RemovableHandle add_global_backward_hook(BackwardHook fn) {
    return global_hooks().backward.add(std::move(fn), false);
}
}  // namespace detail

bool Module::has_hooks() const {
    const GlobalHooks& global = global_hooks();
    return !(forward_pre_hooks_.empty() && forward_hooks_.empty() && backward_pre_hooks_.empty() &&
             backward_hooks_.empty() && global.forward_pre.empty() && global.forward.empty() &&
             global.backward_pre.empty() && global.backward.empty());
}

Tensor Module::forward(const Tensor& input) {
    struct Restore {
        const Module* previous = std::exchange(defaulted_forward, nullptr);
        ~Restore() { defaulted_forward = previous; }
    } restore;
    defaulted_forward = this;
    return result_as<Tensor>(*this, forward_args(Args{input}, {}));
}

Value Module::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"input"};
    if (defaulted_forward == this) fail("{}: forward is not implemented", name());
    return invoke_forward<Module>(*this, &Module::forward, signature, args, kwargs);
}

Tensor Module::operator()(const Tensor& input) {
    const bool no_hooks = !has_hooks();
    if (autograd::is_anomaly_enabled()) {
        AnomalyCall call(*this);
        return no_hooks ? forward(input) : result_as<Tensor>(*this, call_with_hooks({input}, {}));
    }
    if (no_hooks) return forward(input);  // the fast path costs nothing extra
    return result_as<Tensor>(*this, call_with_hooks({input}, {}));
}

Value Module::call(Args args, Kwargs kwargs) {
    const bool no_hooks = !has_hooks();
    if (autograd::is_anomaly_enabled()) {
        AnomalyCall call(*this);
        return no_hooks ? forward_args(args, kwargs)
                        : call_with_hooks(std::move(args), std::move(kwargs));
    }
    if (no_hooks) return forward_args(args, kwargs);
    return call_with_hooks(std::move(args), std::move(kwargs));
}

// PyTorch's order: pre hooks, the input side of backward hooks, forward,
// forward hooks, the output side.
Value Module::call_with_hooks(Args args, Kwargs kwargs) {
    GlobalHooks& global = global_hooks();
    for (auto& [id, hook] : both(global.forward_pre, forward_pre_hooks_)) {
        if (auto replaced = hook(*this, args, kwargs))
            std::tie(args, kwargs) = std::move(*replaced);
    }

    std::shared_ptr<detail::BackwardCall> call;
    if (GradMode::is_enabled() && !(backward_hooks_.empty() && backward_pre_hooks_.empty() &&
                                    global.backward.empty() && global.backward_pre.empty())) {
        call = std::make_shared<detail::BackwardCall>(
            *this, both(global.backward_pre, backward_pre_hooks_),
            both(global.backward, backward_hooks_));
        call->wrap_inputs(args);
    }

    Value output = forward_with_hooks(*this, args, kwargs, both(global.forward, forward_hooks_));
    if (call) call->wrap_outputs(output);
    return output;
}

namespace detail {

const Tensor& single_tensor(const Module& module, const char* hook, const char* what,
                            const Value& value) {
    static const Tensor undefined;
    if (value.is_none()) return undefined;  // an undefined input, or no output: forward threw
    if (!value.is_tensor()) {
        fail(
            "{}: a {} taking one Tensor {} was given {}; register one taking (Module&, const "
            "Args&{}) for calls with other arguments",
            module.name(), hook, what, value.describe(),
            std::string_view(hook) == "forward hook" ? ", const Value&" : "");
    }
    return value.tensor();
}

const Tensor& single_tensor(const Module& module, const char* hook, const Args& args) {
    if (args.size() == 1) return single_tensor(module, hook, "input", args.front());
    return single_tensor(module, hook, "input", Value(args));  // throws: not one tensor
}

void wrong_hook_form(const char* registration, bool with_kwargs) {
    if (with_kwargs) {
        fail("{}: with_kwargs = true expects a hook that also takes (const Args&, const Kwargs&)",
             registration);
    }
    fail("{}: a hook taking Kwargs needs with_kwargs = true", registration);
}

}  // namespace detail

}  // namespace xg::nn
