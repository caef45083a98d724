// The autograd engine: recording nodes while ops run, and walking them back.
//
// Ownership runs one way only: a tensor owns the node that made it (a leaf,
// the node that accumulates its gradient), a node owns the nodes of its inputs.
// Nodes see tensors through weak pointers (for hooks and retain_grad), so
// dropping the last output handle frees the whole graph.
//
// The backward pass is run_pass below; the machinery it leans on lives beside
// it: pass_state.hpp (per-node bookkeeping, reused between passes),
// accumulate.hpp (gradient sums and the aliasing rule), graph_node.cpp (freeing
// long graphs without recursion) and anomaly.hpp (anomaly mode's checks).
#include <algorithm>

#include "accumulate.hpp"
#include "anomaly.hpp"
#include "buffer_cache.hpp"
#include "double_backward.hpp"
#include "grad_buffers.hpp"
#include "internal.hpp"
#include "object_pool.hpp"
#include "pass_state.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

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
    if (!impl.grad_accumulator) impl.grad_accumulator = make_accumulator(t.impl_ptr());
    return impl.grad_accumulator;
}

// make_result's inputs come as a vector of tensors or a braced list of references.
const Tensor& input_of(const Tensor& t) { return t; }
const Tensor& input_of(InputRef ref) { return *ref.tensor; }

// The versions of what the node's backward reads, as they are now.
template <class Inputs>
void note_versions(Node& node, const Tensor& value, const Inputs& inputs, Reads reads) {
    node.reads = reads;
    if (reads == Reads::Output) {
        const auto& storage = value.impl()->storage;
        node.saved_versions.push_back({storage, storage->version});
    } else if (reads == Reads::Inputs) {
        for (const auto& ref : inputs) {
            const Tensor& input = input_of(ref);
            if (!input.defined()) {
                node.saved_versions.push_back({});
                continue;
            }
            const auto& storage = input.impl()->storage;
            node.saved_versions.push_back({storage, storage->version});
        }
    }
}

template <class Inputs>
Tensor record(Tensor value, const char* name, const Inputs& inputs, BackwardFn&& backward,
              DoubleBackward double_backward, Reads reads) {
    if (!GradMode::is_enabled()) return value;
    Node::Edges next;
    next.reserve(inputs.size());
    bool any = false;
    for (const auto& ref : inputs) {
        const Tensor& input = input_of(ref);
        bool needs = input.defined() && input.requires_grad();
        next.push_back(needs ? gradient_edge(input) : nullptr);
        any = any || needs;
    }
    if (!any) return value;
    auto node = detail::make_pooled<Node>(name, std::move(next), std::move(backward));
    node->differentiable = double_backward == DoubleBackward::Supported;
    note_versions(*node, value, inputs, reads);
    if (is_anomaly_enabled()) node->creation = creation_point();
    node->output = value.impl_ptr();
    value.impl()->grad_fn = std::move(node);
    value.impl()->requires_grad = true;
    return value;
}

}  // namespace

Tensor make_result(Tensor value, const char* name, const std::vector<Tensor>& inputs,
                   BackwardFn backward, DoubleBackward double_backward, Reads reads) {
    return record(std::move(value), name, inputs, std::move(backward), double_backward, reads);
}

Tensor make_result(Tensor value, const char* name, std::initializer_list<InputRef> inputs,
                   BackwardFn backward, DoubleBackward double_backward, Reads reads) {
    return record(std::move(value), name, inputs, std::move(backward), double_backward, reads);
}

namespace {

// ---- the steps of a backward pass ----

// What a pass does besides walking the graph: backward() accumulates into
// .grad; grad() instead captures the gradients reaching `captures` (one node
// per input) and runs only the nodes on a path to one of them.
struct PassOptions {
    bool retain_graph = false;
    bool create_graph = false;
    std::vector<std::shared_ptr<Node>> captures;  // empty for backward()
    bool capturing() const { return !captures.empty(); }
};

// pending += g. Under create_graph the sum is an op like any other (out of
// place, recorded), as the gradients being summed carry histories.
void add_gradient(Tensor& pending, Tensor g, bool create_graph, bool into_leaf) {
    if (!create_graph) {
        into_leaf ? accumulate_grad(pending, std::move(g))
                  : accumulate_pending(pending, std::move(g));
    } else {
        pending = pending.defined() ? add(pending, g) : std::move(g);
    }
}

// A tensor of ones shaped like the one-element `root`, its implicit seed.
Tensor ones_seed(const Tensor& root) {
    if (compute_dtype(root.dtype()) != root.dtype()) return ones(root.shape(), root.dtype());
    return detail::visit_floating(root, "backward", [&]<class T>(xt::xarray<T>& a) {
        Tensor ones = detail::empty_tensor<T>(a.shape());
        auto& values = ones.data<T>();
        std::fill(values.begin(), values.end(), T(1));
        return ones;
    });
}

// Step 1: `root`'s node starts with `grad` (ones for a one-element root).
void seed(PassState& pass, const Tensor& root, Tensor grad, bool create_graph) {
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
    add_gradient(pass[node.get()].grad, std::move(grad), create_graph, false);
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
        if (node->released) {
            fail(
                "backward: trying to backward through the graph a second time (or directly "
                "access saved tensors after they have already been freed): {} was freed. Saved "
                "intermediate values of the graph are freed when you call backward() or "
                "autograd::grad(). Specify retain_graph=true if you need to backward through the "
                "graph a second time or if you need to access saved tensors after calling "
                "backward.",
                node->name);
        }
        for (auto& child : node->next) {
            if (!child) continue;
            bool first_visit = pass[child.get()].dependencies++ == 0 && !pass.is_root(child.get());
            if (first_visit) pass.reachable.push_back(child);  // roots are in already
        }
    }
}

