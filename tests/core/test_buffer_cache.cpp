// Tests for the buffer cache (core/src/buffer_cache.cpp): large buffers freed by
// tensors come back to the next ops of that size, and the cache stays bounded; small
// arrays come back from the calling thread's small-array cache, only for the same
// size and dtype; empty_tensor reuses a freed storage itself.
#include <cstddef>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xoperation.hpp>

#include "buffer_cache.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_buffer_cache {

using xg::Tensor;

TEST_CASE("the buffer cache hands back recycled buffers and stays bounded") {
    xg::detail::clear_buffer_cache();
    const xg::Shape shape{512, 256};  // 512 KiB of float32
    const float* first = nullptr;
    {
        Tensor a = xg::zeros(shape);
        first = a.data<float>().data();
        Tensor r = xg::relu(a);  // its output is a fresh buffer
    }
    CHECK(xg::detail::buffer_cache_bytes() >= 2 * 512 * 256 * sizeof(float));
    Tensor b = xg::relu(xg::full(shape, -1.0));  // reuses a freed buffer, rewrites every value
    CHECK(xt::all(xt::equal(b.data<float>(), 0.0f)));
    Tensor c = b.clone();
    CHECK(c.data<float>().data() != b.data<float>().data());
    CHECK(xt::all(xt::equal(c.data<float>(), 0.0f)));
    (void)first;
    // Many fresh buffers of one size: the cache keeps only a few of them.
    for (int i = 0; i < 40; ++i) Tensor fresh = xg::ones(shape);
    CHECK(xg::detail::buffer_cache_bytes() <= 16 * 512 * 256 * sizeof(float));
    xg::detail::clear_buffer_cache();
    CHECK(xg::detail::buffer_cache_bytes() == 0);
}

TEST_CASE("small arrays come back from this thread's small-array cache") {
    const float *freed_x = nullptr, *freed_a = nullptr;
    {
        Tensor x = xg::ones({3, 5});  // 60 bytes, far below the large cache's minimum
        Tensor a = xg::relu(x);
        freed_x = x.data<float>().data();
        freed_a = a.data<float>().data();
    }
    // The next arrays of that size and dtype take the freed buffers, reshaped.
    Tensor b = xg::relu(xg::full({5, 3}, -2.0));
    const float* got = b.data<float>().data();
    CHECK((got == freed_x || got == freed_a));
    CHECK(b.shape() == xg::Shape{5, 3});
    CHECK(xt::all(xt::equal(b.data<float>(), 0.0f)));
    // Another dtype or size never does, and the cache stays bounded: ~100 KiB of
    // distinct small sizes leave at most its 1 MiB and 64 entries behind.
    Tensor d = xg::relu(xg::ones({3, 5}, xg::kFloat64));
    CHECK(static_cast<const void*>(d.data<double>().data()) != static_cast<const void*>(freed_x));
    CHECK(static_cast<const void*>(d.data<double>().data()) != static_cast<const void*>(freed_a));
    for (std::size_t n = 1; n <= 200; ++n) Tensor t = xg::relu(xg::ones({n}));
    CHECK(xt::all(xt::equal(xg::relu(xg::ones({7, 7})).data<float>(), 1.0f)));
}

TEST_CASE("empty_tensor takes a freed storage whole, as a fresh tensor of the new shape") {
    const float* freed = nullptr;
    {
        Tensor x = xg::ones({4, 6});
        x.add_(1.0);  // the freed storage's version is not 0
        x.mul_(3.0);
        CHECK(x.version() == 2);
        freed = x.data<float>().data();
    }
    Tensor t = xg::detail::empty_tensor<float>({3, 8});
    CHECK(t.data<float>().data() == freed);
    CHECK(t.shape() == xg::Shape{3, 8});
    CHECK(t.version() == 0);
    CHECK_FALSE(t.requires_grad());
    CHECK_FALSE(t.grad_fn());
    // Its strides are the new shape's: element [r, c] is at r * 8 + c.
    float* p = t.data<float>().data();
    for (int i = 0; i < 24; ++i) p[i] = static_cast<float>(i);
    CHECK(t.index({2, 5}).item<float>() == 21.0f);
    CHECK(xg::sum(t, {1}).data<float>() == xt::xarray<float>{28.0f, 92.0f, 156.0f});
    // No freed storage of that size and dtype: a fresh one.
    Tensor d = xg::detail::empty_tensor<double>({3, 8});
    CHECK(static_cast<const void*>(d.data<double>().data()) != static_cast<const void*>(freed));
    CHECK(d.shape() == xg::Shape{3, 8});
    CHECK(xg::detail::empty_tensor<float>({0, 5}).shape() == xg::Shape{0, 5});
}

}  // namespace core_test_buffer_cache
