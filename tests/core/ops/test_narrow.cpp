// Tests for narrow and chunk (core/ops/narrow.cpp): PyTorch's slices, negative
// starts, errors, float64 gradchecks, and gradgradchecks of every op of the file.
// split, select and unbind's values are tested with the shape ops built on them
// in test_shape.cpp.
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_narrow {

TEST_CASE("narrow and chunk: PyTorch's slices, negative starts, errors and float64 gradchecks") {
    xg::Tensor x = test::arange234();  // [2, 3, 4] of 0..23
    xt::xarray<double> middle = test::values(xg::narrow(x, 1, 1, 2));
    CHECK(test::shape_of(middle) == xg::Shape{2, 2, 4});
    CHECK(middle(0, 0, 0) == 4.0);
    CHECK(middle(1, 1, 3) == 23.0);
    xt::xarray<double> last = test::values(xg::narrow(x, -1, -1, 1));
    CHECK(test::shape_of(last) == xg::Shape{2, 3, 1});
    CHECK(last(0, 0, 0) == 3.0);
    CHECK(last(1, 2, 0) == 23.0);
    auto parts = xg::chunk(x, 3, -1);  // 4 entries in chunks of 2: two parts, as torch.chunk
    REQUIRE(parts.size() == 2);
    CHECK(parts[1].shape() == xg::Shape{2, 3, 2});
    CHECK(xg::chunk(x, 3, 1).size() == 3);
    CHECK_THROWS_WITH_AS(
        xg::narrow(x, 0, 1, 2),
        "narrow: expected 0 <= start and start + length <= 2 in dim 0 of [2, 3, 4] "
        "(got start 1, length 2)",
        xg::Error);
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) { return xg::narrow(in[0], 1, 1, 2) * 3.0; },
        {test::randn64({2, 4, 3})}));
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) {
            auto p = xg::chunk(in[0], 3, 0);
            return p[0] * p[1] + p[2];
        },
        {test::randn64({6, 2})}));
}

TEST_CASE("double backward: narrow, chunk, split, select and unbind in float64") {
    // Products of parts, so the second derivative runs through narrow's
    // forward and its recorded backward, rows before and after included.
    using In = std::vector<xg::Tensor>;
    auto check_second = [](const char* name, const test::Fn& fn, const xg::Tensor& x) {
        INFO(name);
        CHECK(test::gradgradcheck(fn, {x}));
    };
    const xg::Tensor x = test::randn64({2, 4, 3}, 130);
    check_second(
        "narrow middle rows",
        [](const In& in) {
            xg::Tensor y = xg::narrow(in[0], 1, 1, 2);
            return y * y;
        },
        x);
    check_second(
        "narrow first and last rows",
        [](const In& in) { return xg::narrow(in[0], -1, 0, 1) * xg::narrow(in[0], -1, -1, 1); }, x);
    check_second(
        "narrow a whole dim",
        [](const In& in) {
            xg::Tensor y = xg::narrow(in[0], 0, 0, 2);
            return y * y;
        },
        x);
    check_second(
        "chunk",
        [](const In& in) {
            auto p = xg::chunk(in[0], 2, 1);
            return p[0] * p[1];
        },
        x);
    check_second(
        "split by sizes",
        [](const In& in) {
            auto p = xg::split(in[0], std::vector<std::int64_t>{1, 2}, -1);
            return p[0] * xg::sum(p[1] * p[1], {2}, true);
        },
        x);
    check_second(
        "select and unbind",
        [](const In& in) {
            auto rows = xg::unbind(in[0], 1);
            return xg::select(in[0], 1, -2) * rows[0] * rows[3];
        },
        x);
}

}  // namespace core_ops_test_narrow
