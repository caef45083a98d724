// The small-object pool (core/src/object_pool.cpp): freed blocks are handed
// out again (last freed first) within a size class, large requests bypass it,
// and blocks may be freed on another thread than the one that made them.
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "object_pool.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_object_pool {

using namespace xg::detail;

TEST_CASE("the object pool reuses freed blocks of the same size class") {
    void* a = pool_allocate(100);
    std::memset(a, 0xab, 100);  // usable to its full size
    pool_deallocate(a, 100);
    void* b = pool_allocate(112);  // the same 16-byte class as 100
    if (pool_enabled()) CHECK(b == a);
    void* c = pool_allocate(100);
    CHECK(c != b);
    pool_deallocate(b, 112);
    pool_deallocate(c, 100);

    void* big = pool_allocate(4096);  // beyond the largest class: straight to the heap
    std::memset(big, 0, 4096);
    pool_deallocate(big, 4096);
}

TEST_CASE("pooled shared objects can die on another thread") {
    std::vector<std::shared_ptr<std::vector<int>>> made;
    for (int i = 0; i < 1000; ++i) made.push_back(make_pooled<std::vector<int>>(3, i));
    std::thread other([&] { made.clear(); });  // freed into the other thread's lists
    other.join();
    auto again = make_pooled<std::vector<int>>(2, 7);
    CHECK(again->size() == 2);
    CHECK(again->at(1) == 7);
}

}  // namespace core_test_object_pool
