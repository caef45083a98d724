// What the engine tells a backward closure while it runs it, for double
// backward (create_graph): which node runs, and whether the pass records.
// engine.cpp sets it; double_backward.cpp turns a node's saved values back
// into tensors with histories and refuses second derivatives it cannot give.
#pragma once

#include "xgrad/autograd.hpp"

namespace xg::autograd {

// RAII: `node`'s backward is running on this thread, in a pass that records a
// graph when create_graph. Passes nest (a recomputation runs one inside a
// backward), so the previous values come back at the end.
class RunningBackwardScope {
public:
    RunningBackwardScope(Node* node, bool create_graph);
    ~RunningBackwardScope();
    RunningBackwardScope(const RunningBackwardScope&) = delete;
    RunningBackwardScope& operator=(const RunningBackwardScope&) = delete;

private:
    Node* node_;
    bool create_graph_;
};

// Under create_graph, for a node whose backward computed `input_grads` with
// raw loops: each gradient becomes the output of a node over grad_output and
// the node's inputs whose backward throws, naming the op. The first-order
// values are exact; only differentiating them again is refused.
void refuse_double_backward(Node& node, const Tensor& grad_output, Gradients& input_grads);

}  // namespace xg::autograd
