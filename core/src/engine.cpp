// The autograd engine: recording nodes while ops run, and walking them back.
//
// Ownership runs one way only: a tensor owns the node that made it, a node owns
// the nodes of its inputs. Nodes see tensors through weak pointers (for hooks
// and retain_grad), so dropping the last output handle frees the whole graph.
#include <atomic>
#include <cmath>
#include <queue>
#include <unordered_map>

#include <xtensor/xnoalias.hpp>

#include "internal.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {
thread_local bool grad_mode_enabled = true;
std::atomic<bool> anomaly_enabled{false};
thread_local std::vector<std::string> anomaly_scopes;  // module path, outermost first
std::atomic<long> live_nodes{0};
std::atomic<std::uint64_t> next_sequence_nr{0};
constexpr const char* kAccumulateGrad = "AccumulateGrad";
}  // namespace

bool GradMode::is_enabled() { return grad_mode_enabled; }
void GradMode::set_enabled(bool enabled) { grad_mode_enabled = enabled; }

namespace autograd {

void set_detect_anomaly(bool enabled) { anomaly_enabled.store(enabled, std::memory_order_relaxed); }
bool is_anomaly_enabled() { return anomaly_enabled.load(std::memory_order_relaxed); }

AnomalyScope::AnomalyScope(std::string name) { anomaly_scopes.push_back(std::move(name)); }
AnomalyScope::~AnomalyScope() { anomaly_scopes.pop_back(); }

Node::Node(std::string name_, std::vector<std::shared_ptr<Node>> next_, BackwardFn backward_)
    : name(std::move(name_)),
      next(std::move(next_)),
      backward(std::move(backward_)),
      sequence_nr(next_sequence_nr++) {
    ++live_nodes;
}

Node::~Node() {
    --live_nodes;
    // Free long chains iteratively: recursive shared_ptr destruction of a
    // deep graph would overflow the stack.
    std::vector<std::shared_ptr<Node>> pending = std::move(next);
    while (!pending.empty()) {
        std::shared_ptr<Node> node = std::move(pending.back());
        pending.pop_back();
        if (node && node.use_count() == 1) {
            for (auto& child : node->next) pending.push_back(std::move(child));
            node->next.clear();
        }
    }
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
    auto accumulator =
        std::make_shared<Node>(kAccumulateGrad, std::vector<std::shared_ptr<Node>>{}, BackwardFn{});
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
    check(slot.shape() == g.shape(), "backward: gradient of shape {} does not match shape {}",
          shape_str(g.shape()), shape_str(slot.shape()));
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

// Where a node's forward op ran, for anomaly messages.
std::string creation_point() {
    if (anomaly_scopes.empty()) return "outside any module";
    return fmt::format("in module {}", fmt::join(anomaly_scopes, "."));
}

// "NaN" or "Inf" if `t` holds one (NaN wins), else nullptr.
const char* non_finite(const Tensor& t) {
    if (t.dtype() == Dtype::Int64) return nullptr;
    bool nan = false, inf = false;
    detail::visit_floating(t, "backward", [&](const auto& a) {
        for (auto v : a) {
            nan = nan || std::isnan(v);
            inf = inf || std::isinf(v);
        }
        return t;
    });
    return nan ? "NaN" : inf ? "Inf" : nullptr;
}

// Anomaly mode: every gradient a node's backward returns must be finite.
void check_finite(const Node& node, const std::vector<Tensor>& input_grads) {
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
        if (!input_grads[i].defined()) continue;
        if (const char* bad = non_finite(input_grads[i])) {
            std::string op = node.name;
            if (op.ends_with("Backward")) op.resize(op.size() - 8);
            throw Error(fmt::format(
                "backward: {} returned {} in the gradient for input {} (shape {}); its forward op "
                "{} was created {}",
                node.name, bad, i, shape_str(input_grads[i].shape()), op,
                node.creation.empty() ? "before anomaly detection was enabled" : node.creation));
        }
    }
}

}  // namespace

