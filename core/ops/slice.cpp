// Python's indexing: Tensor::slice (x[start:end:step] along one dim) and
// Tensor::index (x[...] with integers, slices, None, Ellipsis and one index
// tensor). A step of 1 is narrow(); other steps copy every step-th entry and
// paste the gradient back the same way. index() is a walk over the indices
// that turns each into one of those ops, so every gradient is theirs, second
// derivatives included.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

namespace indexing {
TensorIndex::TensorIndex(const char* text) : kind_(Kind::Ellipsis) {
    check(text != nullptr && std::string_view(text) == "...",
          "TensorIndex: expected \"...\" as the one string index (got \"{}\")",
          text ? text : "nullptr");
}
}  // namespace indexing

namespace {

// Copies rows first, first + step, ... (`rows` of them) of dim split.size in
// `from` to consecutive rows of `to`, or back when `scatter` is true.
template <class T>
void strided_rows(const T* from, T* to, const detail::DimSplit& split, std::size_t first,
                  std::size_t step, std::size_t rows, bool scatter) {
    // Each outer index o moves its own rows: the o's split across threads.
    detail::parallel_rows(split.outer, split.size * split.inner, [=](std::size_t o) {
        if (split.inner == 1) {  // the last dim: single entries, a plain strided loop
            const std::size_t strided = o * split.size + first, packed = o * rows;
            for (std::size_t k = 0; k < rows; ++k) {
                if (scatter)
                    to[strided + k * step] = from[packed + k];
                else
                    to[packed + k] = from[strided + k * step];
            }
            return;
        }
        for (std::size_t k = 0; k < rows; ++k) {
            const std::size_t strided = (o * split.size + first + k * step) * split.inner;
            const std::size_t packed = (o * rows + k) * split.inner;
            if (scatter)
                std::copy_n(from + packed, split.inner, to + strided);
            else
                std::copy_n(from + strided, split.inner, to + packed);
        }
    });
}

// Python's bound rule: negative counts from the end, then clamp into [0, size].
std::int64_t clamp_bound(std::optional<std::int64_t> bound, std::int64_t fallback,
                         std::int64_t size) {
    if (!bound) return fallback;
    const std::int64_t b = *bound < 0 ? *bound + size : *bound;
    return std::clamp<std::int64_t>(b, 0, size);
}

// The strided slice's gradient with ops, for double backward: rows first,
// first + step, ... are an index, and pasting g at them is index_add into
// zeros, whose own gradient (index_select) is the slice again.
Tensor strided_paste_op(const Tensor& g, const Shape& in_shape, std::size_t axis, std::size_t first,
                        std::size_t step) {
    const auto start = static_cast<std::int64_t>(first), stride = static_cast<std::int64_t>(step);
    const auto rows = static_cast<std::int64_t>(g.shape()[axis]);
    const Tensor picked = arange(start, start + rows * stride, stride);
    return index_add(zeros(in_shape, g.dtype()), static_cast<int>(axis), picked, g);
}

}  // namespace

