// autograd::Node's lifetime: creation order and freeing a graph without recursion.
//
// A node owns the nodes of its inputs, so dropping the last handle to a loss
// frees the whole graph through shared_ptr destructors. Left alone, that is one
// nested destructor call per node along a chain: a graph of 100,000 ops would
// overflow the stack. ~Node therefore hands its edges to the outermost ~Node
// running on this thread, which releases them one at a time.
#include <atomic>

#include "per_thread.hpp"
#include "xgrad/autograd.hpp"

namespace xg::autograd {

namespace {
std::atomic<long> live_nodes{0};
std::atomic<std::uint64_t> next_sequence_nr{0};

// Nodes whose last owner was a dying node's edge, waiting for the outermost
// ~Node. Reused, so freeing a graph allocates nothing once warm.
struct PendingFrees {
    std::vector<std::shared_ptr<Node>> nodes;
    bool draining = false;
};
}  // namespace

Node::Node(std::string name_, Edges next_, BackwardFn backward_)
    : name(std::move(name_)),
      next(std::move(next_)),
      backward(std::move(backward_)),
      sequence_nr(next_sequence_nr++) {
    ++live_nodes;
}

Node::~Node() {
    --live_nodes;
    if (next.empty()) return;
    PendingFrees* pending = detail::per_thread<PendingFrees>();
    if (!pending) return;  // thread exit: edges are released the recursive way
    for (auto& child : next) {
        if (child) pending->nodes.push_back(std::move(child));
    }
    if (pending->draining) return;  // an outer ~Node releases them
    pending->draining = true;
    while (!pending->nodes.empty()) {
        std::shared_ptr<Node> node = std::move(pending->nodes.back());
        pending->nodes.pop_back();
        node.reset();  // may run a nested ~Node, which only pushes more
    }
    pending->draining = false;
}

long Node::live_count() { return live_nodes.load(); }

void Node::release() {
    backward = nullptr;  // frees what the closure saved
    next.clear();
    saved_versions.clear();  // and the weak references that kept its control blocks
    released = true;
}

}  // namespace xg::autograd
