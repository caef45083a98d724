// The autograd engine: recording nodes while ops run, and walking them back.
//
// Ownership runs one way only: a tensor owns the node that made it, a node owns
// the nodes of its inputs. Nodes see tensors through weak pointers (for hooks
// and retain_grad), so dropping the last output handle frees the whole graph.
#include <algorithm>
#include <atomic>
#include <cmath>

#include <xtensor/xnoalias.hpp>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "object_pool.hpp"
#include "per_thread.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {
thread_local bool grad_mode_enabled = true;
thread_local bool freeing_graph = false;  // the running backward frees each node after it
std::atomic<bool> anomaly_enabled{false};
thread_local std::vector<std::string> anomaly_scopes;  // module path, outermost first
std::atomic<long> live_nodes{0};
std::atomic<std::uint64_t> next_sequence_nr{0};
constexpr const char* kAccumulateGrad = "AccumulateGrad";
}  // namespace

bool GradMode::is_enabled() { return grad_mode_enabled; }
void GradMode::set_enabled(bool enabled) { grad_mode_enabled = enabled; }

namespace detail {
bool backward_frees_saved_values() { return freeing_graph; }
}  // namespace detail

namespace autograd {

void set_detect_anomaly(bool enabled) { anomaly_enabled.store(enabled, std::memory_order_relaxed); }
bool is_anomaly_enabled() { return anomaly_enabled.load(std::memory_order_relaxed); }

AnomalyScope::AnomalyScope(std::string name) { anomaly_scopes.push_back(std::move(name)); }
AnomalyScope::~AnomalyScope() { anomaly_scopes.pop_back(); }

Node::Node(std::string name_, Edges next_, BackwardFn backward_)
    : name(std::move(name_)),
      next(std::move(next_)),
      backward(std::move(backward_)),
      sequence_nr(next_sequence_nr++) {
    ++live_nodes;
}

namespace {
// Nodes whose last owner was a dying node's edge, waiting to be released by
// the outermost ~Node on this thread. Reused, so freeing a graph allocates
// nothing once warm.
struct PendingFrees {
    std::vector<std::shared_ptr<Node>> nodes;
    bool draining = false;
};
}  // namespace

Node::~Node() {
    --live_nodes;
    if (next.empty()) return;
    // Free long chains iteratively: releasing an edge may destroy its node,
    // whose destructor would release its edges, and so on down the chain, which
    // overflows the stack on deep graphs. Nested destructors hand their edges to
    // the outermost one, which releases them one at a time.
    PendingFrees* pending = detail::per_thread<PendingFrees>();
    if (!pending) return;  // thread exit: edges are released the recursive way
    for (auto& child : next) {
        if (child) pending->nodes.push_back(std::move(child));
    }
    if (pending->draining) return;
    pending->draining = true;
    while (!pending->nodes.empty()) {
        std::shared_ptr<Node> node = std::move(pending->nodes.back());
        pending->nodes.pop_back();
        node.reset();  // may run a nested ~Node, which pushes more
    }
    pending->draining = false;
}

long Node::live_count() { return live_nodes.load(); }

namespace {

bool is_accumulator(const Node& node) { return node.name == kAccumulateGrad; }

// The node a gradient for `t` flows into: its grad_fn, or the (shared) node
// that accumulates into a leaf's .grad.
std::shared_ptr<Node> gradient_edge(const Tensor& t) {
    TensorImpl& impl = *t.impl();
    if (impl.grad_fn) return impl.grad_fn;
    if (auto existing = impl.grad_accumulator.lock()) return existing;
    auto accumulator = detail::make_pooled<Node>(kAccumulateGrad, Node::Edges{}, BackwardFn{});
    accumulator->output = t.impl_ptr();
    impl.grad_accumulator = accumulator;
    return accumulator;
}

bool uniquely_owned(const Tensor& t) {
    return t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1;
}

// slot += g, in place when nobody else can see slot's storage.
void accumulate(Tensor& slot, Tensor g, bool slot_is_private) {
    if (!slot.defined()) {
        slot = uniquely_owned(g) ? std::move(g) : g.detach().clone();
        return;
    }
    if (!detail::same_shape(slot, g)) {
        fail("backward: gradient of shape {} does not match shape {}", shape_str(g.shape()),
             shape_str(slot.shape()));
    }
    if (!slot_is_private && !uniquely_owned(slot)) {
        slot = add(slot, g);
        return;
    }
    detail::visit_floating(slot, "backward", [&](auto& s) {
        using T = typename std::decay_t<decltype(s)>::value_type;
        xt::noalias(s) += g.template data<T>();
        return slot;
    });
}

// After a pass without retain_graph: what the node saved is gone.
void release(Node& node) {
    node.backward = nullptr;
    node.next.clear();
    node.released = true;
}

// Where a node's forward op ran, for anomaly messages.
std::string creation_point() {
    if (anomaly_scopes.empty()) return "outside any module";
    return fmt::format("in module {}", fmt::join(anomaly_scopes, "."));
}

bool has_nan(const Tensor& t) {
    if (!is_floating_point(t.dtype())) return false;
    bool nan = false;
    detail::visit_floating(t, "backward", [&](const auto& a) {
        for (auto v : a) nan = nan || std::isnan(v);
        return t;
    });
    return nan;
}

// Anomaly mode, as PyTorch's: a gradient a node's backward returns must hold
// no NaN. Inf passes (sqrt at 0 is a legitimate Inf), so the op named in a
// NaN chain is the one PyTorch names.
void check_no_nan(const Node& node, const Gradients& input_grads) {
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
        if (!input_grads[i].defined() || !has_nan(input_grads[i])) continue;
        std::string op = node.name;
        if (op.ends_with("Backward")) op.resize(op.size() - 8);
        throw Error(fmt::format(
            "Function '{}' returned nan values in its {}th output. Its forward op {} (gradient "
            "shape {}) was created {}.",
            node.name, i, op, shape_str(input_grads[i].shape()),
            node.creation.empty() ? "before anomaly detection was enabled" : node.creation));
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

}  // namespace

namespace {

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

// What one backward pass keeps: per reachable node its pending gradient and
// how many edges have yet to deliver one. Kept per thread and reused, so a
// training loop's backward allocates nothing of its own once warm.
class PassState {
public:
    struct Slot {
        Node* node = nullptr;
        int dependencies = 0;  // -1 once queued
        Tensor grad;
    };

