// In-place ops (add_, mul_, ..., copy_) and the version counter they bump.
//
// Each is its out-of-place op applied to the tensor's current values and
// history, whose result is then written back into the same values: so the
// gradient rule is the out-of-place op's, in one place, and every handle
// sharing the values (detach(), saved copies) sees the change. What the
// in-place write could spoil is guarded twice, as in PyTorch:
// - an op whose backward reads the tensor's old values (mul_, div_, clamp_)
//   gets a copy of them to read, as PyTorch's autograd saves `self` for mul_;
// - any other node that saved these values recorded their version, and the
//   engine refuses to run its backward once the version moved (engine.cpp).
#include <algorithm>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {

// The tensor's values as a copy with the tensor's history: what an op whose
// backward reads `self` must see, since self's own values are about to change.
Tensor snapshot(const Tensor& self) {
    Tensor copy = self.detach().clone();
    copy.impl()->grad_fn = self.impl()->grad_fn;
    copy.impl()->requires_grad = self.requires_grad();
    return copy;
}

// `result` (self's shape) written into self's values, which keep their identity.
void overwrite(const Tensor& self, const Tensor& result) {
    detail::visit_any(self, "in-place", [&]<class T>(xt::xarray<T>& values) {
        const auto& source = result.data<T>();
        std::copy(source.begin(), source.end(), values.begin());
        return self;
    });
    ++self.impl()->storage->version;
}

// The shared path: `op` of self's current values and history, out of place,
// checked against self's shape and dtype, written back, and made self's history.
Tensor& in_place(Tensor& self, const char* name, bool reads_self,
                 const std::function<Tensor(const Tensor&)>& op) {
    check(self.defined(), "{}: expected a defined tensor (got an undefined one)", name);
    const bool recording = GradMode::is_enabled();
    if (recording && self.requires_grad() && self.is_leaf()) {
        fail(
            "{}: a leaf Variable that requires grad is being used in an in-place operation "
            "(change its values under NoGradGuard)",
            name);
    }
    Tensor result = op(recording && reads_self ? snapshot(self) : self);
    if (!detail::same_shape(result, self)) {
        fail("{}: output with shape {} doesn't match the broadcast shape {}", name,
             shape_str(self.shape()), shape_str(result.shape()));
    }
    if (result.dtype() != self.dtype()) {
        if (!is_floating_point(self.dtype()) && is_floating_point(result.dtype())) {
            fail("{}: result type {} can't be cast to the desired output type {}", name,
                 dtype_name(result.dtype()), dtype_name(self.dtype()));
        }
        result = result.to(self.dtype());
    }
    overwrite(self, result);
    if (!recording) return self;
    TensorImpl& impl = *self.impl();
    impl.grad_fn = result.impl()->grad_fn;  // null when nothing led to the values (fill_)
    impl.requires_grad = impl.grad_fn != nullptr;
    if (impl.grad_fn) {
        impl.grad_fn->output = self.impl_ptr();
        // Hooks stay with the nodes they were registered on; retain_grad moves on.
        impl.grad_fn->output_watched = impl.grad_fn->output_watched || impl.retains_grad;
    }
    return self;
}

}  // namespace

Tensor& Tensor::add_(const Tensor& other) {
    return in_place(*this, "add_", false, [&](const Tensor& x) { return add(x, other); });
}
Tensor& Tensor::add_(double other) {
    return in_place(*this, "add_", false, [&](const Tensor& x) { return add(x, other); });
}
Tensor& Tensor::sub_(const Tensor& other) {
    return in_place(*this, "sub_", false, [&](const Tensor& x) { return sub(x, other); });
}
Tensor& Tensor::sub_(double other) {
    return in_place(*this, "sub_", false, [&](const Tensor& x) { return sub(x, other); });
}
Tensor& Tensor::mul_(const Tensor& other) {
    return in_place(*this, "mul_", true, [&](const Tensor& x) { return mul(x, other); });
}
Tensor& Tensor::mul_(double other) {
    return in_place(*this, "mul_", false, [&](const Tensor& x) { return mul(x, other); });
}
Tensor& Tensor::div_(const Tensor& other) {
    return in_place(*this, "div_", true, [&](const Tensor& x) { return div(x, other); });
}
Tensor& Tensor::div_(double other) {
    return in_place(*this, "div_", false, [&](const Tensor& x) { return div(x, other); });
}
Tensor& Tensor::clamp_(std::optional<double> min, std::optional<double> max) {
    return in_place(*this, "clamp_", true, [&](const Tensor& x) { return clamp(x, min, max); });
}
// relu's and exp's backward read their output: a fresh copy, not these values.
Tensor& Tensor::relu_() {
    return in_place(*this, "relu_", false, [](const Tensor& x) { return relu(x); });
}
Tensor& Tensor::exp_() {
    return in_place(*this, "exp_", false, [](const Tensor& x) { return exp(x); });
}
Tensor& Tensor::masked_fill_(const Tensor& mask, double value) {
    return in_place(*this, "masked_fill_", false,
                    [&](const Tensor& x) { return masked_fill(x, mask, value); });
}
// The old values do not reach the new ones: no history leads to them.
Tensor& Tensor::zero_() { return fill_(0.0); }
Tensor& Tensor::fill_(double value) {
    return in_place(*this, "fill_", false,
                    [&](const Tensor& x) { return full(x.shape(), value, x.dtype()); });
}
// src broadcast to this tensor's shape and converted to its dtype; gradients reach src.
Tensor& Tensor::copy_(const Tensor& src) {
    check(src.defined(), "copy_: expected a defined source (got an undefined one)");
    return in_place(*this, "copy_", false,
                    [&](const Tensor& x) { return broadcast_to(src.to(x.dtype()), x.shape()); });
}

std::uint64_t Tensor::version() const {
    check(impl_ != nullptr, "version: expected a defined tensor (got an undefined one)");
    return impl_->storage->version;
}

}  // namespace xg
