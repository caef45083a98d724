// xg::autograd::to_dot: a tensor's backward graph as Graphviz DOT, drawn as
// torchviz's make_dot draws it, and render_svg, which has Graphviz's `dot` turn
// DOT into SVG.
//
// The picture: one grey box per grad_fn node, named as the op's node is
// ("MulBackward"); one light blue box per leaf that requires grad (its
// AccumulateGrad), labelled with its name and shape; the root tensor in green;
// an arrow wherever a gradient flows, from a node's input towards its output,
// so the graph reads from the leaves down to the root as the forward ran.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/autograd.hpp"
#include "xgrad/tensor.hpp"

namespace xg::autograd {

struct DotOptions {
    // Also draw, in orange beside each node, the values the engine recorded
    // for its backward (Node::saved_versions): every input for an op whose
    // backward reads inputs, even when it reads only some of them (the engine
    // records no finer detail), the output for one that reads its output.
    // Each shows its shape, and "modified in place" when its version moved
    // since, which makes that backward refuse to run. Values no one holds any
    // more are left out: the backward cannot be reading them.
    bool show_saved = false;
    // Names for leaves and for the root, e.g. module.named_parameters(); a
    // leaf without one is labelled by its shape alone.
    std::vector<std::pair<std::string, Tensor>> params;
    // The cluster a node is drawn in (a module path such as "ffn.layer1"), ""
    // for none; an empty function clusters nothing. Saved values follow their node.
    std::function<std::string(const Node&)> cluster_of;
    std::string graph_name = "backward";
};

// root's backward graph as DOT. Deterministic: nodes are numbered in the order
// a breadth-first walk from root meets them, never by address. An input used
// twice by one op gets two arrows. Nodes a backward already freed keep their
// name and lose their edges (marked "freed by backward"). root needs no
// grad_fn: a leaf, or a tensor without history, is a graph of one box.
std::string to_dot(const Tensor& root, const DotOptions& options = {});

// Writes `dot` rendered as SVG to svg_path by running Graphviz's `dot -Tsvg`
// (found on PATH, run without a shell). Throws xg::Error when `dot` is not
// installed, and with dot's own message when it fails (a syntax error, an
// unwritable svg_path).
void render_svg(const std::string& dot, const std::string& svg_path);

}  // namespace xg::autograd
