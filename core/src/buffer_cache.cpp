// The buffer cache (see buffer_cache.hpp): a bounded list of freed storages,
// newest last, matched by dtype and element count; the oldest go first. The
// list holds the storages themselves, so keeping and taking one moves a
// pointer, not an array.
#include "buffer_cache.hpp"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "object_pool.hpp"
#include "per_thread.hpp"
#include "shape_product.hpp"
#include "xgrad/small_vector.hpp"

namespace xg::detail {

namespace {

std::size_t bytes_of(const Storage& s) {
    return std::visit([](const auto& a) { return a.size() * sizeof(a.data()[0]); }, s);
}

std::size_t count_of(const Storage& s) {
    return std::visit([](const auto& a) { return a.size(); }, s);
}

void destroy(Storage* s) {
    s->~Storage();
    pool_deallocate(s, sizeof(Storage));
}

// Freed storages, newest last, with what a lookup compares.
class FreeList {
public:
    FreeList(const FreeList&) = delete;
    FreeList& operator=(const FreeList&) = delete;
    explicit FreeList(std::size_t reserve) { entries_.reserve(reserve); }
    ~FreeList() {
        for (const Entry& e : entries_) destroy(e.storage);
    }

    std::size_t size() const { return entries_.size(); }
    std::size_t bytes() const { return bytes_; }

    void push(Storage* s) {
        entries_.push_back({s, s->index(), count_of(*s), bytes_of(*s)});
        bytes_ += entries_.back().bytes;
    }
    // The newest storage of `dtype` with `count` elements, taken out; null if none.
    Storage* take(std::size_t dtype, std::size_t count) {
        for (std::size_t i = entries_.size(); i-- > 0;) {
            if (entries_[i].dtype == dtype && entries_[i].count == count) return remove(i);
        }
        return nullptr;
    }
    Storage* take_oldest() { return remove(0); }
    // The oldest entry of the newest one's dtype and count when more than
    // `most` of them are kept, taken out; else null.
    Storage* surplus_of_newest(std::size_t most) {
        const Entry& newest = entries_.back();
        std::size_t same = 0, oldest = 0;
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            if (entries_[i].dtype == newest.dtype && entries_[i].count == newest.count &&
                same++ == 0)
                oldest = i;
        }
        return same > most ? remove(oldest) : nullptr;
    }
    // Every storage, taken out.
    std::vector<Storage*> take_all() {
        std::vector<Storage*> all;
        for (const Entry& e : entries_) all.push_back(e.storage);
        entries_.clear();
        bytes_ = 0;
        return all;
    }

private:
    struct Entry {
        Storage* storage;
        std::size_t dtype, count, bytes;
    };
    Storage* remove(std::size_t i) {
        Storage* s = entries_[i].storage;
        bytes_ -= entries_[i].bytes;
        entries_.erase(entries_.begin() + static_cast<long>(i));
        return s;
    }

    std::vector<Entry> entries_;
    std::size_t bytes_ = 0;
};

// Storages of at least kMinCachedBytes, shared by all threads.
constexpr std::size_t kMaxSameSize = 16;

struct Cache {
    std::mutex mutex;
    FreeList free{64};
    std::size_t limit = 0;

