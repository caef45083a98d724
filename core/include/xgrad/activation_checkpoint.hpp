// Activation checkpointing, as PyTorch's torch.utils.checkpoint.checkpoint(fn,
// *inputs, use_reentrant=False): a segment of a network keeps only its inputs
// for backward, not the intermediate values its ops would save, and runs
// again when backward reaches it. One extra forward of the segment buys the
// memory those values took: through a stack of checkpointed blocks, only the
// blocks' inputs stay alive, plus one block's intermediates while it runs.
//
//   Tensor h = x;
//   for (auto& block : blocks)
//       h = xg::utils::checkpoint([&](const std::vector<Tensor>& in) { return (*block)(in[0]); },
//                                 {h});
//
// Semantics (PyTorch's non-reentrant variant):
// - Outputs, and the gradients of the inputs and of every parameter fn uses,
//   are bit for bit those of calling fn directly: with preserve_rng_state
//   (the default) the recomputation draws the same random numbers (dropout
//   masks) as the forward did, and backward leaves the caller's generator as
//   it found it. Without it the recomputation draws from the caller's stream.
// - Parameters fn captures (leaves that require grad, not passed as inputs)
//   get their .grad from the recomputation's own, nested backward pass, even
//   when no input requires grad; their hooks run there. A parameter used both
//   inside and outside fn gets the two parts added in .grad one after the other.
// - Every floating-point output of fn requires grad when some input does (it
//   has a CheckpointBackward node); integer outputs are returned as they are.
//   With no input requiring grad, forward runs fn once with grad mode on to
//   find out whether the outputs depend on a parameter, then drops that graph.
// - Under NoGradGuard this is just fn(inputs): nothing to recompute.
// - fn is recomputed once per backward pass, however many outputs it has, and
//   must return tensors of the same shapes and dtypes again.
// - A second backward through it needs retain_graph, as for any graph.
// - Tensors fn captures must be leaves (parameters) or have no history: the
//   nested pass would walk, and free, the graph of a captured activation on
//   its own. Pass such a tensor as an input instead.
// Not supported: double backward (create_graph) through a checkpoint, and
// PyTorch's early stop of the recomputation. A gradient asked for with
// autograd::grad rather than backward still accumulates into the .grad of the
// parameters fn uses (PyTorch leaves those alone).
#pragma once

#include <functional>
#include <vector>

#include "xgrad/tensor.hpp"

namespace xg::utils {

using CheckpointFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// fn(inputs), recorded as one node that recomputes fn in backward. Throws
// xg::Error for an undefined input or when fn returns no tensor.
std::vector<Tensor> checkpoint(CheckpointFn fn, const std::vector<Tensor>& inputs,
                               bool preserve_rng_state = true);

// The same for a fn returning one tensor.
Tensor checkpoint(std::function<Tensor(const std::vector<Tensor>&)> fn,
                  const std::vector<Tensor>& inputs, bool preserve_rng_state = true);

}  // namespace xg::utils
