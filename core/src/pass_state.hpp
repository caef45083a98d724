// What one backward pass keeps while it walks the graph: for every reachable
// node its pending gradient and how many edges have yet to deliver one, and
// the nodes ready to run. The engine (engine.cpp) reads like the algorithm;
// this file holds the bookkeeping that makes it allocation-free once warm.
#pragma once

#include <memory>
#include <vector>

#include "xgrad/autograd.hpp"

namespace xg::autograd {

class PassState {
public:
    struct Slot {
        Node* node = nullptr;
        int dependencies = 0;  // edges that have yet to deliver a gradient; -1 once queued
        Tensor grad;           // the sum of what they delivered so far
        // autograd::grad only (mark_needed): a node whose gradient is wanted,
        // one whose backward must run to reach such a node, and the walk's mark.
        bool captured = false, needed = false;
        char visit = 0;
    };

    std::vector<std::shared_ptr<Node>> roots;
    std::vector<std::shared_ptr<Node>> reachable;  // every node of the pass, kept alive

    // The slot of `node`, made on first use.
    Slot& operator[](Node* node);

    // Ready nodes come out latest-created first, as in PyTorch: a node's
    // consumers were created after it, so a chain runs in reverse order.
    // Accumulators come out before any other node, as PyTorch's AccumulateGrad
    // does: a leaf's .grad is final as soon as every gradient for it arrived.
    void push_ready(Node* node);
    Node* pop_ready();  // nullptr when none is ready
    bool is_root(const Node* node) const;

    // Back to empty; capacity is kept unless one huge graph left a lot of it.
    void clear();

private:
    static Slot* probe(std::vector<Slot>& slots, Node* node);
    void grow();

    std::vector<Node*> ready_;  // a heap on sequence_nr
    // Open addressing with linear probing: size 0 or a power of two, at most half full.
    std::vector<Slot> slots_;
    std::vector<std::size_t> occupied_;  // the slots in use, so clear() visits only those
};

// A PassState from this thread's spares (a hook may start a nested backward),
// cleared and handed back when the pass ends, normally or not.
class PassStateLease {
public:
    PassStateLease();
    ~PassStateLease();
    PassStateLease(const PassStateLease&) = delete;
    PassStateLease& operator=(const PassStateLease&) = delete;
    PassState& operator*() { return *state_; }

private:
    std::unique_ptr<PassState> state_;
};

}  // namespace xg::autograd
