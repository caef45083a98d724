// Summing gradients, and the one aliasing rule every backward relies on.
//
// The rule: a backward closure treats grad_output and what it saved as
// read-only. It returns fresh arrays, or tensors it was handed (grad_output
// itself, even for several inputs). Only the two functions below write into a
// gradient, and only into a buffer that no other handle can see, so no op has
// to care in which order it reads its inputs. Fresh arrays come from the buffer
// cache (buffer_cache.hpp), which recycles the buffers each node drops.
#pragma once

#include "xgrad/tensor.hpp"

namespace xg::autograd {

// The pending gradient of a node in a backward pass: pending += g. Adds in
// place when pending is the sole handle to its storage, else makes a new sum;
// an empty `pending` takes g itself when g is the sole handle, else a copy.
void accumulate_pending(Tensor& pending, Tensor g);

// A leaf's .grad += g, in place as PyTorch's AccumulateGrad does (a handle the
// user holds to .grad sees the sum); an undefined .grad takes g as for pending.
void accumulate_grad(Tensor& grad, Tensor g);

}  // namespace xg::autograd
