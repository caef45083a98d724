// Calling a module: forward pre hooks, forward, forward hooks, and the two
// identity nodes that let full backward hooks see grad_output and grad_input.
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

// A hook's replacement must line up with what it replaces: as many gradients
// (PyTorch's words, naming the module too), each of the same shape and dtype
// where both are defined (PyTorch's engine refuses the same when it validates
// the hook node's outputs).
void check_replacement(const Module& module, const char* hook, const char* grads,
                       const std::vector<Tensor>& replaced, const std::vector<Tensor>& original) {
    check(replaced.size() == original.size(),
          "{}: {} returned an invalid number of {}, got {}, but expected {}", module.name(), hook,
          grads, replaced.size(), original.size());
    for (std::size_t i = 0; i < original.size(); ++i) {
        const Tensor &expected = original[i], &got = replaced[i];
        if (!expected.defined() || !got.defined()) continue;
        check(got.dtype() == expected.dtype() && got.shape() == expected.shape(),
              "{}: {} has changed {} {} (was {} {} got {} {})", module.name(), hook, grads, i,
              dtype_name(expected.dtype()), shape_str(expected.shape()), dtype_name(got.dtype()),
              shape_str(got.shape()));
    }
}

// What one call of a module shares between its output node (which sees
// grad_output first) and its input node (which later sees grad_input).
struct BackwardCall {
    std::weak_ptr<Module> weak_module;
    Module* module = nullptr;
    bool owned = false;  // whether the module lives in a shared_ptr we can watch
    bool input_requires_grad = false;
    std::vector<std::pair<std::uint64_t, BackwardPreHook>> pre_hooks;
    std::vector<std::pair<std::uint64_t, BackwardHook>> hooks;
    std::vector<Tensor> grad_output;

    Module* alive() const { return owned && weak_module.expired() ? nullptr : module; }

    // At the output node: backward pre hooks may replace grad_output, which is
    // kept for the backward hooks.
    std::vector<Tensor> on_grad_output(const Tensor& g) {
        std::vector<Tensor> grads{g};
        if (Module* m = alive()) {
            for (auto& [id, hook] : pre_hooks) {
                if (auto replaced = hook(*m, grads); !replaced.empty()) {
                    check_replacement(*m, "backward pre hook", "grad_output", replaced, grads);
                    grads = std::move(replaced);
                }
            }
        }
        grad_output = grads;
        // No input node will fire: report an undefined grad_input here, as PyTorch does.
        if (!input_requires_grad) on_grad_input({Tensor()});
        return std::vector<Tensor>{grads.at(0)};
    }

    // At the input node: backward hooks see grad_input and grad_output, and may replace grad_input.
    std::vector<Tensor> on_grad_input(std::vector<Tensor> grad_input) {
        Module* m = alive();
        if (m == nullptr) return grad_input;
        for (auto& [id, hook] : hooks) {
            if (auto replaced = hook(*m, grad_input, grad_output); !replaced.empty()) {
                check_replacement(*m, "backward hook", "grad_input", replaced, grad_input);
                grad_input = std::move(replaced);
            }
        }
        return grad_input;
    }
};

constexpr const char* kHookNode = "BackwardHookFunctionBackward";

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
Tensor forward_with_hooks(Module& module, const Tensor& input,
                          const std::vector<std::pair<std::uint64_t, ForwardHookEntry>>& hooks) {
    std::vector<bool> called(hooks.size(), false);
    Tensor output;
    try {
        output = module.forward(input);
        for (std::size_t i = 0; i < hooks.size(); ++i) {
            called[i] = true;
            if (Tensor replaced = hooks[i].second.fn(module, input, output); replaced.defined()) {
                output = replaced;
            }
        }
    } catch (...) {
        for (std::size_t i = 0; i < hooks.size(); ++i) {
            if (called[i] || !hooks[i].second.always_call) continue;
            try {
                hooks[i].second.fn(module, input, output);
            } catch (...) {
            }
        }
        throw;
    }
    return output;
}

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

Tensor Module::operator()(const Tensor& input) {
    const bool no_hooks = !has_hooks();
    if (autograd::is_anomaly_enabled()) {
        AnomalyCall call(*this);
        return no_hooks ? forward(input) : call_with_hooks(input);
    }
    if (no_hooks) return forward(input);  // the fast path costs nothing extra
    return call_with_hooks(input);
}

Tensor Module::call_with_hooks(const Tensor& original_input) {
    GlobalHooks& global = global_hooks();
    Tensor input = original_input;
    for (auto& [id, hook] : both(global.forward_pre, forward_pre_hooks_)) {
        if (Tensor replaced = hook(*this, input); replaced.defined()) input = replaced;
    }

    std::shared_ptr<BackwardCall> call;
    if (GradMode::is_enabled() && !(backward_hooks_.empty() && backward_pre_hooks_.empty() &&
                                    global.backward.empty() && global.backward_pre.empty())) {
        call = std::make_shared<BackwardCall>();
        call->weak_module = weak_from_this();
        call->owned = !call->weak_module.expired();
        call->module = this;
        call->pre_hooks = both(global.backward_pre, backward_pre_hooks_);
        call->hooks = both(global.backward, backward_hooks_);
        call->input_requires_grad = input.defined() && input.requires_grad();
        if (call->input_requires_grad && !call->hooks.empty()) {
            // The gradient reaching this node is grad_input.
            input =
                autograd::make_result(input.detach(), kHookNode, {input},
                                      [call](const Tensor& g) { return call->on_grad_input({g}); });
        }
    }

    Tensor output = forward_with_hooks(*this, input, both(global.forward, forward_hooks_));

    if (call && output.defined() && output.requires_grad()) {
        // The gradient reaching this node is grad_output.
        output = autograd::make_result(output.detach(), kHookNode, {output},
                                       [call](const Tensor& g) { return call->on_grad_output(g); });
    }
    return output;
}

}  // namespace xg::nn
