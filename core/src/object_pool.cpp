// The small-object pool (see object_pool.hpp).
#include "object_pool.hpp"

#include <array>
#include <utility>

#include "per_thread.hpp"

namespace xg::detail {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPooling = false;
#else
constexpr bool kPooling = true;
#endif

constexpr std::size_t kGranule = 16, kClasses = 40;  // blocks of 16, 32, ..., 640 bytes
constexpr int kMaxFree = 4096;

struct FreeBlock {
    FreeBlock* next;
};

struct FreeLists {
    std::array<FreeBlock*, kClasses> head{};
    std::array<int, kClasses> count{};

    ~FreeLists() {
        for (FreeBlock* block : head) {
            while (block) ::operator delete(std::exchange(block, block->next));
        }
    }
};

std::size_t class_of(std::size_t bytes) { return (bytes + kGranule - 1) / kGranule - 1; }

}  // namespace

bool pool_enabled() { return kPooling; }

void* pool_allocate(std::size_t bytes) {
    const std::size_t c = class_of(bytes);
    if (!kPooling || c >= kClasses) return ::operator new(bytes);
    FreeLists* free = per_thread<FreeLists>();
    if (FreeBlock* block = free ? free->head[c] : nullptr) {
        free->head[c] = block->next;
        --free->count[c];
        return block;
    }
    return ::operator new((c + 1) * kGranule);
}

void pool_deallocate(void* block, std::size_t bytes) noexcept {
    const std::size_t c = class_of(bytes);
    // Blocks freed after this thread's lists are gone go straight to the heap.
    FreeLists* free = kPooling && c < kClasses ? per_thread<FreeLists>() : nullptr;
    if (!free || free->count[c] >= kMaxFree) {
        ::operator delete(block);
        return;
    }
    free->head[c] = new (block) FreeBlock{free->head[c]};
    ++free->count[c];
}

}  // namespace xg::detail
