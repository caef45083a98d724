// Activation checkpointing (activation_checkpoint.hpp), built on the engine's
// public API only: make_result, run_backward and the nodes' edges.
//
// The engine gives every output of an op its own node and runs a node once
// every gradient for its output has arrived. A checkpointed fn may have
// several outputs, yet must be recomputed once per pass with the gradients of
// all of them. So each floating output gets a CheckpointBackward node that
// only parks its gradient in the shared Checkpoint and sends a zero scalar on
// to one CheckpointRecompute node, whose edges go to fn's inputs. The engine
// runs that node after every output node that got a gradient has reported
// (it waits for all its edges); it recomputes fn with grad mode on over
// detached copies of the inputs, runs a nested backward pass from the
// recomputed outputs seeded with the parked gradients, and returns the copies'
// .grad as the inputs' gradients. The parameters fn uses are leaves of the
// recomputed graph, so the nested pass accumulates their .grad directly.
//
// With no input requiring grad, make_result would record nothing, yet the
// parameters fn uses still need their gradients. Forward then runs fn once
// with grad mode on, collects the leaves that require grad its graph reaches,
// drops that graph, and gives CheckpointRecompute edges to those leaves: they
// make the engine record and reach it, and carry no gradient (the nested pass
// delivers those).
#include "xgrad/activation_checkpoint.hpp"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "xgrad/autograd.hpp"
#include "xgrad/error.hpp"

namespace xg::utils {

namespace {

// What forward returned at one position, to check the recomputation against.
struct OutputInfo {
    bool defined = false;
    bool tracked = false;  // floating: it got a CheckpointBackward node
    Shape shape;
    Dtype dtype = kFloat32;
};

// Everything a checkpoint's backward needs: shared by its nodes, freed with them.
struct Checkpoint {
    CheckpointFn fn;
    std::vector<Tensor> inputs;
    std::optional<std::string> rng_state;  // the generator before forward's fn
    std::vector<OutputInfo> outputs;
    std::vector<Tensor> grads;   // per output, parked until CheckpointRecompute runs
    std::size_t leaf_edges = 0;  // edges to leaves fn uses, after the inputs' edges
};

// RAII: grad mode on; the engine runs backward closures with it off, and the
// recomputation must record a graph.
class EnableGrad {
public:
    EnableGrad() { GradMode::set_enabled(true); }
    ~EnableGrad() { GradMode::set_enabled(previous_); }
    EnableGrad(const EnableGrad&) = delete;
    EnableGrad& operator=(const EnableGrad&) = delete;

private:
    bool previous_ = GradMode::is_enabled();
};

// RAII: the generator as forward found it, then the caller's state back, so
// the recomputation draws forward's dropout masks and backward leaves the
// caller's random stream where it was.
class ForwardRngState {
public:
    explicit ForwardRngState(const std::optional<std::string>& forward_state) {
        if (!forward_state) return;
        caller_state_ = get_rng_state();
        set_rng_state(*forward_state);
    }
    ~ForwardRngState() {
        if (caller_state_) set_rng_state(*caller_state_);
    }
    ForwardRngState(const ForwardRngState&) = delete;
    ForwardRngState& operator=(const ForwardRngState&) = delete;

private:
    std::optional<std::string> caller_state_;
};

void check_inputs(const std::vector<Tensor>& inputs) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        check(inputs[i].defined(),
              "checkpoint: expected every input to be a defined tensor (got an undefined one at "
              "index {})",
              i);
    }
}

std::vector<Tensor> checked_outputs(std::vector<Tensor> outputs) {
    check(!outputs.empty(), "checkpoint: expected fn to return at least one tensor (got none)");
    return outputs;
}

