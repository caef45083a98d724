// autograd::Node's lifetime: creation order and freeing a graph without recursion.
//
// A node owns the nodes of its inputs, so dropping the last handle to a loss
// frees the whole graph through shared_ptr destructors. Left alone, that is one
// nested destructor call per node along a chain: a graph of 100,000 ops would
// overflow the stack. ~Node therefore hands its edges to the outermost ~Node
// running on this thread, which releases them one at a time.
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_set>

#include "internal.hpp"
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

// A node keeps its name as a view into a program-long set of names: op names
// are few, and most pass 15 characters, where std::string would allocate for
// every node. Each thread remembers its recent names by address, so an op that
// passes a literal finds its name without the lock; the text is compared too,
// because a caller's buffer can come back at the same address with other text.
std::string_view intern(std::string_view name) {
    struct Recent {
        const char* data = nullptr;
        std::string_view interned;
    };
    thread_local std::array<Recent, 64> recent{};
    const auto address = reinterpret_cast<std::uintptr_t>(name.data());
    auto& slot = recent[(address * 0x9E3779B97F4A7C15ull) >> 58];
    if (slot.data == name.data() && slot.interned == name) return slot.interned;

    // Never freed: nodes held by other statics may outlive this set.
    static std::mutex mutex;
    static auto* names = new std::unordered_set<std::string_view>();
    std::lock_guard lock(mutex);
    auto found = names->find(name);
    if (found == names->end()) {
        char* text = new char[name.size()];
        std::memcpy(text, name.data(), name.size());
        found = names->insert(std::string_view(text, name.size())).first;
    }
    slot = {name.data(), *found};
    return slot.interned;
}
}  // namespace

Node::Node(std::string_view name_, Edges&& next_, BackwardFn&& backward_)
    : name(intern(name_)),
      next(std::move(next_)),
      backward(std::move(backward_)),
      sequence_nr(next_sequence_nr++) {
    ++live_nodes;
}

std::shared_ptr<Node> make_accumulator(const std::shared_ptr<TensorImpl>& leaf) {
    auto accumulator = detail::make_pooled<Node>("AccumulateGrad", Node::Edges{}, BackwardFn{});
    accumulator->is_accumulator = true;
    accumulator->output = leaf;
    --live_nodes;  // it lives with its leaf: live_count() counts the nodes of graphs
    return accumulator;
}

Node::~Node() {
    if (!is_accumulator) --live_nodes;
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
