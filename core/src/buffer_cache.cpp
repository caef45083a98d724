// The buffer cache (see buffer_cache.hpp): a bounded list of freed arrays,
// newest last, matched by dtype and element count; the oldest go first.
#include "buffer_cache.hpp"

#include <array>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <vector>

#include "object_pool.hpp"
#include "per_thread.hpp"

namespace xg::detail {

namespace {

constexpr std::size_t kMaxSameSize = 8;

struct Cache {
    std::mutex mutex;
    std::vector<Storage> free;  // newest last
    std::size_t bytes = 0, limit = 0;

    Cache() {
        const char* mb = std::getenv("XGRAD_BUFFER_CACHE_MB");
        limit = (mb ? std::strtoull(mb, nullptr, 10) : 512) << 20;
    }
};

Cache& cache() {
    static Cache* instance = new Cache();  // never destroyed: storages may die at exit
    return *instance;
}

std::size_t bytes_of(const Storage& s) {
    return std::visit([](const auto& a) { return a.size() * sizeof(a.data()[0]); }, s);
}

bool cacheable(const Storage& s) { return bytes_of(s) >= kMinCachedBytes; }

// Arrays under kMinCachedBytes, per thread: at most kSmallEntries of them and
// kSmallBytes in all, the oldest evicted first.
constexpr std::size_t kSmallEntries = 64, kSmallBytes = 1 << 20;

struct SmallCache {
    std::vector<Storage> free;  // newest last
    std::size_t bytes = 0;
    SmallCache() { free.reserve(kSmallEntries + 1); }
};

SmallCache* small_cache() { return per_thread<SmallCache>(); }

void recycle_small(Storage& s) {
    SmallCache* c = small_cache();
    const std::size_t n = bytes_of(s);
    if (!c || n == 0) return;
    c->free.push_back(std::move(s));
    c->bytes += n;
    while (c->free.size() > kSmallEntries || c->bytes > kSmallBytes) {
        c->bytes -= bytes_of(c->free.front());
        c->free.erase(c->free.begin());
    }
}

void recycle(Storage* s) {
    std::vector<Storage> evicted;  // freed after the lock is released
    if (!cacheable(*s)) {
        recycle_small(*s);
    } else {
        Cache& c = cache();
        std::size_t n = bytes_of(*s);
        std::lock_guard lock(c.mutex);
        if (n <= c.limit) {
            std::size_t index = s->index();
            c.free.push_back(std::move(*s));
            c.bytes += n;
            auto evict = [&](std::size_t i) {
                c.bytes -= bytes_of(c.free[i]);
                evicted.push_back(std::move(c.free[i]));
                c.free.erase(c.free.begin() + static_cast<long>(i));
            };
            // Buffers that ops did not take from the cache (a steady surplus of
            // one size) must not pile up: keep at most kMaxSameSize of a size.
            std::size_t same = 0, oldest = 0;
            for (std::size_t i = 0; i < c.free.size(); ++i) {
                if (c.free[i].index() == index && bytes_of(c.free[i]) == n && same++ == 0)
                    oldest = i;
            }
            if (same > kMaxSameSize) evict(oldest);
            while (c.bytes > c.limit) evict(0);
        }
    }
    s->~Storage();
    pool_deallocate(s, sizeof(Storage));
}

}  // namespace

std::shared_ptr<Storage> make_storage(Storage values) {
    auto* storage = new (pool_allocate(sizeof(Storage))) Storage(std::move(values));
    return std::shared_ptr<Storage>(storage, recycle, PoolAllocator<Storage>());
}

// The most recently freed array of T with `shape`'s element count, moved out
// of `free` and reshaped (same size: it keeps its buffer); nullopt if none.
template <class T>
std::optional<xt::xarray<T>> take_free(std::vector<Storage>& free, std::size_t& bytes,
                                       const ArrayShape& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    for (std::size_t i = free.size(); i-- > 0;) {
        auto* a = std::get_if<xt::xarray<T>>(&free[i]);
        if (a == nullptr || a->size() != n) continue;
        std::optional<xt::xarray<T>> found(std::move(*a));
        free.erase(free.begin() + static_cast<long>(i));
        bytes -= n * sizeof(T);
        found->resize(shape);
        return found;
    }
    return std::nullopt;
}

template <class T>
xt::xarray<T> small_cached_array(const ArrayShape& shape) {
    if (SmallCache* c = small_cache()) {
        if (auto found = take_free<T>(c->free, c->bytes, shape)) return std::move(*found);
    }
    return xt::xarray<T>::from_shape(shape);
}

template xt::xarray<float> small_cached_array<float>(const ArrayShape&);
template xt::xarray<double> small_cached_array<double>(const ArrayShape&);
template xt::xarray<std::int64_t> small_cached_array<std::int64_t>(const ArrayShape&);
template xt::xarray<bool> small_cached_array<bool>(const ArrayShape&);
template xt::xarray<Half> small_cached_array<Half>(const ArrayShape&);
template xt::xarray<BFloat16> small_cached_array<BFloat16>(const ArrayShape&);
template xt::xarray<std::int32_t> small_cached_array<std::int32_t>(const ArrayShape&);
template xt::xarray<std::int16_t> small_cached_array<std::int16_t>(const ArrayShape&);
template xt::xarray<std::int8_t> small_cached_array<std::int8_t>(const ArrayShape&);
template xt::xarray<std::uint8_t> small_cached_array<std::uint8_t>(const ArrayShape&);

template <class T>
xt::xarray<T> cached_array(const ArrayShape& shape) {
    Cache& c = cache();
    std::optional<xt::xarray<T>> found;
    {
        std::lock_guard lock(c.mutex);
        found = take_free<T>(c.free, c.bytes, shape);
    }
    return found ? std::move(*found) : xt::xarray<T>::from_shape(shape);
}

template xt::xarray<float> cached_array<float>(const ArrayShape&);
template xt::xarray<double> cached_array<double>(const ArrayShape&);
template xt::xarray<std::int64_t> cached_array<std::int64_t>(const ArrayShape&);
template xt::xarray<bool> cached_array<bool>(const ArrayShape&);
template xt::xarray<Half> cached_array<Half>(const ArrayShape&);
template xt::xarray<BFloat16> cached_array<BFloat16>(const ArrayShape&);
template xt::xarray<std::int32_t> cached_array<std::int32_t>(const ArrayShape&);
template xt::xarray<std::int16_t> cached_array<std::int16_t>(const ArrayShape&);
template xt::xarray<std::int8_t> cached_array<std::int8_t>(const ArrayShape&);
template xt::xarray<std::uint8_t> cached_array<std::uint8_t>(const ArrayShape&);

std::size_t buffer_cache_bytes() {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    return c.bytes;
}

void clear_buffer_cache() {
    std::vector<Storage> freed;
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    freed.swap(c.free);
    c.bytes = 0;
}

bool sole_owner(const Tensor& t) {
    return t.defined() && t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1;
}

}  // namespace xg::detail