// Step 2b, grad() only: marks the nodes with a path to a captured node, the
// only ones whose backward must run (a depth-first walk, children first).
void mark_needed(PassState& pass, const PassOptions& options) {
    for (auto& capture : options.captures) pass[capture.get()].captured = true;
    std::vector<std::pair<Node*, std::size_t>> stack;  // a node and its next child to visit
    for (auto& root : pass.roots) {
        if (pass[root.get()].visit != 0) continue;
        pass[root.get()].visit = 1;
        stack.emplace_back(root.get(), 0);
        while (!stack.empty()) {
            Node* node = stack.back().first;
            std::size_t i = stack.back().second++;
            if (i < node->next.size()) {
                Node* child = node->next[i].get();
                if (child && pass[child].visit == 0) {
                    pass[child].visit = 1;
                    stack.emplace_back(child, 0);
                }
                continue;
            }
            PassState::Slot& slot = pass[node];
            for (auto& child : node->next) {
                if (!child) continue;
                const PassState::Slot& c = pass[child.get()];
                slot.needed = slot.needed || c.captured || c.needed;
            }
            stack.pop_back();
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

// Step 3a: the hooks registered on the tensor `node` made, while `node` made
// it, see (and may replace) its gradient; a leaf's gradient then goes to
// .grad, as does a retained one, for the tensor's latest values only
// (backward() only: grad() returns gradients and leaves .grad alone).
void run_tensor_hooks(Node& node, Tensor& grad, const PassOptions& options) {
    if (!node.is_accumulator && !node.output_watched) return;  // nothing to see: skip the lock
    auto output = node.output.lock();
    if (!output) return;
    if (!output->hooks.empty()) {
        for (auto& hook : std::vector(output->hooks)) {  // a hook may remove hooks
            if (hook.node.lock().get() != &node) continue;
            if (Tensor replaced = hook.fn(grad); replaced.defined()) {
                check_hook_result(grad, replaced, hook.id);
                grad = std::move(replaced);
            }
        }
    }
    if (options.capturing()) return;
    if (node.is_accumulator) {
        add_gradient(output->grad, std::move(grad), options.create_graph, true);
    } else if (output->retains_grad && output->grad_fn.get() == &node) {
        add_gradient(output->grad, options.create_graph ? grad : grad.detach().clone(),
                     options.create_graph, true);
    }
}

// Before step 3b: what the backward reads must be as it was recorded, as
// PyTorch checks its saved variables' versions (after an in-place op the
// gradient would be silently wrong).
void check_versions(const Node& node) {
    for (std::size_t i = 0; i < node.saved_versions.size(); ++i) {
        const Node::SavedVersion& saved = node.saved_versions[i];
        auto storage = saved.storage.lock();
        if (!storage || storage->version == saved.version) continue;
        const Tensor values = detail::tensor_of(storage);
        fail(
            "backward: one of the variables needed for gradient computation has been modified by "
            "an inplace operation: [{} {}], {} of {}, is at version {}; expected version {} "
            "instead. {}",
            dtype_name(values.dtype()), shape_str(values.shape()),
            node.reads == Reads::Output ? std::string("the output") : fmt::format("input {}", i),
            node.name, storage->version, saved.version,
            node.creation.empty()
                ? "Hint: anomaly detection (xg::autograd::set_detect_anomaly(true)) names where "
                  "the op ran."
                : fmt::format("The op ran {}.", node.creation));
    }
}

// Step 3b: the node's backward, one gradient per input edge. Under
// create_graph a node whose backward computes with raw loops gets its
// gradients wrapped so that differentiating them again is refused.
Gradients call_backward(Node& node, const Tensor& grad, const PassOptions& options) {
    if (!grad.defined() || !node.backward) return {};
    check_versions(node);
    try {
        RunningBackwardScope running(&node, options.create_graph);
        Gradients input_grads;
        if (options.create_graph && !node.differentiable) {
            NoGradGuard raw_loops;
            input_grads = node.backward(grad);
        } else {
            input_grads = node.backward(grad);
        }
        check(input_grads.size() == node.next.size(),
              "backward: {} returned {} gradients for {} inputs", node.name, input_grads.size(),
              node.next.size());
        if (is_anomaly_enabled()) check_no_nan(node, input_grads);
        if (options.create_graph && !node.differentiable)
            refuse_double_backward(node, grad, input_grads);
        return input_grads;
    } catch (...) {
        // Running it again must fail cleanly ("a second time"), not half-run twice.
        if (!options.retain_graph) node.release();
        throw;
    }
}

// Step 3c: `child` receives a gradient (or just the news that none is coming)
// and becomes ready once every edge into it has reported.
void deliver(PassState& pass, Node* child, Tensor grad, bool create_graph) {
    if (!child) return;
    PassState::Slot& slot = pass[child];
    if (grad.defined()) add_gradient(slot.grad, std::move(grad), create_graph, false);
    if (--slot.dependencies == 0) pass.push_ready(child);
}

// grad() only: the gradient reaching `node` is the one wanted for every input
// `node` stands for (an input given twice gets it twice).
void capture(const PassOptions& options, Node* node, const Tensor& grad,
             std::vector<Tensor>& captured) {
    for (std::size_t i = 0; i < options.captures.size(); ++i) {
        if (options.captures[i].get() == node) captured[i] = grad;
    }
}

// Grad mode, and whether each node is freed after it ran, for one pass
// (passes nest: a hook or a recomputation may run one).
struct PassModes {
    bool grad_mode = GradMode::is_enabled(), freeing = freeing_graph;
    explicit PassModes(const PassOptions& options) {
        GradMode::set_enabled(options.create_graph);  // backward records only under create_graph
        freeing_graph = !options.retain_graph;
    }
    ~PassModes() {
        GradMode::set_enabled(grad_mode);
        freeing_graph = freeing;
    }
};

// The backward pass: seed the roots, count each node's dependencies, then run
// every node once all the nodes that use its output have delivered their
// gradients (Kahn's topological order; among ready nodes an accumulator runs
// first, then the latest-created, as in PyTorch). Without retain_graph each
// node is released right after it ran, so saved values are freed as the walk
// goes.
void run_pass(const Tensor* roots, const Tensor* grads, std::size_t count,
              const PassOptions& options, std::vector<Tensor>* captured) {
    PassModes modes(options);
    PassStateLease lease;
    PassState& pass = *lease;

    for (std::size_t i = 0; i < count; ++i) seed(pass, roots[i], grads[i], options.create_graph);
    count_dependencies(pass);
    if (options.capturing()) mark_needed(pass, options);
    for (auto& root : pass.roots) {
        PassState::Slot& slot = pass[root.get()];
        if (slot.dependencies == 0) {
            slot.dependencies = -1;  // queued once, even if it is a root twice
            pass.push_ready(root.get());
        }
    }
    while (Node* node = pass.pop_ready()) {
        PassState::Slot& slot = pass[node];
        Tensor grad = std::move(slot.grad);
        const bool runs = !options.capturing() || slot.needed;
        if (grad.defined()) run_tensor_hooks(*node, grad, options);
        if (slot.captured) capture(options, node, grad, *captured);
        Gradients input_grads;
        if (runs) input_grads = call_backward(*node, grad, options);
        grad = Tensor();  // dropped before the next node runs: the cache can recycle it
        for (std::size_t i = 0; i < node->next.size(); ++i) {
            deliver(pass, node->next[i].get(),
                    i < input_grads.size() ? std::move(input_grads[i]) : Tensor(),
                    options.create_graph);
        }
        if (runs && !options.retain_graph && !node->is_accumulator) node->release();
    }
}

std::vector<Tensor> seeds_for(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                              const char* op) {
    if (grads.empty()) return std::vector<Tensor>(roots.size());
    check(roots.size() == grads.size(), "{}: expected one grad per output (got {} for {})", op,
          grads.size(), roots.size());
    return grads;
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  std::optional<bool> retain_graph, bool create_graph) {
    const std::vector<Tensor> seeds = seeds_for(roots, grads, "backward");
    PassOptions options{retain_graph.value_or(create_graph), create_graph, {}};
    run_pass(roots.data(), seeds.data(), roots.size(), options, nullptr);
}

void run_backward(const Tensor& root, const Tensor& grad, std::optional<bool> retain_graph,
                  bool create_graph) {
    PassOptions options{retain_graph.value_or(create_graph), create_graph, {}};
    run_pass(&root, &grad, 1, options, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph,
                         bool create_graph, bool allow_unused) {
    check(!outputs.empty(), "grad: expected at least one output (got none)");
    check(!inputs.empty(), "grad: expected at least one input (got none)");
    const std::vector<Tensor> seeds = seeds_for(outputs, grad_outputs, "grad");
    PassOptions options{retain_graph.value_or(create_graph), create_graph, {}};
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        check(inputs[i].defined() && inputs[i].requires_grad(),
              "grad: input {} does not require grad: every input must be a tensor that requires "
              "grad",
              i);
        options.captures.push_back(gradient_edge(inputs[i]));
    }
    std::vector<Tensor> captured(inputs.size());
    run_pass(outputs.data(), seeds.data(), outputs.size(), options, &captured);
    for (std::size_t i = 0; i < captured.size(); ++i) {
        if (!captured[i].defined() && !allow_unused) {
            fail(
                "grad: input {} (shape {}) appears not to have been used in the graph; pass "
                "allow_unused=true if this is intended",
                i, shape_str(inputs[i].shape()));
        }
    }
    return captured;
}

}  // namespace autograd
}  // namespace xg
