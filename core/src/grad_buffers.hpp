// Where a backward writes its gradients: the one place that decides when a
// gradient may be written over a buffer the engine hands it.
//
// The aliasing rule. The engine calls a node's backward with the only handle
// to grad_output whenever it drops grad_output after the call, and a pass with
// retain_graph = false frees each node's saved values once its backward
// returns. A buffer that no other handle can see may be written over:
// grad_output's may become one input's gradient, a saved value's the gradient
// of the input it was saved for. Every other gradient is a fresh array from
// the buffer cache. Kernels work element by element and read every operand's
// element i before they write any output's element i, so an output over an
// operand's buffer reads what a copy would have held. Two closures take a
// buffer themselves, through gradient_over_saved: linear's, whose dX goes over
// its saved X once dW has read it, and mse_loss's, whose input gradient goes
// over the saved difference. accumulate.hpp never sees a buffer that two
// handles share.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>

#include "buffer_cache.hpp"
#include "internal.hpp"

namespace xg::autograd {

// One input's gradient, of grad_output's shape.
struct GradSlot {
    bool needed = false;
    // The gradient is grad_output itself: passed on (pass_on), not computed.
    bool is_g = false;
    // The saved value (of grad_output's shape) this gradient may be written
    // over, or null: then it may be written over grad_output's buffer.
    const std::shared_ptr<Storage>* saved = nullptr;
};

namespace detail_grad {
// grad_output's buffer under a handle of its own when nothing else can see it
// (the rule above; the engine drops grad_output right after the call), else a
// fresh tensor of its shape; grad_buffers.cpp.
template <class T>
Tensor take_grad_output(const Tensor& g);
// The saved value's buffer moved out when nothing else can see it, else a
// fresh tensor of its shape. Moved, not shared: the node keeps `saved` until
// its gradients are delivered, and they must be the only handle then.
template <class T>
Tensor take_saved(const std::shared_ptr<Storage>& saved);
}  // namespace detail_grad

// A buffer for the gradient of the input `saved` holds, of its shape, for a
// backward that has done reading `saved`: saved's own buffer when the rule
// allows (the peak of a step then holds one activation less), else a fresh one.
template <class T>
Tensor gradient_over_saved(const std::shared_ptr<Storage>& saved) {
    return detail_grad::take_saved<T>(saved);
}

// g as an input's gradient unchanged: its buffer under a handle of its own
// when nobody else holds it (so the engine keeps it without a copy), else g.
Tensor pass_on(const Tensor& g);

// The gradients of `slots` (undefined where not needed): kernel(g, out, n)
// fills out[i] for each computed slot, null for the others, element by element
// from g's n elements and the values it saved. grad_output's buffer goes to the
// first slot that is g itself, else to the first computed slot without a
// saved buffer of its own; another slot that is g gets a copy.
template <class T, std::size_t N, class Kernel>
std::array<Tensor, N> elementwise_grads(const Tensor& g, const std::array<GradSlot, N>& slots,
                                        Kernel&& kernel) {
    const auto& values = g.data<T>();
    const T* gp = values.data();
    const std::size_t n = values.size();
    std::size_t over_g = N;  // the slot that gets grad_output's buffer
    for (std::size_t i = 0; i < N && over_g == N; ++i) {
        if (slots[i].needed && slots[i].is_g) over_g = i;
    }
    for (std::size_t i = 0; i < N && over_g == N; ++i) {
        if (slots[i].needed && !slots[i].saved) over_g = i;
    }
    std::array<Tensor, N> grads;
    std::array<T*, N> computed{};
    for (std::size_t i = 0; i < N; ++i) {
        if (!slots[i].needed || i == over_g) continue;
        grads[i] = slots[i].saved ? detail_grad::take_saved<T>(*slots[i].saved)
                                  : detail::empty_tensor<T>(values.shape());
        T* p = grads[i].template data<T>().data();
        if (slots[i].is_g)
            std::copy(gp, gp + n, p);
        else
            computed[i] = p;
    }
    if (over_g != N && slots[over_g].is_g) {
        grads[over_g] = pass_on(g);
    } else if (over_g != N) {
        grads[over_g] = detail_grad::take_grad_output<T>(g);
        computed[over_g] = grads[over_g].template data<T>().data();
    }
    kernel(gp, computed, n);
    return grads;
}

// True inside a backward pass that frees each node's saved values once its
// backward returns (retain_graph = false): engine.cpp.
bool backward_frees_saved_values();

}  // namespace xg::autograd
