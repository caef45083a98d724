// xg::inspect::GraphRecorder: the modules of a backward graph, for its picture
// (xg::autograd::to_dot). While alive it watches every call of the model's
// modules through forward hooks and notes which module each graph node was
// made in; to_dot then draws each module's nodes in a box named by its path.
//
//   xg::inspect::GraphRecorder recorder(*ffn);
//   Tensor loss = xg::sum((*ffn)(x));
//   xg::autograd::render_svg(recorder.to_dot(loss), "ffn.svg");
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "xgrad/nn/module.hpp"
#include "xgrad/removable_handle.hpp"
#include "xgrad/tensor.hpp"

namespace xg::inspect {

// A node belongs to the innermost module whose forward was running when the
// node was made: a FeedForward's gating product to the FeedForward, its
// projections to layer1, linear_v and layer2. Its hooks make FeedForward run
// its activation and gate as separate ops rather than one fused node (it fuses
// only when its parts have no hooks), so the picture shows each of them.
//
// The model must outlive the recorder. Forwards are recorded one thread at a
// time; a node made outside every module call (the loss) is in no cluster.
class GraphRecorder {
public:
    explicit GraphRecorder(nn::Module& model);
    ~GraphRecorder() { remove(); }
    GraphRecorder(const GraphRecorder&) = delete;
    GraphRecorder& operator=(const GraphRecorder&) = delete;

    // root's backward graph as DOT: leaves named as model.named_parameters()
    // names them and drawn with the module that owns them, every other node
    // with the module it was made in (the model itself, path "", draws no box).
    std::string to_dot(const Tensor& root, bool show_saved = false) const;

    // The path of the module `node` was made in; "" for the model itself, a
    // node made outside it, or one made while nothing was recorded.
    std::string module_of(const autograd::Node& node) const;

    // Removes the hooks; what was recorded stays. Idempotent.
    void remove();

private:
    struct Call {
        const nn::Module* module;
        std::string path;
        std::uint64_t first_node;  // every node made during the call has a higher sequence_nr
    };
    struct Owner {
        std::weak_ptr<const autograd::Node> node;  // tells a live entry from a stale one
        std::string path;
    };
    void enter(const nn::Module& module, const std::string& path);
    void leave(const nn::Module& module, const std::vector<Tensor>& outputs);

    nn::Module& model_;
    std::vector<RemovableHandle> handles_;
    std::vector<Call> calls_;  // the module calls running, outermost first
    std::unordered_map<const autograd::Node*, Owner> owners_;
    std::size_t live_after_prune_ = 0;
};

}  // namespace xg::inspect
