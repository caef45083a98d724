// Summing gradients, and the aliasing rule the engine relies on.
//
// The rule: only the two functions below write into a gradient the engine
// holds, and only into a buffer that no other handle can see; anything else
// makes a new sum. A backward closure may return tensors it was handed
// (grad_output itself, even for several inputs): accumulate copies before it
// would write into a shared buffer. Fresh arrays come from the buffer cache
// (buffer_cache.hpp), which recycles the buffers each node drops; when a
// gradient may be written over a buffer the engine handed a backward is
// decided in one place, grad_buffers.hpp.
#pragma once

#include "xgrad/tensor.hpp"

namespace xg::autograd {

// The pending gradient of a node in a backward pass: pending += g. Adds in
// place when pending is the sole handle to its storage, else makes a new sum;
// an empty `pending` takes g itself, sharing its buffer when others hold it (a
// shared pending is only ever summed out of place, and no backward writes over
// a grad_output it does not solely hold): a root's grad is not copied.
void accumulate_pending(Tensor& pending, Tensor g);

// A leaf's .grad += g, in place as PyTorch's AccumulateGrad does (a handle the
// user holds to .grad sees the sum); an undefined .grad takes g when it is the
// sole handle, else a copy.
void accumulate_grad(Tensor& grad, Tensor g);

}  // namespace xg::autograd
