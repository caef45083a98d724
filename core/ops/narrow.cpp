// narrow, and the ops that cut a tensor into parts with it: chunk, split, select
// and unbind. Each part is a fresh copy (xgrad has no views); narrow's gradient
// pastes g back where the rows came from, and the ops built on narrow take
// their gradients (first and second) from it.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// Copies `length` rows of the `from` tensor's dim (laid out by split) starting at
// `from_start` into `to` at `to_start`, where `to`'s dim has `to_size` rows.
template <class T>
void copy_rows(const T* from, std::size_t from_size, std::size_t from_start, T* to,
               std::size_t to_size, std::size_t to_start, std::size_t length,
               const detail::DimSplit& split) {
    for (std::size_t o = 0; o < split.outer; ++o) {
        std::copy_n(from + (o * from_size + from_start) * split.inner, length * split.inner,
                    to + (o * to_size + to_start) * split.inner);
    }
}

// narrow's gradient with ops, for double backward: g between zeros for the
// rows before and after it. cat's gradient narrows again, so it records.
Tensor pasted_op(const Tensor& g, const Shape& shape, std::size_t axis, std::size_t first) {
    Shape before = shape, after = shape;
    before[axis] = first;
    after[axis] = shape[axis] - first - g.shape()[axis];
    std::vector<Tensor> parts;
    if (before[axis] > 0) parts.push_back(zeros(before, g.dtype()));
    parts.push_back(g);
    if (after[axis] > 0) parts.push_back(zeros(after, g.dtype()));
    return parts.size() == 1 ? g : cat(parts, static_cast<int>(axis));
}

}  // namespace

Tensor narrow(const Tensor& x, int dim, std::int64_t start, std::int64_t length) {
    check(x.defined(), "narrow: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(narrow(detail::computable(x), dim, start, length), *to);
    const auto sizes = x.sizes();
    detail::ArrayShape shape(sizes.begin(), sizes.end());  // not const: the closure moves it
    if (shape.empty())
        fail("narrow: expected a tensor with at least 1 dimension (got {})", shape_str(x.shape()));
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "narrow");
    const auto size = static_cast<std::int64_t>(shape[axis]);
    if (start < 0) start += size;  // PyTorch wraps a negative start once
    if (start < 0 || length < 0 || start + length > size) {
        fail(
            "narrow: expected 0 <= start and start + length <= {} in dim {} of {} (got start {}, "
            "length {})",
            size, dim, shape_str(x.shape()), start, length);
    }
    detail::ArrayShape out_shape = shape;
    out_shape[axis] = static_cast<std::size_t>(length);
    const auto split = detail::split_at(shape, axis);
    const auto first = static_cast<std::size_t>(start), rows = static_cast<std::size_t>(length);
    Tensor out = detail::visit_any(x, "narrow", [&]<class T>(xt::xarray<T>& a) {
        auto result = detail::empty_array<T>(out_shape);
        copy_rows(a.data(), split.size, first, result.data(), rows, 0, rows, split);
        return wrap(std::move(result));
    });
    // The gradient is g pasted back where the rows came from, zeros elsewhere.
    return make_result(
        out, "NarrowBackward", {x},
        [shape, split, axis, first, rows](const Tensor& g) {
            if (autograd::creating_graph())
                return autograd::Gradients{
                    pasted_op(g, Shape(shape.begin(), shape.end()), axis, first)};
            return autograd::Gradients{
                detail::visit_floating(g, "narrow", [&]<class T>(xt::xarray<T>& gv) {
                    auto grad = detail::zeros_array<T>(shape);
                    copy_rows(gv.data(), rows, 0, grad.data(), split.size, first, rows, split);
                    return wrap(std::move(grad));
                })};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, int dim) {
    check(x.defined(), "chunk: expected a defined tensor (got an undefined one)");
    check(chunks > 0, "chunk: expected chunks > 0 (got {})", chunks);
    if (x.dim() == 0)
        fail("chunk: expected a tensor with at least 1 dimension (got {})", shape_str(x.shape()));
    const auto size =
        static_cast<std::int64_t>(x.sizes()[detail::normalize_dim(dim, x.dim(), "chunk")]);
    const std::int64_t step = std::max<std::int64_t>((size + chunks - 1) / chunks, 1);
    std::vector<Tensor> parts;
    parts.reserve(static_cast<std::size_t>(std::max<std::int64_t>((size + step - 1) / step, 1)));
    for (std::int64_t start = 0; start < size || (size == 0 && parts.empty()); start += step) {
        parts.push_back(narrow(x, dim, start, std::min(step, size - start)));
    }
    return parts;
}

// ---- derived from narrow: each gradient comes from narrow's ----

std::vector<Tensor> split(const Tensor& x, std::int64_t split_size, int dim) {
    check(split_size > 0, "split: expected split_size > 0 (got {})", split_size);
    check(x.defined() && x.dim() > 0, "split: expected a tensor with at least 1 dimension");
    const auto size =
        static_cast<std::int64_t>(x.shape()[detail::normalize_dim(dim, x.dim(), "split")]);
    std::vector<Tensor> parts;
    for (std::int64_t start = 0; start < size || (size == 0 && parts.empty()); start += split_size)
        parts.push_back(narrow(x, dim, start, std::min(split_size, size - start)));
    return parts;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes, int dim) {
    check(x.defined() && x.dim() > 0, "split: expected a tensor with at least 1 dimension");
    const auto size =
        static_cast<std::int64_t>(x.shape()[detail::normalize_dim(dim, x.dim(), "split")]);
    std::int64_t total = 0;
    for (std::int64_t s : sizes) total += s;
    if (total != size) {
        fail("split: expected sizes summing to {} (dim {} of {}) (got {})", size, dim,
             shape_str(x.shape()), total);
    }
    std::vector<Tensor> parts;
    std::int64_t start = 0;
    for (std::int64_t s : sizes)
        parts.push_back(narrow(x, dim, std::exchange(start, start + s), s));
    return parts;
}

Tensor select(const Tensor& x, int dim, std::int64_t index) {
    check(x.defined() && x.dim() > 0, "select: expected a tensor with at least 1 dimension");
    const auto size =
        static_cast<std::int64_t>(x.shape()[detail::normalize_dim(dim, x.dim(), "select")]);
    check(index >= -size && index < size,
          "select: expected an index in [{}, {}) for dim {} of {} (got {})", -size, size, dim,
          shape_str(x.shape()), index);
    return squeeze(narrow(x, dim, index < 0 ? index + size : index, 1), dim);
}

std::vector<Tensor> unbind(const Tensor& x, int dim) {
    check(x.defined() && x.dim() > 0, "unbind: expected a tensor with at least 1 dimension");
    const std::size_t size = x.shape()[detail::normalize_dim(dim, x.dim(), "unbind")];
    std::vector<Tensor> parts;
    for (std::size_t i = 0; i < size; ++i)
        parts.push_back(select(x, dim, static_cast<std::int64_t>(i)));
    return parts;
}

}  // namespace xg