Tensor make_result(Tensor value, const char* name, const std::vector<Tensor>& inputs,
                   BackwardFn backward) {
    if (!GradMode::is_enabled()) return value;
    std::vector<std::shared_ptr<Node>> next;
    next.reserve(inputs.size());
    bool any = false;
    for (const Tensor& input : inputs) {
        bool needs = input.defined() && input.requires_grad();
        next.push_back(needs ? gradient_edge(input) : nullptr);
        any = any || needs;
    }
    if (!any) return value;
    auto node = std::make_shared<Node>(name, std::move(next), std::move(backward));
    if (is_anomaly_enabled()) node->creation = creation_point();
    node->output = value.impl_ptr();
    value.impl()->grad_fn = std::move(node);
    value.impl()->requires_grad = true;
    return value;
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph) {
    NoGradGuard no_grad;  // backward closures must not record a graph of their own
    std::unordered_map<Node*, Tensor> buffer;
    std::vector<std::shared_ptr<Node>> root_nodes;
    for (std::size_t i = 0; i < roots.size(); ++i) {
        const Tensor& root = roots[i];
        check(root.defined(), "backward: expected a defined tensor (got an undefined one)");
        check(root.requires_grad(),
              "backward: expected a tensor that requires grad (got one that does not)");
        Tensor seed = grads[i];
        if (!seed.defined()) {
            check(root.numel() == 1,
                  "backward: grad can be implicitly created only for a one-element tensor (got "
                  "shape {})",
                  shape_str(root.shape()));
            seed = ones_like(root);
        }
        check(seed.shape() == root.shape() && seed.dtype() == root.dtype(),
              "backward: expected grad of shape {} and dtype {} (got {} and {})",
              shape_str(root.shape()), dtype_name(root.dtype()), shape_str(seed.shape()),
              dtype_name(seed.dtype()));
        auto node = gradient_edge(root);
        accumulate(buffer[node.get()], seed, false);
        root_nodes.push_back(std::move(node));
    }

    // Count, for every reachable node, the edges that will deliver a gradient to it.
    // `reachable` also keeps every node alive while released nodes drop their edges.
    std::unordered_map<Node*, int> dependencies;
    std::vector<std::shared_ptr<Node>> reachable;
    for (auto& node : root_nodes) {
        if (dependencies.emplace(node.get(), 0).second) reachable.push_back(node);
    }
    for (std::size_t visited = 0; visited < reachable.size(); ++visited) {
        Node* node = reachable[visited].get();
        check(!node->released,
              "backward: the graph of {} was already freed; pass retain_graph=true to backward "
              "through it twice",
              node->name);
        for (auto& child : node->next) {
            if (!child) continue;
            auto [entry, first_visit] = dependencies.emplace(child.get(), 0);
            ++entry->second;
            if (first_visit) reachable.push_back(child);
        }
    }

    // Kahn's walk; among ready nodes the most recently created runs first.
    auto later_first = [](Node* a, Node* b) { return a->sequence_nr < b->sequence_nr; };
    std::priority_queue<Node*, std::vector<Node*>, decltype(later_first)> ready(later_first);
    for (auto& node : root_nodes) {
        if (dependencies[node.get()] == 0) {
            dependencies[node.get()] = -1;  // queued
            ready.push(node.get());
        }
    }
    while (!ready.empty()) {
        Node* node = ready.top();
        ready.pop();
        Tensor grad;
        if (auto it = buffer.find(node); it != buffer.end()) {
            grad = std::move(it->second);
            buffer.erase(it);
        }
        if (grad.defined()) {
            if (auto output = node->output.lock()) {
                for (auto& [id, hook] : std::vector(output->hooks)) {
                    if (Tensor replaced = hook(grad); replaced.defined()) grad = replaced;
                }
                if (is_accumulator(*node)) {
                    accumulate(output->grad, std::move(grad), true);  // steal it when unshared
                } else if (output->retains_grad) {
                    accumulate(output->grad, grad.detach().clone(), true);
                }
            }
        }
        std::vector<Tensor> input_grads;
        if (grad.defined() && node->backward) {
            input_grads = node->backward(grad);
            check(input_grads.size() == node->next.size(),
                  "backward: {} returned {} gradients for {} inputs", node->name,
                  input_grads.size(), node->next.size());
            if (is_anomaly_enabled()) check_finite(*node, input_grads);
        }
        for (std::size_t i = 0; i < node->next.size(); ++i) {
            Node* child = node->next[i].get();
            if (!child) continue;
            if (i < input_grads.size() && input_grads[i].defined()) {
                accumulate(buffer[child], std::move(input_grads[i]), false);
            }
            if (--dependencies[child] == 0) ready.push(child);
        }
        if (!retain_graph && !is_accumulator(*node)) {
            node->backward = nullptr;  // frees saved tensors as we go
            node->next.clear();
            node->released = true;
        }
    }
}

}  // namespace autograd
}  // namespace xg