    Cache() {
        const char* mb = std::getenv("XGRAD_BUFFER_CACHE_MB");
        limit = (mb ? std::strtoull(mb, nullptr, 10) : 512) << 20;
    }
};

Cache& cache() {
    static Cache* instance = new Cache();  // never destroyed: storages may die at exit
    return *instance;
}

// Storages under kMinCachedBytes, per thread: at most kSmallEntries of them
// and kSmallBytes in all, the oldest evicted first.
constexpr std::size_t kSmallEntries = 64, kSmallBytes = 1 << 20;

struct SmallCache {
    FreeList free{kSmallEntries + 1};
};

void recycle_small(Storage* s) {
    SmallCache* c = per_thread<SmallCache>();
    if (!c || bytes_of(*s) == 0) return destroy(s);
    c->free.push(s);
    while (c->free.size() > kSmallEntries || c->free.bytes() > kSmallBytes)
        destroy(c->free.take_oldest());
}

void recycle_large(Storage* s) {
    SmallVector<Storage*, 4> dropped;  // destroyed after the lock is released
    Cache& c = cache();
    {
        std::lock_guard lock(c.mutex);
        if (bytes_of(*s) <= c.limit) {
            c.free.push(std::exchange(s, nullptr));
            // Buffers that ops did not take from the cache (a steady surplus of
            // one size) must not pile up: keep at most kMaxSameSize of a size.
            if (Storage* surplus = c.free.surplus_of_newest(kMaxSameSize))
                dropped.push_back(surplus);
            while (c.free.bytes() > c.limit) dropped.push_back(c.free.take_oldest());
        }
    }
    if (s) dropped.push_back(s);
    for (Storage* d : dropped) destroy(d);
}

void recycle(Storage* s) {
    if (bytes_of(*s) >= kMinCachedBytes)
        recycle_large(s);
    else
        recycle_small(s);
}

template <class T>
constexpr std::size_t dtype_index() {
    return static_cast<std::size_t>(dtype_of<T>());
}

// A taken storage's array with `shape` (same size: it keeps its buffer).
template <class T>
xt::xarray<T> reshaped(Storage* s, const ArrayShape& shape) {
    xt::xarray<T> a = std::move(std::get<xt::xarray<T>>(*s));
    destroy(s);
    a.resize(shape);
    return a;
}

// A cached storage of T with `count` elements, still constructed; null if none.
template <class T>
Storage* take_cached(std::size_t count) {
    const std::size_t dtype = dtype_index<T>();
    if (count * sizeof(T) < kMinCachedBytes) {
        SmallCache* c = per_thread<SmallCache>();
        return c ? c->free.take(dtype, count) : nullptr;
    }
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    return c.free.take(dtype, count);
}

}  // namespace

std::shared_ptr<Storage> adopt_storage(Storage* storage) {
    return std::shared_ptr<Storage>(storage, recycle, PoolAllocator<Storage>());
}

template <class T>
Tensor empty_tensor(const ArrayShape& shape) {
    const std::size_t n = product(shape);
    if (Storage* s = n == 0 ? nullptr : take_cached<T>(n)) {
        std::get<xt::xarray<T>>(*s).resize(shape);
        s->version = 0;
        return tensor_of(adopt_storage(s));
    }
    return wrap(xt::xarray<T>::from_shape(shape));
}

template <class T>
xt::xarray<T> cached_array(const ArrayShape& shape) {
    Storage* s = take_cached<T>(product(shape));
    return s ? reshaped<T>(s, shape) : xt::xarray<T>::from_shape(shape);
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

template Tensor empty_tensor<float>(const ArrayShape&);
template Tensor empty_tensor<double>(const ArrayShape&);
template Tensor empty_tensor<std::int64_t>(const ArrayShape&);
template Tensor empty_tensor<bool>(const ArrayShape&);
template Tensor empty_tensor<Half>(const ArrayShape&);
template Tensor empty_tensor<BFloat16>(const ArrayShape&);
template Tensor empty_tensor<std::int32_t>(const ArrayShape&);
template Tensor empty_tensor<std::int16_t>(const ArrayShape&);
template Tensor empty_tensor<std::int8_t>(const ArrayShape&);
template Tensor empty_tensor<std::uint8_t>(const ArrayShape&);

std::size_t buffer_cache_bytes() {
    Cache& c = cache();
    std::lock_guard lock(c.mutex);
    return c.free.bytes();
}

void clear_buffer_cache() {
    std::vector<Storage*> freed;
    {
        Cache& c = cache();
        std::lock_guard lock(c.mutex);
        freed = c.free.take_all();
    }
    for (Storage* s : freed) destroy(s);
}

bool sole_owner(const Tensor& t) {
    return t.defined() && t.impl_ptr().use_count() == 1 && t.impl()->storage.use_count() == 1;
}

}  // namespace xg::detail