    std::vector<std::shared_ptr<Node>> roots;
    std::vector<std::shared_ptr<Node>> reachable;  // also keeps every node alive
    std::vector<Node*> ready;                      // a heap, the latest node on top

    // The slot of `node`, made on first use: open addressing with linear probing.
    Slot& operator[](Node* node) {
        if (2 * (used_ + 1) > slots_.size()) grow();
        Slot* slot = probe(slots_, node);
        if (slot->node == nullptr) {
            slot->node = node;
            ++used_;
        }
        return *slot;
    }

    // Back to empty; capacity is kept unless one huge graph left a lot of it.
    void clear() {
        roots.clear();
        reachable.clear();
        ready.clear();
        if (slots_.size() > 4096 && 16 * used_ < slots_.size()) {
            std::vector<Slot>().swap(slots_);
        } else {
            for (Slot& slot : slots_) {
                if (slot.node) slot = Slot{};
            }
        }
        used_ = 0;
    }

private:
    static Slot* probe(std::vector<Slot>& slots, Node* node) {
        const std::size_t mask = slots.size() - 1;
        std::size_t i = (reinterpret_cast<std::uintptr_t>(node) >> 4) * 0x9e3779b97f4a7c15ULL;
        for (i &= mask; slots[i].node != nullptr && slots[i].node != node; i = (i + 1) & mask) {
        }
        return &slots[i];
    }

    void grow() {
        std::vector<Slot> bigger(std::max<std::size_t>(64, 2 * slots_.size()));
        for (Slot& slot : slots_) {
            if (slot.node) *probe(bigger, slot.node) = std::move(slot);
        }
        slots_.swap(bigger);
    }

