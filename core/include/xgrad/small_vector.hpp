// A vector that keeps up to N elements inline: the graph's per-node lists
// (a node's edges, the gradients its backward returns) hold one to three
// entries, and a std::vector would be a heap allocation per node per step.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <utility>
#include <vector>

namespace xg::detail {

// Elements live in `inline_` while there are at most N, else all in `heap_`.
// T must be cheap to default-construct (unused inline slots hold T()).
template <class T, std::size_t N>
class SmallVector {
public:
    SmallVector() = default;
    SmallVector(const SmallVector&) = default;
    SmallVector& operator=(const SmallVector&) = default;
    SmallVector(SmallVector&& other) noexcept
        : inline_(std::move(other.inline_)), heap_(std::move(other.heap_)), size_(other.size_) {
        other.heap_.clear();
        other.size_ = 0;
    }
    SmallVector& operator=(SmallVector&& other) noexcept {
        inline_ = std::move(other.inline_);
        heap_ = std::move(other.heap_);
        size_ = other.size_;
        other.heap_.clear();
        other.size_ = 0;
        return *this;
    }
    SmallVector(std::initializer_list<T> values) {
        if (values.size() > N) {
            heap_.assign(values.begin(), values.end());
            size_ = heap_.size();
            return;
        }
        for (const T& v : values) inline_[size_++] = v;
    }
    // From a std::vector, taking its buffer when it would not fit inline anyway.
    SmallVector(std::vector<T> values) {  // NOLINT: implicit, so `return std::vector{...}` works
        if (values.size() > N) {
            heap_ = std::move(values);
            size_ = heap_.size();
            return;
        }
        for (T& v : values) inline_[size_++] = std::move(v);
    }

    std::size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T* begin() { return data(); }
    T* end() { return data() + size_; }
    const T* begin() const { return data(); }
    const T* end() const { return data() + size_; }
    T& operator[](std::size_t i) { return data()[i]; }
    const T& operator[](std::size_t i) const { return data()[i]; }

    void push_back(T value) {
        if (size_ < N && heap_.empty()) {
            inline_[size_++] = std::move(value);
            return;
        }
        if (heap_.empty()) {  // the inline elements move out on the first overflow
            heap_.reserve(2 * N);
            for (std::size_t i = 0; i < size_; ++i) heap_.push_back(std::move(inline_[i]));
            for (T& slot : inline_) slot = T();
        }
        heap_.push_back(std::move(value));
        ++size_;
    }
    void reserve(std::size_t) {}  // inline capacity covers the common case
    void clear() {
        for (std::size_t i = 0; i < size_ && heap_.empty(); ++i) inline_[i] = T();
        heap_.clear();
        size_ = 0;
    }

private:
    T* data() { return heap_.empty() ? inline_.data() : heap_.data(); }
    const T* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }

    std::array<T, N> inline_{};
    std::vector<T> heap_;
    std::size_t size_ = 0;
};

}  // namespace xg::detail
