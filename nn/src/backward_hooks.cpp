// BackwardCall: backward (pre) hooks over a call's inputs and outputs (see backward_hooks.hpp).
#include "backward_hooks.hpp"

#include "xgrad/ops.hpp"

namespace xg::nn::detail {

namespace {

constexpr const char* kHookNode = "BackwardHookFunctionBackward";

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
        if (!(got.dtype() == expected.dtype() && got.shape() == expected.shape())) {
            fail("{}: {} has changed {} {} (was {} {} got {} {})", module.name(), hook, grads, i,
                 dtype_name(expected.dtype()), shape_str(expected.shape()), dtype_name(got.dtype()),
                 shape_str(got.shape()));
        }
    }
}

// The entries of `values` that are tensors requiring grad.
std::vector<std::size_t> requiring_grad(const Args& values) {
    std::vector<std::size_t> slots;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (values[i].is_tensor() && values[i].tensor().requires_grad()) slots.push_back(i);
    }
    return slots;
}

}  // namespace

BackwardCall::BackwardCall(Module& module,
                           std::vector<std::pair<std::uint64_t, BackwardPreHook>> pre_hooks,
                           std::vector<std::pair<std::uint64_t, BackwardHook>> hooks)
    : weak_module_(module.weak_from_this()),
      module_(&module),
      owned_(!weak_module_.expired()),
      pre_hooks_(std::move(pre_hooks)),
      hooks_(std::move(hooks)) {}

void BackwardCall::wrap_inputs(Args& args) {
    grad_input_.assign(args.size(), Tensor());
    input_slots_ = requiring_grad(args);
    // Only the backward hooks read grad_input; pre hooks alone need no input side.
    if (input_slots_.empty() || hooks_.empty()) return;
    inputs_wired_ = true;
    gather(args, Side::Inputs);
}

void BackwardCall::wrap_outputs(Value& output) {
    const bool single = !output.is_list();
    Args entries = single ? Args{output} : output.list();
    grad_output_.assign(entries.size(), Tensor());
    output_slots_ = requiring_grad(entries);
    if (output_slots_.empty()) return;
    gather(entries, Side::Outputs);
    output = single ? entries.front() : Value(std::move(entries));
}

void BackwardCall::gather(Args& values, Side side) {
    const std::vector<std::size_t>& slots = side == Side::Inputs ? input_slots_ : output_slots_;
    std::vector<Tensor> sources;
    for (std::size_t slot : slots) sources.push_back(values[slot].tensor());
    const Dtype dtype = sources.front().dtype();
    auto self = shared_from_this();
    Tensor gathered = autograd::make_result(
        zeros({}, dtype), kHookNode, sources,
        [self, side](const Tensor&) { return self->on_gathered(side); },
        autograd::DoubleBackward::Supported);  // hands on the gradients it was given
    for (std::size_t k = 0; k < slots.size(); ++k) {
        auto record = [self, side, slot = slots[k], dtype](const Tensor& g) {
            (side == Side::Inputs ? self->grad_input_ : self->grad_output_)[slot] = g;
            return autograd::Gradients{zeros({}, dtype)};
        };
        values[slots[k]] =
            autograd::make_result(sources[k].detach(), kHookNode, {gathered}, std::move(record),
                                  autograd::DoubleBackward::Supported);
    }
}

autograd::Gradients BackwardCall::on_gathered(Side side) {
    std::vector<Tensor> grads = side == Side::Inputs ? on_grad_input() : on_grad_output();
    const std::vector<std::size_t>& slots = side == Side::Inputs ? input_slots_ : output_slots_;
    autograd::Gradients onwards;
    for (std::size_t slot : slots) onwards.push_back(grads[slot]);
    return onwards;
}

// Backward pre hooks may replace grad_output, which is kept for the backward hooks.
std::vector<Tensor> BackwardCall::on_grad_output() {
    std::vector<Tensor> grads =
        std::exchange(grad_output_, std::vector<Tensor>(grad_output_.size()));
    if (Module* m = alive()) {
        for (auto& [id, hook] : pre_hooks_) {
            if (auto replaced = hook(*m, grads); !replaced.empty()) {
                check_replacement(*m, "backward pre hook", "grad_output", replaced, grads);
                grads = std::move(replaced);
            }
        }
    }
    kept_grad_output_ = grads;
    have_grad_output_ = true;
    // No input side will run: the hooks see an undefined grad_input here, as in PyTorch.
    if (!inputs_wired_) run_hooks_without_grad_input();
    return grads;
}

void BackwardCall::run_hooks_without_grad_input() {
    have_grad_output_ = false;
    Module* m = alive();
    if (m == nullptr) return;
    const std::vector<Tensor> grad_input(grad_input_.size());
    for (auto& [id, hook] : hooks_) {
        std::vector<Tensor> replaced = hook(*m, grad_input, kept_grad_output_);
        for (const Tensor& g : replaced) {
            check(!g.defined(),
                  "{}: Backward hook for Modules where no input requires gradient should always "
                  "return None or None for all gradients.",
                  m->name());
        }
    }
}

// Backward hooks see grad_input and grad_output, and may replace grad_input.
std::vector<Tensor> BackwardCall::on_grad_input() {
    std::vector<Tensor> grad_input =
        std::exchange(grad_input_, std::vector<Tensor>(grad_input_.size()));
    Module* m = alive();
    // PyTorch calls the hooks only once the output side has run.
    if (m == nullptr || !std::exchange(have_grad_output_, false)) return grad_input;
    for (auto& [id, hook] : hooks_) {
        if (auto replaced = hook(*m, grad_input, kept_grad_output_); !replaced.empty()) {
            check_replacement(*m, "backward hook", "grad_input", replaced, grad_input);
            grad_input = std::move(replaced);
        }
    }
    return grad_input;
}

}  // namespace xg::nn::detail