bool any_requires_grad(const std::vector<Tensor>& tensors) {
    return std::any_of(tensors.begin(), tensors.end(),
                       [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}

// The leaves that require grad which the outputs' graphs reach: the
// parameters fn used. A depth-first walk over the nodes' edges.
std::vector<Tensor> leaves_reached(const std::vector<Tensor>& outputs) {
    std::vector<Tensor> leaves;
    std::unordered_set<const TensorImpl*> seen_leaves;
    std::unordered_set<const autograd::Node*> seen_nodes;
    std::vector<const autograd::Node*> stack;
    auto add_leaf = [&](const Tensor& leaf) {
        if (seen_leaves.insert(leaf.impl()).second) leaves.push_back(leaf);
    };
    for (const Tensor& out : outputs) {
        if (!out.defined() || !out.requires_grad()) continue;
        if (const auto& node = out.grad_fn()) {
            if (seen_nodes.insert(node.get()).second) stack.push_back(node.get());
        } else {
            add_leaf(out);  // fn returned a parameter itself
        }
    }
    while (!stack.empty()) {
        const autograd::Node* node = stack.back();
        stack.pop_back();
        for (const auto& child : node->next) {
            if (!child || !seen_nodes.insert(child.get()).second) continue;
            if (!child->is_accumulator) {
                stack.push_back(child.get());
            } else if (auto impl = child->output.lock()) {
                add_leaf(Tensor(std::move(impl)));
            }
        }
    }
    return leaves;
}

// The inputs fn runs on again: the same values, no history, and requiring
// grad where the originals do, so the nested pass leaves their gradients in .grad.
std::vector<Tensor> detached_inputs(const std::vector<Tensor>& inputs) {
    std::vector<Tensor> copies;
    copies.reserve(inputs.size());
    for (const Tensor& input : inputs) {
        Tensor copy = input.detach();
        if (input.requires_grad()) copy.requires_grad_(true);
        copies.push_back(std::move(copy));
    }
    return copies;
}

// A recomputation that returns something else than forward did would pair
// the parked gradients with the wrong values.
void check_recomputed(const Checkpoint& c, const std::vector<Tensor>& outputs) {
    if (outputs.size() != c.outputs.size()) {
        fail("checkpoint: expected the recomputation to return {} tensors, as forward did (got {})",
             c.outputs.size(), outputs.size());
    }
    for (std::size_t k = 0; k < outputs.size(); ++k) {
        const OutputInfo& info = c.outputs[k];
        const Tensor& out = outputs[k];
        if (out.defined() != info.defined) {
            fail("checkpoint: expected the recomputed output {} to be {}, as in forward (got {})",
                 k, info.defined ? "defined" : "undefined",
                 info.defined ? "an undefined tensor" : "a defined one");
        }
        if (info.tracked && (out.shape() != info.shape || out.dtype() != info.dtype)) {
            fail(
                "checkpoint: expected the recomputed output {} to have shape {} and dtype {}, as "
                "in forward (got {} and {})",
                k, shape_str(info.shape), dtype_name(info.dtype), shape_str(out.shape()),
                dtype_name(out.dtype()));
        }
    }
}

// CheckpointRecompute's backward: fn again under forward's random state, a
// nested backward pass from its outputs, and the inputs' gradients.
autograd::Gradients recompute_backward(Checkpoint& c) {
    std::vector<Tensor> grads(c.grads.size());
    grads.swap(c.grads);  // parked ones out: a retained graph's next pass starts empty
    std::vector<Tensor> inputs = detached_inputs(c.inputs);
    std::vector<Tensor> outputs;
    {
        ForwardRngState rng(c.rng_state);
        EnableGrad grad_mode;
        outputs = c.fn(inputs);
    }
    check_recomputed(c, outputs);
    std::vector<Tensor> roots, seeds;
    for (std::size_t k = 0; k < outputs.size(); ++k) {
        // An output that depends on nothing requiring grad has no gradient to pass on.
        if (!grads[k].defined() || !outputs[k].requires_grad()) continue;
        roots.push_back(std::move(outputs[k]));
        seeds.push_back(std::move(grads[k]));
    }
    outputs.clear();
    if (!roots.empty()) autograd::run_backward(roots, seeds, /*retain_graph=*/false);
    roots.clear();
    seeds.clear();

    autograd::Gradients input_grads;
    for (std::size_t i = 0; i < inputs.size(); ++i)
        input_grads.push_back(c.inputs[i].requires_grad() ? inputs[i].grad() : Tensor());
    for (std::size_t i = 0; i < c.leaf_edges; ++i) input_grads.push_back(Tensor());
    return input_grads;
}

// Records the checkpoint's nodes: CheckpointRecompute over the inputs (and
// `leaves`), and one CheckpointBackward per floating output in front of it.
std::vector<Tensor> record(std::shared_ptr<Checkpoint> c, std::vector<Tensor> outputs,
                           const std::vector<Tensor>& leaves) {
    bool any_tracked = false;
    for (const Tensor& out : outputs) {
        OutputInfo info;
        info.defined = out.defined();
        info.tracked = info.defined && is_floating_point(out.dtype());
        if (info.tracked) {
            info.shape = out.shape();
            info.dtype = out.dtype();
        }
        any_tracked = any_tracked || info.tracked;
        c->outputs.push_back(std::move(info));
    }
    if (!any_tracked) return outputs;  // only integer outputs: nothing to differentiate
    c->grads.resize(outputs.size());
    c->leaf_edges = leaves.size();
    std::vector<Tensor> edges = c->inputs;
    edges.insert(edges.end(), leaves.begin(), leaves.end());
    Tensor hub = autograd::make_result(zeros({}), "CheckpointRecompute", edges,
                                       [c](const Tensor&) { return recompute_backward(*c); });
    for (std::size_t k = 0; k < outputs.size(); ++k) {
        if (!c->outputs[k].tracked) continue;
        // detach: a fresh tensor, even when fn returned one of its inputs.
        outputs[k] = autograd::make_result(outputs[k].detach(), "CheckpointBackward", {hub},
                                           [c, k](const Tensor& grad) {
                                               c->grads[k] = grad;
                                               return autograd::Gradients{zeros({})};
                                           });
    }
    return outputs;
}

}  // namespace

std::vector<Tensor> checkpoint(CheckpointFn fn, const std::vector<Tensor>& inputs,
                               bool preserve_rng_state) {
    check(static_cast<bool>(fn), "checkpoint: expected a function (got an empty std::function)");
    check_inputs(inputs);
    if (!GradMode::is_enabled()) return checked_outputs(fn(inputs));

    auto c = std::make_shared<Checkpoint>();
    if (preserve_rng_state) c->rng_state = get_rng_state();
    std::vector<Tensor> outputs, leaves;
    if (any_requires_grad(inputs)) {
        NoGradGuard no_grad;  // the point: none of fn's intermediate values is kept
        outputs = checked_outputs(fn(inputs));
    } else {
        // Only a run with grad mode on tells whether fn uses a parameter. Its
        // graph dies when record() replaces the outputs: one segment's worth.
        outputs = checked_outputs(fn(inputs));
        leaves = leaves_reached(outputs);
        if (leaves.empty()) return outputs;  // nothing requires grad: no history to cut
    }
    c->fn = std::move(fn);
    c->inputs = inputs;
    return record(std::move(c), std::move(outputs), leaves);
}

Tensor checkpoint(std::function<Tensor(const std::vector<Tensor>&)> fn,
                  const std::vector<Tensor>& inputs, bool preserve_rng_state) {
    check(static_cast<bool>(fn), "checkpoint: expected a function (got an empty std::function)");
    CheckpointFn as_list = [fn = std::move(fn)](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{fn(in)};
    };
    return checkpoint(std::move(as_list), inputs, preserve_rng_state).front();
}

}  // namespace xg::utils