    std::vector<Slot> slots_;  // size 0 or a power of two, at most half full
    std::size_t used_ = 0;
};

// A PassState from this thread's spares (a hook may start a nested backward),
// cleared and handed back when the pass ends, normally or not.
class PassStateLease {
public:
    PassStateLease() {
        if (spares().empty()) {
            state_ = std::make_unique<PassState>();
        } else {
            state_ = std::move(spares().back());
            spares().pop_back();
        }
    }
    ~PassStateLease() {
        state_->clear();
        spares().push_back(std::move(state_));
    }
    PassStateLease(const PassStateLease&) = delete;
    PassStateLease& operator=(const PassStateLease&) = delete;
    PassState& operator*() { return *state_; }

private:
    static std::vector<std::unique_ptr<PassState>>& spares() {
        thread_local std::vector<std::unique_ptr<PassState>> list;
        return list;
    }
    std::unique_ptr<PassState> state_;
};

}  // namespace

namespace {
// A tensor of ones shaped like the one-element `root`, its implicit seed.
Tensor ones_seed(const Tensor& root) {
    return detail::visit_floating(root, "backward", [&]<class T>(xt::xarray<T>& a) {
        auto ones = detail::empty_array<T>(a.shape());
        std::fill(ones.begin(), ones.end(), T(1));
        return detail::wrap(std::move(ones));
    });
}

void run_pass(const Tensor* roots, const Tensor* grads, std::size_t count, bool retain_graph);
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

namespace {
void run_pass(const Tensor* roots, const Tensor* grads, std::size_t count, bool retain_graph) {
    NoGradGuard no_grad;   // backward closures must not record a graph of their own
    struct FreeingGraph {  // set for this pass, restored after it (passes may nest)
        bool previous = freeing_graph;
        explicit FreeingGraph(bool value) { freeing_graph = value; }
        ~FreeingGraph() { freeing_graph = previous; }
    } freeing(!retain_graph);
    PassStateLease lease;
    PassState& pass = *lease;
    for (std::size_t i = 0; i < count; ++i) {
        const Tensor& root = roots[i];
        check(root.defined(), "backward: expected a defined tensor (got an undefined one)");
        check(root.requires_grad(),
              "backward: expected a tensor that requires grad (got one that does not)");
        Tensor seed = grads[i];
        if (!seed.defined()) {
            if (root.numel() != 1) {
                fail(
                    "backward: grad can be implicitly created only for a one-element tensor (got "
                    "shape {})",
                    shape_str(root.shape()));
            }
            seed = ones_seed(root);
        }
        if (!detail::same_shape(seed, root) || seed.dtype() != root.dtype()) {
            fail("backward: expected grad of shape {} and dtype {} (got {} and {})",
                 shape_str(root.shape()), dtype_name(root.dtype()), shape_str(seed.shape()),
                 dtype_name(seed.dtype()));
        }
        auto node = gradient_edge(root);
        accumulate(pass[node.get()].grad, std::move(seed), false);
        pass.roots.push_back(std::move(node));
    }

    // Count, for every reachable node, the edges that will deliver a gradient to it.
    // `reachable` also keeps every node alive while released nodes drop their edges.
    for (auto& node : pass.roots) {
        if (std::find(pass.reachable.begin(), pass.reachable.end(), node) == pass.reachable.end())
            pass.reachable.push_back(node);
    }
    for (std::size_t visited = 0; visited < pass.reachable.size(); ++visited) {
        Node* node = pass.reachable[visited].get();
        check(!node->released,
              "backward: the graph of {} was already freed; pass retain_graph=true to backward "
              "through it twice",
              node->name);
        for (auto& child : node->next) {
            if (!child) continue;
            PassState::Slot& slot = pass[child.get()];
            bool first_visit = slot.dependencies++ == 0 &&
                               std::find(pass.roots.begin(), pass.roots.end(), child) ==
                                   pass.roots.end();  // roots are in `reachable` already
            if (first_visit) pass.reachable.push_back(child);
        }
    }

    // Kahn's walk; among ready nodes the most recently created runs first.
    auto earlier = [](Node* a, Node* b) { return a->sequence_nr < b->sequence_nr; };
    auto push_ready = [&](Node* node) {
        pass.ready.push_back(node);
        std::push_heap(pass.ready.begin(), pass.ready.end(), earlier);
    };
    for (auto& node : pass.roots) {
        PassState::Slot& slot = pass[node.get()];
        if (slot.dependencies == 0) {
            slot.dependencies = -1;  // queued
            push_ready(node.get());
        }
    }
    while (!pass.ready.empty()) {
        std::pop_heap(pass.ready.begin(), pass.ready.end(), earlier);
        Node* node = pass.ready.back();
        pass.ready.pop_back();
        Tensor grad = std::move(pass[node].grad);
        if (grad.defined()) {
            if (auto output = node->output.lock()) {
                if (!output->hooks.empty()) {
                    for (auto& [id, hook] : std::vector(output->hooks)) {
                        if (Tensor replaced = hook(grad); replaced.defined()) {
                            check_hook_result(grad, replaced, id);
                            grad = std::move(replaced);
                        }
                    }
                }
                if (is_accumulator(*node)) {
                    accumulate(output->grad, std::move(grad), true);  // steal it when unshared
                } else if (output->retains_grad) {
                    accumulate(output->grad, grad.detach().clone(), true);
                }
            }
        }
        Gradients input_grads;
        if (grad.defined() && node->backward) {
            try {
                input_grads = node->backward(grad);
                check(input_grads.size() == node->next.size(),
                      "backward: {} returned {} gradients for {} inputs", node->name,
                      input_grads.size(), node->next.size());
                if (is_anomaly_enabled()) check_no_nan(*node, input_grads);
            } catch (...) {
                // Its backward may have written over what it saved: running it
                // again must fail cleanly ("already freed"), not read the remains.
                if (!retain_graph) release(*node);
                throw;
            }
        }
        grad = Tensor();  // let this node's backward reuse its buffer before the next runs
        for (std::size_t i = 0; i < node->next.size(); ++i) {
            Node* child = node->next[i].get();
            if (!child) continue;
            PassState::Slot& slot = pass[child];
            if (i < input_grads.size() && input_grads[i].defined()) {
                accumulate(slot.grad, std::move(input_grads[i]), false);
            }
            if (--slot.dependencies == 0) push_ready(child);
        }
        if (!retain_graph && !is_accumulator(*node))
            release(*node);  // frees saved tensors as we go
    }
}
}  // namespace

}  // namespace autograd
}  // namespace xg
