// SmallVector (core/include/xgrad/small_vector.hpp): inline up to N elements,
// all of them on the heap past N, and moves that leave the source empty.
#include <memory>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/small_vector.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_small_vector {

using xg::detail::SmallVector;

namespace {
std::vector<int> contents(const SmallVector<int, 3>& v) { return {v.begin(), v.end()}; }
}  // namespace

TEST_CASE("SmallVector keeps up to N elements inline and moves past N to the heap") {
    SmallVector<int, 3> v;
    CHECK(v.empty());
    const int* inline_data = nullptr;
    for (int i = 1; i <= 3; ++i) v.push_back(i);
    inline_data = v.begin();
    CHECK(static_cast<const void*>(inline_data) >= static_cast<const void*>(&v));
    CHECK(static_cast<const void*>(inline_data) < static_cast<const void*>(&v + 1));
    v.push_back(4);  // the first overflow moves every element out
    CHECK(contents(v) == std::vector<int>{1, 2, 3, 4});
    CHECK(static_cast<const void*>(v.begin()) != static_cast<const void*>(inline_data));
    v[0] = 10;
    CHECK(v[0] == 10);
    v.clear();
    CHECK(v.size() == 0);
    v.push_back(7);  // inline again
    CHECK(contents(v) == std::vector<int>{7});
}

TEST_CASE("SmallVector from lists and vectors; a move empties the source") {
    SmallVector<int, 3> a{1, 2}, b{1, 2, 3, 4, 5};
    CHECK(contents(a) == std::vector<int>{1, 2});
    CHECK(contents(b) == std::vector<int>{1, 2, 3, 4, 5});
    SmallVector<int, 3> c = std::vector<int>{4, 5, 6};
    CHECK(contents(c) == std::vector<int>{4, 5, 6});
    SmallVector<int, 3> d = std::move(b);
    CHECK(contents(d) == std::vector<int>{1, 2, 3, 4, 5});
    CHECK(b.empty());
    a = std::move(c);
    CHECK(contents(a) == std::vector<int>{4, 5, 6});
    CHECK(c.empty());

    // Elements are released when the vector is cleared or moved from.
    auto tracked = std::make_shared<int>(1);
    SmallVector<std::shared_ptr<int>, 2> owners{tracked, tracked};
    CHECK(tracked.use_count() == 3);
    auto moved = std::move(owners);
    CHECK(tracked.use_count() == 3);
    moved.clear();
    CHECK(tracked.use_count() == 1);
}

}  // namespace core_test_small_vector
