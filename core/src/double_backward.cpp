// Double backward: a node's saved values back in the graph, recomputation for
// ops whose gradient is long to write with ops, and the refusal for the rest.
//
// While the engine runs a backward under create_graph, grad mode is on, so a
// closure that computes its gradient with ops records a graph of the backward
// itself. What it needs for that are its saved values as tensors with the
// right history: an input's values with the history of that input (its edge),
// the output's values with this node as grad_fn, as PyTorch's SavedVariable
// unpacks them.
#include "double_backward.hpp"

#include "internal.hpp"
#include "object_pool.hpp"
#include "xgrad/ops.hpp"

namespace xg::autograd {

namespace {
thread_local Node* running_node = nullptr;
thread_local bool running_create_graph = false;

Node& current(const char* what) {
    check(running_node != nullptr, "{}: called outside a backward closure", what);
    return *running_node;
}

// `saved`'s values with `edge` as their history (none when edge is null). A
// leaf's edge is its AccumulateGrad node: a gradient reaching it goes to .grad.
Tensor with_history(const Tensor& saved, std::shared_ptr<Node> edge) {
    check(saved.defined(), "saved_input: expected a defined saved tensor");
    auto impl = detail::make_pooled<TensorImpl>();
    impl->storage = saved.impl()->storage;
    impl->requires_grad = edge != nullptr;
    impl->grad_fn = std::move(edge);
    return Tensor(std::move(impl));
}
}  // namespace

RunningBackwardScope::RunningBackwardScope(Node* node, bool create_graph)
    : node_(running_node), create_graph_(running_create_graph) {
    running_node = node;
    running_create_graph = create_graph;
}

RunningBackwardScope::~RunningBackwardScope() {
    running_node = node_;
    running_create_graph = create_graph_;
}

bool creating_graph() { return running_node != nullptr && running_create_graph; }

Tensor saved_input(std::size_t index, const Tensor& saved) {
    Node& node = current("saved_input");
    check(index < node.next.size(), "saved_input: {} has {} inputs (got index {})", node.name,
          node.next.size(), index);
    return with_history(saved, node.next[index]);
}

Tensor saved_output(const Tensor& saved) {
    return with_history(saved, current("saved_output").shared_from_this());
}

Gradients recomputed_gradients(const Tensor& grad, const std::vector<Tensor>& saved_inputs,
                               const std::function<Tensor(const std::vector<Tensor>&)>& forward) {
    std::vector<Tensor> inputs(saved_inputs.size()), wrt;
    std::vector<std::size_t> positions;
    for (std::size_t i = 0; i < saved_inputs.size(); ++i) {
        if (!saved_inputs[i].defined()) continue;
        inputs[i] = saved_input(i, saved_inputs[i]);
        if (!inputs[i].requires_grad()) continue;
        // A node of its own per input, so that grad() captures exactly this
        // input's gradient even when two inputs share a history.
        inputs[i] = make_result(
            inputs[i].detach(), "AliasBackward", {inputs[i]},
            [](const Tensor& g) { return Gradients{g}; }, DoubleBackward::Supported);
        wrt.push_back(inputs[i]);
        positions.push_back(i);
    }
    Gradients result(std::vector<Tensor>(saved_inputs.size()));
    if (wrt.empty()) return result;
    Tensor output = forward(inputs);
    std::vector<Tensor> grads = autograd::grad({output}, wrt, {grad}, true, true, true);
    for (std::size_t k = 0; k < wrt.size(); ++k) result[positions[k]] = std::move(grads[k]);
    return result;
}

void refuse_double_backward(Node& node, const Tensor& grad_output, Gradients& input_grads) {
    std::vector<Tensor> depends_on{grad_output};
    for (auto& edge : node.next) {
        if (edge) depends_on.push_back(with_history(grad_output, edge));
    }
    const std::string name = std::string(node.name) + "Backward";
    for (Tensor& g : input_grads) {
        if (!g.defined()) continue;
        g = make_result(g, name.c_str(), depends_on, [op = node.name](const Tensor&) -> Gradients {
            fail(
                "backward: the derivative of {} is not implemented for double backward "
                "(create_graph=true); its first derivative is exact, but it cannot be "
                "differentiated again",
                op);
        });
    }
}

}  // namespace xg::autograd

namespace xg::detail {
Tensor with_zero_derivative(const Tensor& value, const Tensor& on) {
    if (!on.requires_grad()) return value;
    return autograd::make_result(
        value.detach(), "ZeroDerivativeBackward", {value, on},
        [](const Tensor& g) {
            return autograd::Gradients{g, zeros_like(g)};
        },
        autograd::DoubleBackward::Supported);
}
}  // namespace xg::detail
