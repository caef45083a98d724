// The integer side of the elementwise ops: broadcasting int64 values, sub's
// bool rule, and an integer scalar with a tensor (ops.hpp's integer overloads:
// x + 1 keeps an int64 tensor int64, as a Python int does in PyTorch).
#include <cstdint>
#include <vector>

#include "integer_ops.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg::detail {

std::vector<std::int64_t> expanded(const xt::xarray<std::int64_t>& x, const Shape& shape) {
    std::size_t size = 1;
    for (std::size_t d : shape) size *= d;
    std::vector<std::int64_t> out(size);
    if (size == 0) return out;
    if (shape.empty()) return {x.data()[0]};
    const std::size_t rank = shape.size(), lead = rank - x.dimension();
    std::vector<std::size_t> stride(rank, 0);
    for (std::size_t d = rank, step = 1; d-- > lead;) {
        const std::size_t extent = x.shape()[d - lead];
        if (extent != 1) stride[d] = step;
        step *= extent;
    }
    const std::size_t last = shape.back(), step = stride.back();
    for_each_row(shape, stride, [&](std::size_t start, std::size_t offset) {
        for (std::size_t j = 0; j < last; ++j) out[start + j] = x.data()[offset + j * step];
    });
    return out;
}

void check_not_bool(const Tensor& t) {
    check(
        !t.defined() || t.dtype() != kBool,
        "sub: subtraction with a bool tensor is not supported (use logical_not to invert a mask)");
}

// An integer scalar: a floating tensor takes it as a double; an int64 tensor
// (or a bool one, as int64) stays int64.
Tensor integer_scalar(const Tensor& a, std::int64_t b, ScalarOp op) {
    check(a.defined(), "expected a defined tensor (got an undefined one) with a scalar");
    const auto value = static_cast<double>(b);
    if (is_floating_point(a.dtype())) {
        switch (op) {
            case ScalarOp::Add: return add(a, value);
            case ScalarOp::Sub: return sub(a, value);
            case ScalarOp::ReverseSub: return rsub(value, a);
            case ScalarOp::Mul: return mul(a, value);
        }
    }
    if (op == ScalarOp::Sub || op == ScalarOp::ReverseSub) check_not_bool(a);
    const Tensor x = a.to(kInt64);
    switch (op) {
        case ScalarOp::Add: return map_integers(x, [b](std::int64_t v) { return v + b; });
        case ScalarOp::Sub: return map_integers(x, [b](std::int64_t v) { return v - b; });
        case ScalarOp::ReverseSub: return map_integers(x, [b](std::int64_t v) { return b - v; });
        case ScalarOp::Mul: return map_integers(x, [b](std::int64_t v) { return v * b; });
    }
    throw Error("integer_scalar: unknown op");
}

}  // namespace xg::detail
