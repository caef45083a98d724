// xg::inspect::trace_nonfinite: Hugging Face's DebugUnderflowOverflow for
// xgrad. Hooks on every module check each forward output and each backward
// gradient; the first Inf or NaN throws an xg::Error naming the module path,
// the phase and the last `frames` modules' abs-min/abs-max of inputs, outputs
// and weights:
//
//   trace_nonfinite: Inf/NaN in the forward output of 'ffn.layer2' (Linear)
//   last 4 frames, oldest first:
//    abs min  abs max metadata
//                     ffn.layer1 Linear (forward)
//   1.02e-03 4.99e-01 weight
//   ...
//   2.50e-01      inf output
//
// Forward: a module's outputs are checked when its call returns (after any
// forward hooks registered before the tracer), so the first module named is
// the innermost one whose output is bad. Backward: each module's grad_output
// is checked before its backward runs and its grad_input after, so the module
// named is the first, in backward order, that received or produced a bad
// gradient ("the backward grad_output[0] of ...", "the backward grad_input[0] of ...").
//
// Cost: one pass over each output and gradient, which skips a tensor the
// previous check already passed (a container returns its last child's
// output). The statistics are computed only when the error is raised: a frame
// keeps handles (detached: no copy, no graph) to its tensors, so the last
// `frames` calls' values stay alive until overwritten or until remove().
#pragma once

#include <cstddef>

#include "xgrad/nn.hpp"
#include "xgrad/removable_handle.hpp"

namespace xg::inspect {

// The handle removes every hook it installed and drops the frames; backward
// hooks already wired into a graph do nothing after that. frames >= 1.
RemovableHandle trace_nonfinite(nn::Module& model, std::size_t frames = 21);

}  // namespace xg::inspect
