// Module hooks: their stored (normalised) signatures, the list that holds them,
// and the adapters that accept each form a user may write.
//
// Forward hooks come in PyTorch's three forms:
//   single tensor   fn(Module&, const Tensor& input)                      [pre]
//                   fn(Module&, const Tensor& input, const Tensor& output)
//   positional      fn(Module&, const Args& args)                         [pre]
//                   fn(Module&, const Args& args, const Value& output)
//   with_kwargs     fn(Module&, const Args& args, const Kwargs& kwargs)   [pre]
//                   fn(Module&, const Args&, const Kwargs&, const Value& output)
// A hook that returns nothing observes; one that returns a value replaces the
// input (pre hooks: a Tensor, Args, or a pair of Args and Kwargs; std::optional
// of either to decide per call) or the output (a Tensor or Value; None keeps it).
// A single-tensor hook on a call that is not one tensor in, one tensor out
// throws xg::Error saying so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "xgrad/error.hpp"
#include "xgrad/nn/value.hpp"
#include "xgrad/removable_handle.hpp"

namespace xg::nn {

class Module;

using CallInputs = std::pair<Args, Kwargs>;
// nullopt keeps the call's inputs.
using ForwardPreHook =
    std::function<std::optional<CallInputs>(Module&, const Args&, const Kwargs&)>;
// None keeps the output.
using ForwardHook = std::function<Value(Module&, const Args&, const Kwargs&, const Value& output)>;
// An empty vector keeps the gradients.
using BackwardPreHook =
    std::function<std::vector<Tensor>(Module&, const std::vector<Tensor>& grad_output)>;
using BackwardHook = std::function<std::vector<Tensor>(
    Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>& grad_output)>;
struct ForwardHookEntry {
    ForwardHook fn;
    bool always_call = false;
};

// An ordered list of hooks that handles can remove from after the fact.
template <class Fn>
class HookList {
public:
    RemovableHandle add(Fn fn, bool prepend) {
        std::uint64_t id = state_->next_id++;
        if (prepend)
            state_->hooks.insert(state_->hooks.begin(), {id, std::move(fn)});
        else
            state_->hooks.emplace_back(id, std::move(fn));
        return RemovableHandle([weak = std::weak_ptr<State>(state_), id] {
            if (auto state = weak.lock()) {
                std::erase_if(state->hooks, [id](const auto& entry) { return entry.first == id; });
            }
        });
    }
    bool empty() const { return state_->hooks.empty(); }
    // A snapshot, so a hook may remove itself (or others) while running.
    std::vector<std::pair<std::uint64_t, Fn>> snapshot() const { return state_->hooks; }

private:
    struct State {
        std::vector<std::pair<std::uint64_t, Fn>> hooks;
        std::uint64_t next_id = 0;
    };
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

namespace detail {

// The one tensor of a single-tensor call, for a single-tensor hook; xg::Error otherwise.
const Tensor& single_tensor(const Module& module, const char* hook, const char* what,
                            const Value& value);
const Tensor& single_tensor(const Module& module, const char* hook, const Args& args);
[[noreturn]] void wrong_hook_form(const char* registration, bool with_kwargs);

template <class F, class... A>
constexpr bool takes = std::is_invocable_v<F&, Module&, A...>;

// A pre hook's result as new inputs, or nullopt to keep them.
template <class R>
std::optional<CallInputs> pre_hook_result(R&& result, const Kwargs& kwargs) {
    using T = std::decay_t<R>;
    if constexpr (std::is_same_v<T, std::optional<CallInputs>>) {
        return std::forward<R>(result);
    } else if constexpr (std::is_same_v<T, CallInputs>) {
        return std::forward<R>(result);
    } else if constexpr (std::is_same_v<T, std::optional<Args>>) {
        if (!result) return std::nullopt;
        return CallInputs{std::move(*result), kwargs};
    } else if constexpr (std::is_same_v<T, Args>) {
        return CallInputs{std::forward<R>(result), kwargs};
    } else {  // one value (a Tensor): Python wraps it in a 1-tuple; None keeps
        Value value(std::forward<R>(result));
        if (value.is_none()) return std::nullopt;
        return CallInputs{Args{std::move(value)}, kwargs};
    }
}

template <class F>
ForwardPreHook make_forward_pre_hook(F fn, bool with_kwargs) {
    static_assert(
        takes<F, const Tensor&> || takes<F, const Args&> || takes<F, const Args&, const Kwargs&>,
        "a forward pre hook takes (Module&, const Tensor&), (Module&, const Args&) or "
        "(Module&, const Args&, const Kwargs&)");
    if (with_kwargs != takes<F, const Args&, const Kwargs&>) {
        wrong_hook_form("register_forward_pre_hook", with_kwargs);
    }
    return [fn = std::move(fn), with_kwargs](
               Module& m, const Args& args,
               const Kwargs& kwargs) mutable -> std::optional<CallInputs> {
        auto run = [&](auto&&... in) -> std::optional<CallInputs> {
            if constexpr (std::is_void_v<decltype(fn(m, in...))>) {
                fn(m, in...);
                return std::nullopt;
            } else {
                return pre_hook_result(fn(m, in...), kwargs);
            }
        };
        if constexpr (takes<F, const Args&, const Kwargs&>) {
            if (with_kwargs) return run(args, kwargs);
        }
        if constexpr (takes<F, const Tensor&>) {
            if (!with_kwargs) {
                const Tensor& input = single_tensor(m, "forward pre hook", args);
                return run(input);
            }
        } else if constexpr (takes<F, const Args&>) {
            if (!with_kwargs) return run(args);
        }
        wrong_hook_form("register_forward_pre_hook", with_kwargs);
    };
}

template <class F>
ForwardHook make_forward_hook(F fn, bool with_kwargs) {
    static_assert(takes<F, const Tensor&, const Tensor&> || takes<F, const Args&, const Value&> ||
                      takes<F, const Args&, const Kwargs&, const Value&>,
                  "a forward hook takes (Module&, const Tensor&, const Tensor&), (Module&, const "
                  "Args&, const Value&) or (Module&, const Args&, const Kwargs&, const Value&)");
    if (with_kwargs != takes<F, const Args&, const Kwargs&, const Value&>) {
        wrong_hook_form("register_forward_hook", with_kwargs);
    }
    return [fn = std::move(fn), with_kwargs](Module& m, const Args& args, const Kwargs& kwargs,
                                             const Value& output) mutable -> Value {
        auto run = [&](auto&&... in) -> Value {
            if constexpr (std::is_void_v<decltype(fn(m, in...))>) {
                fn(m, in...);
                return Value();
            } else {
                return Value(fn(m, in...));
            }
        };
        if constexpr (takes<F, const Args&, const Kwargs&, const Value&>) {
            if (with_kwargs) return run(args, kwargs, output);
        }
        if constexpr (takes<F, const Tensor&, const Tensor&>) {
            if (!with_kwargs) {
                const Tensor& input = single_tensor(m, "forward hook", args);
                return run(input, single_tensor(m, "forward hook", "output", output));
            }
        } else if constexpr (takes<F, const Args&, const Value&>) {
            if (!with_kwargs) return run(args, output);
        }
        wrong_hook_form("register_forward_hook", with_kwargs);
    };
}

// Adapts a void-returning backward hook to the normalised signature.
template <class R, class F, class... Args>
std::function<R(Args...)> adapt_hook(F fn) {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, Args...>>) {
        return [fn = std::move(fn)](Args... args) mutable -> R {
            fn(std::forward<Args>(args)...);
            return R();
        };
    } else {
        return std::function<R(Args...)>(std::move(fn));
    }
}

}  // namespace detail
}  // namespace xg::nn
