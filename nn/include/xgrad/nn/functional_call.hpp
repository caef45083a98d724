// xg::func::functional_call: torch.func.functional_call, a module called with
// some of its parameters and buffers replaced by given tensors for one call.
//
//   auto out = xg::func::functional_call(*model, {{"fc1.weight", w}, {"fc1.bias", b}}, x);
//
// The given tensors are used as they are, not copied: the output's gradients
// reach them and not the module's own parameters, so per-sample gradients and
// meta-learning (MAML's fast weights `w - lr * g`, which are not leaves) work.
// Names are the dotted paths named_parameters and named_buffers give.
//
// As in PyTorch the swap is on the module itself: code that reads the module
// during the call (its hooks, get_parameter, parameters()) sees the given
// tensors, and one module must not be called from two threads at once.
#pragma once

#include <concepts>

#include "xgrad/nn/module.hpp"
#include "xgrad/nn/value.hpp"
#include "xgrad/state_dict.hpp"

namespace xg::func {

// Calls `module` as module.call(args, kwargs) (hooks included), with each
// parameter or buffer named in `tensors` replaced by the given tensor; every
// original is back in its place afterwards, also when the call throws.
//  - A key that names no parameter or buffer of `module` throws xg::Error, and
//    with `strict` so does a parameter or buffer left out; keys are checked
//    before anything is swapped.
//  - Tied tensors (one Tensor under two names, or one module under two paths)
//    are replaced together when one of their names is given, as PyTorch's
//    tie_weights=True; different tensors for two names of one tie throw.
nn::Value functional_call(nn::Module& module, const StateDict& tensors, const nn::Args& args = {},
                          const nn::Kwargs& kwargs = {}, bool strict = false);

// The call with positional arguments, as module(x) or module(q, k, v).
template <class... A>
requires(sizeof...(A) > 0 && (std::constructible_from<nn::Value, const A&> && ...)) nn::Value
    functional_call(nn::Module& module, const StateDict& tensors, const A&... args) {
    return functional_call(module, tensors, nn::Args{nn::Value(args)...});
}

}  // namespace xg::func
