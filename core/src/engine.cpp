// The autograd engine: recording nodes while ops run, and walking them back.
//
// Ownership runs one way only: a tensor owns the node that made it, a node owns
// the nodes of its inputs. Nodes see tensors through weak pointers (for hooks
// and retain_grad), so dropping the last output handle frees the whole graph.
//
// The backward pass is run_pass below; the machinery it leans on lives beside
// it: pass_state.hpp (per-node bookkeeping, reused between passes),
// accumulate.hpp (gradient sums and the aliasing rule), graph_node.cpp (freeing
// long graphs without recursion) and anomaly.hpp (anomaly mode's checks).
#include <algorithm>

#include "accumulate.hpp"
#include "anomaly.hpp"
#include "buffer_cache.hpp"
#include "grad_buffers.hpp"
#include "internal.hpp"
#include "object_pool.hpp"
#include "pass_state.hpp"
#include "xgrad/autograd.hpp"

namespace xg {

namespace {
thread_local bool grad_mode_enabled = true;
thread_local bool freeing_graph = false;  // the running backward frees each node after it
}  // namespace

bool GradMode::is_enabled() { return grad_mode_enabled; }
void GradMode::set_enabled(bool enabled) { grad_mode_enabled = enabled; }

namespace autograd {

bool backward_frees_saved_values() { return freeing_graph; }

namespace {

// ---- recording ----

// The node a gradient for `t` flows into: its grad_fn, or the (shared) node
// that accumulates into a leaf's .grad.
std::shared_ptr<Node> gradient_edge(const Tensor& t) {
    TensorImpl& impl = *t.impl();
    if (impl.grad_fn) return impl.grad_fn;
    if (auto existing = impl.grad_accumulator.lock()) return existing;
    auto accumulator = detail::make_pooled<Node>("AccumulateGrad", Node::Edges{}, BackwardFn{});
    accumulator->is_accumulator = true;
    accumulator->output = t.impl_ptr();
    impl.grad_accumulator = accumulator;
    return accumulator;
}

Tensor record(Tensor value, const char* name, const Tensor* inputs, std::size_t count,
              BackwardFn backward) {
    if (!GradMode::is_enabled()) return value;
    Node::Edges next;
    next.reserve(count);
    bool any = false;
    for (const Tensor* input = inputs; input != inputs + count; ++input) {
        bool needs = input->defined() && input->requires_grad();
        next.push_back(needs ? gradient_edge(*input) : nullptr);
        any = any || needs;
    }
    if (!any) return value;
    auto node = detail::make_pooled<Node>(name, std::move(next), std::move(backward));
    if (is_anomaly_enabled()) node->creation = creation_point();
    node->output = value.impl_ptr();
    value.impl()->grad_fn = std::move(node);
    value.impl()->requires_grad = true;
    return value;
}

}  // namespace

Tensor make_result(Tensor value, const char* name, const std::vector<Tensor>& inputs,
                   BackwardFn backward) {
    return record(std::move(value), name, inputs.data(), inputs.size(), std::move(backward));
}

Tensor make_result(Tensor value, const char* name, std::initializer_list<Tensor> inputs,
                   BackwardFn backward) {
    return record(std::move(value), name, inputs.begin(), inputs.size(), std::move(backward));
}

namespace {

// ---- the steps of a backward pass ----

// A tensor of ones shaped like the one-element `root`, its implicit seed.
Tensor ones_seed(const Tensor& root) {
    return detail::visit_floating(root, "backward", [&]<class T>(xt::xarray<T>& a) {
        auto ones = detail::empty_array<T>(a.shape());
        std::fill(ones.begin(), ones.end(), T(1));
        return detail::wrap(std::move(ones));
    });
}

// Step 1: `root`'s node starts with `grad` (ones for a one-element root).
void seed(PassState& pass, const Tensor& root, Tensor grad) {
    check(root.defined(), "backward: expected a defined tensor (got an undefined one)");
    check(root.requires_grad(),
          "backward: expected a tensor that requires grad (got one that does not)");
    if (!grad.defined()) {
        if (root.numel() != 1) {
            fail(
                "backward: grad can be implicitly created only for a one-element tensor (got "
                "shape {})",
                shape_str(root.shape()));
        }
        grad = ones_seed(root);
    }
    if (!detail::same_shape(grad, root) || grad.dtype() != root.dtype()) {
        fail("backward: expected grad of shape {} and dtype {} (got {} and {})",
             shape_str(root.shape()), dtype_name(root.dtype()), shape_str(grad.shape()),
             dtype_name(grad.dtype()));
    }
    auto node = gradient_edge(root);
    accumulate_pending(pass[node.get()].grad, std::move(grad));
    pass.roots.push_back(std::move(node));
}

// Step 2: every node reachable from the roots, and for each the number of
// edges that will deliver a gradient to it.
void count_dependencies(PassState& pass) {
    for (auto& root : pass.roots) {
        if (std::find(pass.reachable.begin(), pass.reachable.end(), root) == pass.reachable.end())
            pass.reachable.push_back(root);
    }
    for (std::size_t visited = 0; visited < pass.reachable.size(); ++visited) {
        Node* node = pass.reachable[visited].get();
        check(!node->released,
              "backward: the graph of {} was already freed; pass retain_graph=true to backward "
              "through it twice",
              node->name);
        for (auto& child : node->next) {
            if (!child) continue;
            bool first_visit = pass[child.get()].dependencies++ == 0 && !pass.is_root(child.get());
            if (first_visit) pass.reachable.push_back(child);  // roots are in already
        }
    }
}

// A tensor hook's replacement gradient must match the gradient it replaces,
// as PyTorch checks: the engine would otherwise accumulate a wrong shape into
// .grad or hand the next backward a gradient it cannot use.
void check_hook_result(const Tensor& grad, const Tensor& replaced, std::uint64_t id) {
    if (replaced.dtype() != grad.dtype()) {
        fail("backward: hook {} has changed the type of value (was {} got {})", id,
             dtype_name(grad.dtype()), dtype_name(replaced.dtype()));
    }
    if (!detail::same_shape(replaced, grad)) {
        fail("backward: hook {} has changed the size of value (was {} got {})", id,
             shape_str(grad.shape()), shape_str(replaced.shape()));
    }
}

// Step 3a: the tensor's hooks see (and may replace) the gradient of the tensor
// `node` made; a leaf's gradient then goes to .grad, as does a retained one.
void run_tensor_hooks(Node& node, Tensor& grad) {
    auto output = node.output.lock();
    if (!output) return;
    if (!output->hooks.empty()) {
        for (auto& [id, hook] : std::vector(output->hooks)) {  // a hook may remove hooks
            if (Tensor replaced = hook(grad); replaced.defined()) {
                check_hook_result(grad, replaced, id);
                grad = std::move(replaced);
            }
        }
    }
    if (node.is_accumulator)
        accumulate_grad(output->grad, std::move(grad));
    else if (output->retains_grad)
        accumulate_grad(output->grad, grad.detach().clone());
}

// Step 3b: the node's backward, one gradient per input edge.
Gradients call_backward(Node& node, const Tensor& grad, bool retain_graph) {
    if (!grad.defined() || !node.backward) return {};
    try {
        Gradients input_grads = node.backward(grad);
        check(input_grads.size() == node.next.size(),
              "backward: {} returned {} gradients for {} inputs", node.name, input_grads.size(),
              node.next.size());
        if (is_anomaly_enabled()) check_no_nan(node, input_grads);
        return input_grads;
    } catch (...) {
        // Running it again must fail cleanly ("already freed"), not half-run twice.
        if (!retain_graph) node.release();
        throw;
    }
}

// Step 3c: `child` receives a gradient (or just the news that none is coming)
// and becomes ready once every edge into it has reported.
void deliver(PassState& pass, Node* child, Tensor grad) {
    if (!child) return;
    PassState::Slot& slot = pass[child];
    if (grad.defined()) accumulate_pending(slot.grad, std::move(grad));
    if (--slot.dependencies == 0) pass.push_ready(child);
}

// The backward pass: seed the roots, count each node's dependencies, then run
// every node once all the nodes that use its output have delivered their
// gradients (Kahn's topological order; among ready nodes the latest-created
// runs first, as in PyTorch). Without retain_graph each node is released
// right after it ran, so saved values are freed as the walk goes.
void run_pass(const Tensor* roots, const Tensor* grads, std::size_t count, bool retain_graph) {
    NoGradGuard no_grad;   // backward closures record no graph of their own
    struct FreeingGraph {  // passes may nest (a hook may call backward)
        bool previous = freeing_graph;
        explicit FreeingGraph(bool value) { freeing_graph = value; }
        ~FreeingGraph() { freeing_graph = previous; }
    } freeing(!retain_graph);
    PassStateLease lease;
    PassState& pass = *lease;

    for (std::size_t i = 0; i < count; ++i) seed(pass, roots[i], grads[i]);
    count_dependencies(pass);
    for (auto& root : pass.roots) {
        PassState::Slot& slot = pass[root.get()];
        if (slot.dependencies == 0) {
            slot.dependencies = -1;  // queued once, even if it is a root twice
            pass.push_ready(root.get());
        }
    }
    while (Node* node = pass.pop_ready()) {
        Tensor grad = std::move(pass[node].grad);
        if (grad.defined()) run_tensor_hooks(*node, grad);
        Gradients input_grads = call_backward(*node, grad, retain_graph);
        grad = Tensor();  // dropped before the next node runs: the cache can recycle it
        for (std::size_t i = 0; i < node->next.size(); ++i) {
            deliver(pass, node->next[i].get(),
                    i < input_grads.size() ? std::move(input_grads[i]) : Tensor());
        }
        if (!retain_graph && !node->is_accumulator) node->release();
    }
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph) {
    check(roots.size() == grads.size(), "backward: expected one grad per root (got {} for {})",
          grads.size(), roots.size());
    run_pass(roots.data(), grads.data(), roots.size(), retain_graph);
}

void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph) {
    run_pass(&root, &grad, 1, retain_graph);
}

}  // namespace autograd
}  // namespace xg
