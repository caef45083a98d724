// PassState's slot table and ready heap, and the per-thread spares behind PassStateLease.
#include "pass_state.hpp"

#include <algorithm>
#include <cstdint>

namespace xg::autograd {

PassState::Slot& PassState::operator[](Node* node) {
    if (2 * (occupied_.size() + 1) > slots_.size()) grow();
    Slot* slot = probe(slots_, node);
    if (slot->node == nullptr) {
        slot->node = node;
        occupied_.push_back(static_cast<std::size_t>(slot - slots_.data()));
    }
    return *slot;
}

namespace {
// The heap's order: true when `a` runs after `b`.
bool runs_after(const Node* a, const Node* b) {
    if (a->is_accumulator != b->is_accumulator) return b->is_accumulator;
    return a->sequence_nr < b->sequence_nr;
}
}  // namespace

void PassState::push_ready(Node* node) {
    ready_.push_back(node);
    std::push_heap(ready_.begin(), ready_.end(), runs_after);
}

Node* PassState::pop_ready() {
    if (ready_.empty()) return nullptr;
    std::pop_heap(ready_.begin(), ready_.end(), runs_after);
    Node* node = ready_.back();
    ready_.pop_back();
    return node;
}

bool PassState::is_root(const Node* node) const {
    return std::any_of(roots.begin(), roots.end(),
                       [node](const std::shared_ptr<Node>& root) { return root.get() == node; });
}

void PassState::clear() {
    roots.clear();
    reachable.clear();
    ready_.clear();
    if (slots_.size() > 4096 && 16 * occupied_.size() < slots_.size()) {
        std::vector<Slot>().swap(slots_);
        std::vector<std::size_t>().swap(occupied_);
    } else {
        for (std::size_t i : occupied_) slots_[i] = Slot{};
        occupied_.clear();
    }
}

PassState::Slot* PassState::probe(std::vector<Slot>& slots, Node* node) {
    const std::size_t mask = slots.size() - 1;
    std::size_t i = (reinterpret_cast<std::uintptr_t>(node) >> 4) * 0x9e3779b97f4a7c15ULL;
    for (i &= mask; slots[i].node != nullptr && slots[i].node != node; i = (i + 1) & mask) {
    }
    return &slots[i];
}

void PassState::grow() {
    std::vector<Slot> bigger(std::max<std::size_t>(64, 2 * slots_.size()));
    for (std::size_t& i : occupied_) {
        Slot* moved = probe(bigger, slots_[i].node);
        *moved = std::move(slots_[i]);
        i = static_cast<std::size_t>(moved - bigger.data());
    }
    slots_.swap(bigger);
}

namespace {
std::vector<std::unique_ptr<PassState>>& spares() {
    thread_local std::vector<std::unique_ptr<PassState>> list;
    return list;
}
}  // namespace

PassStateLease::PassStateLease() {
    if (spares().empty()) {
        state_ = std::make_unique<PassState>();
    } else {
        state_ = std::move(spares().back());
        spares().pop_back();
    }
}

PassStateLease::~PassStateLease() {
    state_->clear();
    spares().push_back(std::move(state_));
}

}  // namespace xg::autograd
