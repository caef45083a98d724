// Gradient sums under the aliasing rule in accumulate.hpp.
#include "accumulate.hpp"

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg::autograd {

namespace {

void accumulate(Tensor& sum, Tensor g, bool in_place_allowed) {
    if (!sum.defined()) {
        if (detail::sole_owner(g))
            sum = std::move(g);
        else if (in_place_allowed)  // a leaf's .grad is added to in place later
            sum = g.detach().clone();
        else  // shared: added to out of place below, and no op writes over a shared grad_output
            sum = g.detach();
        return;
    }
    if (!detail::same_shape(sum, g)) {
        fail("backward: gradient of shape {} does not match shape {}", shape_str(g.shape()),
             shape_str(sum.shape()));
    }
    // A float16 or bfloat16 sum is rounded once per addition, as PyTorch's.
    if ((!in_place_allowed && !detail::sole_owner(sum)) ||
        compute_dtype(sum.dtype()) != sum.dtype()) {
        sum = add(sum, g);
        return;
    }
    detail::visit_floating(sum, "backward", [&](auto& s) {
        using T = typename std::decay_t<decltype(s)>::value_type;
        T* sp = s.data();
        const T* gp = g.template data<T>().data();
        detail::for_chunks(s.size(), [=](std::size_t first, std::size_t count) {
            for (std::size_t i = first; i < first + count; ++i) sp[i] += gp[i];
        });
        return sum;
    });
}

}  // namespace

void accumulate_pending(Tensor& pending, Tensor g) { accumulate(pending, std::move(g), false); }
void accumulate_grad(Tensor& grad, Tensor g) { accumulate(grad, std::move(g), true); }

}  // namespace xg::autograd
