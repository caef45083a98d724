// Full backward hooks (and backward pre hooks) for one module call with any
// inputs and outputs: PyTorch's BackwardHook (torch/utils/hooks.py) on xgrad's
// engine.
//
// PyTorch routes a call's tensors through one node with many outputs. xgrad's
// nodes have one output each, so each side of the call gathers through two
// steps: every tensor that requires grad is replaced by an identity whose
// backward records its gradient (and hands a zero onwards), and all those
// identities hang off one "gathering" node over the real tensors. The engine
// runs a node only after every node that feeds it, so the gathering node runs
// once each gradient of its side is in: on the output side it runs the
// backward pre hooks over grad_output; on the input side the backward hooks
// over grad_input and grad_output; then it hands the (possibly replaced)
// gradients on to the real tensors.
//
// grad_input has one entry per positional argument and grad_output one per
// output entry, undefined where no gradient flows (non-tensors, tensors that
// need no grad, outputs the loss does not use), as in PyTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "xgrad/autograd.hpp"
#include "xgrad/nn/module.hpp"

namespace xg::nn::detail {

class BackwardCall : public std::enable_shared_from_this<BackwardCall> {
public:
    BackwardCall(Module& module, std::vector<std::pair<std::uint64_t, BackwardPreHook>> pre_hooks,
                 std::vector<std::pair<std::uint64_t, BackwardHook>> hooks);

    // Before forward: the tensor arguments that require grad report grad_input.
    void wrap_inputs(Args& args);
    // After the forward hooks: the output's tensors that require grad report grad_output.
    void wrap_outputs(Value& output);

private:
    enum class Side { Inputs, Outputs };
    void gather(Args& values, Side side);
    autograd::Gradients on_gathered(Side side);
    std::vector<Tensor> on_grad_output();
    std::vector<Tensor> on_grad_input();
    void run_hooks_without_grad_input();
    Module* alive() const { return owned_ && weak_module_.expired() ? nullptr : module_; }

    std::weak_ptr<Module> weak_module_;
    Module* module_;
    bool owned_;  // whether the module lives in a shared_ptr we can watch
    std::vector<std::pair<std::uint64_t, BackwardPreHook>> pre_hooks_;
    std::vector<std::pair<std::uint64_t, BackwardHook>> hooks_;
    std::vector<Tensor> grad_input_, grad_output_;         // filled in as the identities run
    std::vector<Tensor> kept_grad_output_;                 // after the pre hooks, for the hooks
    std::vector<std::size_t> input_slots_, output_slots_;  // the entries that require grad
    bool inputs_wired_ = false;
    bool have_grad_output_ = false;  // the output side ran; the input side may call the hooks
};

}  // namespace xg::nn::detail
