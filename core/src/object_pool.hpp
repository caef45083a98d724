// A per-thread free list for the small objects every op makes: tensor
// handles' TensorImpl, storages and graph nodes (each with its shared_ptr
// control block). A training step makes and frees the same few dozen of them
// every step; reusing the blocks takes that malloc traffic off the hot path.
//
// Blocks come from ::operator new in 16-byte size classes up to 640 bytes (a
// graph node with its saved versions and control block is over 500) and
// go back to the free list of whichever thread frees them (every block of a
// class is interchangeable), at most kMaxFree per class and thread; the rest
// return to ::operator delete. Under AddressSanitizer the pool steps aside so
// use-after-free stays detectable.
#pragma once

#include <cstddef>
#include <memory>
#include <new>

namespace xg::detail {

void* pool_allocate(std::size_t bytes);
void pool_deallocate(void* block, std::size_t bytes) noexcept;
bool pool_enabled();  // false under AddressSanitizer

template <class T>
struct PoolAllocator {
    using value_type = T;

    PoolAllocator() = default;
    template <class U>
    PoolAllocator(const PoolAllocator<U>&) noexcept {}

    T* allocate(std::size_t n) {
        static_assert(alignof(T) <= alignof(std::max_align_t));
        return static_cast<T*>(pool_allocate(n * sizeof(T)));
    }
    void deallocate(T* p, std::size_t n) noexcept { pool_deallocate(p, n * sizeof(T)); }

    template <class U>
    bool operator==(const PoolAllocator<U>&) const noexcept {
        return true;
    }
};

// std::make_shared with the control block and the object in one pooled block.
template <class T, class... Args>
std::shared_ptr<T> make_pooled(Args&&... args) {
    return std::allocate_shared<T>(PoolAllocator<T>(), std::forward<Args>(args)...);
}

}  // namespace xg::detail