Tensor Tensor::slice(int dim, std::optional<std::int64_t> start, std::optional<std::int64_t> end,
                     std::int64_t step) const {
    check(defined(), "slice: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(*this))
        return detail::rounded(detail::computable(*this).slice(dim, start, end, step), *to);
    const Shape in_shape = shape();
    if (in_shape.empty()) {
        fail("slice: expected a tensor with at least 1 dimension (got {})", shape_str(in_shape));
    }
    const std::size_t axis = detail::normalize_dim(dim, in_shape.size(), "slice");
    check(step > 0, "slice: expected step > 0 (got {})", step);
    const auto size = static_cast<std::int64_t>(in_shape[axis]);
    const std::int64_t first = clamp_bound(start, 0, size), last = clamp_bound(end, size, size);
    const std::int64_t length = last > first ? (last - first + step - 1) / step : 0;
    if (step == 1) return narrow(*this, dim, first, length);

    Shape out_shape = in_shape;
    out_shape[axis] = static_cast<std::size_t>(length);
    const auto split = detail::split_at(in_shape, axis);
    const auto from = static_cast<std::size_t>(first), stride = static_cast<std::size_t>(step),
               rows = static_cast<std::size_t>(length);
    Tensor out = detail::visit_any(*this, "slice", [&]<class T>(xt::xarray<T>& a) {
        auto result = detail::empty_array<T>(out_shape);
        strided_rows(a.data(), result.data(), split, from, stride, rows, false);
        return detail::wrap(std::move(result));
    });
    // The gradient is g pasted back at every step-th row, zeros between.
    return autograd::make_result(
        out, "SliceBackward", {*this},
        [in_shape, split, axis, from, stride, rows](const Tensor& g) {
            if (autograd::creating_graph())
                return std::vector<Tensor>{strided_paste_op(g, in_shape, axis, from, stride)};
            return std::vector<Tensor>{
                detail::visit_floating(g, "slice", [&]<class T>(xt::xarray<T>& gv) {
                    auto grad = detail::zeros_array<T>(in_shape);
                    strided_rows(gv.data(), grad.data(), split, from, stride, rows, true);
                    return detail::wrap(std::move(grad));
                })};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

Tensor Tensor::index(std::initializer_list<indexing::TensorIndex> indices) const {
    return index(std::vector<indexing::TensorIndex>(indices));
}

namespace {

using indexing::TensorIndex;
using Kind = TensorIndex::Kind;

// How many of x's dims an index uses up: a mask covers as many as it has.
std::size_t dims_used(const TensorIndex& index) {
    switch (index.kind()) {
        case Kind::Integer:
        case Kind::Slice: return 1;
        case Kind::Tensor:
            return index.tensor().dtype() == kBool ? index.tensor().dim() : std::size_t{1};
        default: return 0;
    }
}

// x[..., i, ...] at dim d, with PyTorch's message for an index out of range;
// it counts dims as the indices are written (`written`), Nones included.
Tensor pick(const Tensor& x, std::size_t d, std::int64_t i, std::size_t written) {
    const auto size = static_cast<std::int64_t>(x.shape()[d]);
    check(i >= -size && i < size, "index: index {} is out of bounds for dimension {} with size {}",
          i, written, size);
    return select(x, static_cast<int>(d), i);
}

// x[..., index, ...] at dim d for an int64 tensor: its shape replaces dim d.
// Negative entries count from the end, as Python's (index_select takes none).
Tensor take(const Tensor& x, std::size_t d, const Tensor& index, std::size_t written) {
    const auto size = static_cast<std::int64_t>(x.shape()[d]);
    xt::xarray<std::int64_t> wrapped = index.data<std::int64_t>();
    for (std::int64_t& i : wrapped) {
        check(i >= -size && i < size,
              "index: index {} is out of bounds for dimension {} with size {}", i, written, size);
        if (i < 0) i += size;
    }
    wrapped.reshape({wrapped.size()});
    Tensor picked = index_select(x, static_cast<int>(d), tensor(std::move(wrapped)));
    std::vector<std::int64_t> sizes;
    const Shape shape = picked.shape(), index_shape = index.shape();
    for (std::size_t k = 0; k < shape.size(); ++k) {
        if (k != d) {
            sizes.push_back(static_cast<std::int64_t>(shape[k]));
            continue;
        }
        for (std::size_t s : index_shape) sizes.push_back(static_cast<std::int64_t>(s));
    }
    return reshape(picked, sizes);
}

// x[..., mask, ...] at dim d: the dims the mask covers become one, holding the
// entries where it is true, in order.
Tensor take_masked(const Tensor& x, std::size_t d, const Tensor& mask) {
    const Shape shape = x.shape(), mask_shape = mask.shape();
    check(!mask_shape.empty(), "index: expected a bool mask with at least 1 dimension (got 0-d)");
    const bool fits = std::equal(mask_shape.begin(), mask_shape.end(),
                                 shape.begin() + static_cast<std::ptrdiff_t>(d));
    if (!fits) {
        fail("index: the mask of shape {} does not match the dims from {} of a tensor of shape {}",
             shape_str(mask_shape), d, shape_str(shape));
    }
    std::vector<std::int64_t> positions;
    const auto& flags = mask.data<bool>();
    for (std::size_t i = 0; i < flags.size(); ++i) {
        if (flags.data()[i]) positions.push_back(static_cast<std::int64_t>(i));
    }
    const auto first = static_cast<int>(d), last = static_cast<int>(d + mask_shape.size() - 1);
    const Tensor flat = flatten(x, first, last);
    xt::xarray<std::int64_t> where = xt::xarray<std::int64_t>::from_shape({positions.size()});
    std::copy(positions.begin(), positions.end(), where.begin());
    return index_select(flat, first, tensor(std::move(where)));
}

}  // namespace

Tensor Tensor::index(const std::vector<indexing::TensorIndex>& indices) const {
    check(defined(), "index: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(*this))
        return detail::rounded(detail::computable(*this).index(indices), *to);
    std::size_t used = 0, ellipses = 0, tensors = 0;
    for (const TensorIndex& i : indices) {
        used += dims_used(i);
        ellipses += i.kind() == Kind::Ellipsis;
        tensors += i.kind() == Kind::Tensor;
        if (i.kind() == Kind::Tensor) {
            const Dtype dt = i.tensor().defined() ? i.tensor().dtype() : kFloat32;
            if (dt != kInt64 && dt != kBool) {
                fail("index: expected int64 or bool index tensors (got {})",
                     i.tensor().defined() ? dtype_name(dt) : "an undefined one");
            }
        }
    }
    check(ellipses <= 1, "index: an index can only have a single ellipsis (got {})", ellipses);
    check(tensors <= 1,
          "index: expected at most one index tensor (got {}); index one dim at a time", tensors);
    check(used <= dim(), "index: too many indices for a tensor of dimension {} (got {})", dim(),
          used);
    Tensor out = *this;
    std::size_t d = 0;        // the dim of `out` the next index applies to
    std::size_t written = 0;  // the dims the indices so far stand for, Nones included
    for (const TensorIndex& i : indices) {
        written +=
            i.kind() == Kind::Ellipsis ? dim() - used : std::max<std::size_t>(dims_used(i), 1);
        switch (i.kind()) {
            case Kind::None: out = unsqueeze(out, static_cast<int>(d++)); break;
            case Kind::Ellipsis: d += dim() - used; break;
            case Kind::Integer: out = pick(out, d, i.integer(), written - 1); break;
            case Kind::Slice:
                out = out.slice(static_cast<int>(d++), i.slice().start, i.slice().stop,
                                i.slice().step);
                break;
            case Kind::Tensor:
                if (i.tensor().dtype() == kBool) {
                    out = take_masked(out, d++, i.tensor());
                } else {
                    out = take(out, d, i.tensor(), written - 1);
                    d += i.tensor().dim();
                }
                break;
        }
    }
    return out.impl() == impl() ? clone() : out;  // x[...] is a copy too
}

}  // namespace xg
