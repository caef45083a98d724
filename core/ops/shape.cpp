// Shape ops: reshape, permute, transpose, (un)squeeze, cat and what derives from
// them (stack, flatten, unflatten, broadcast_to), tril and triu. Each returns a fresh
// copy (xgrad has no views), so a result never aliases its input; the gradient is
// the inverse rearrangement.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "shape_product.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

using autograd::make_result;
using detail::product;
using detail::wrap;

namespace {

// Same values, new shape: reshape, unsqueeze and squeeze are all this.
Tensor reshape_to(const Tensor& x, std::span<const std::size_t> shape, const char* op,
                  const char* node) {
    // A copy under a new shape: any dtype, storage ones too, exactly.
    Tensor out = detail::visit_storage(x, [&]<class T>(xt::xarray<T>& a) {
        auto copy = detail::empty_array<T>(shape);
        std::copy_n(a.data(), a.size(), copy.data());
        return wrap(std::move(copy));
    });
    // Backward is the op itself, so under create_graph it records as it should.
    const auto sizes = x.sizes();
    return make_result(
        out, node, {x},
        [in_shape = detail::ArrayShape(sizes.begin(), sizes.end()), op, node](const Tensor& g) {
            return autograd::Gradients{reshape_to(g, in_shape, op, node)};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

}  // namespace

namespace detail {

// x's elements rearranged so that out dim i is x's dim perm[i], contiguous.
// When only the last two dims swap (a batch of matrix transposes), 32 x 32
// tiles keep both sides in cache; otherwise rows of the output are gathered
// from x at its stride.
template <class T>
xt::xarray<T> permuted(const xt::xarray<T>& x, std::span<const std::size_t> perm) {
    const std::size_t n = perm.size();
    if (n == 0) return x;
    const auto& in_shape = x.shape();
    ArrayShape out_shape(n), in_stride(n), stride(n);  // stride: x's, along each out dim
    for (std::size_t d = n, step = 1; d-- > 0; step *= in_shape[d]) in_stride[d] = step;
    for (std::size_t i = 0; i < n; ++i) {
        out_shape[i] = in_shape[perm[i]];
        stride[i] = in_stride[perm[i]];
    }
    auto out = empty_array<T>(out_shape);
    if (out.size() == 0) return out;
    const T* in = x.data();
    T* o = out.data();
    bool batched_transpose = n >= 2 && perm[n - 2] == n - 1 && perm[n - 1] == n - 2;
    for (std::size_t d = 0; d + 2 < n; ++d) batched_transpose = batched_transpose && perm[d] == d;
    if (batched_transpose) {
        // Strips of kTile output rows (input columns), each matrix's strips
        // across threads: every strip writes its own output rows.
        constexpr std::size_t kTile = 32;
        const std::size_t rows = in_shape[n - 2], cols = in_shape[n - 1];
        const std::size_t strips = (cols + kTile - 1) / kTile,
                          matrices = out.size() / (rows * cols);
        detail::parallel_rows(matrices * strips, rows * kTile, [=](std::size_t k) {
            const std::size_t b = k / strips * rows * cols, c0 = k % strips * kTile;
            const std::size_t c1 = std::min(cols, c0 + kTile);
            for (std::size_t r0 = 0; r0 < rows; r0 += kTile) {
                const std::size_t r1 = std::min(rows, r0 + kTile);
                for (std::size_t c = c0; c < c1; ++c)
                    for (std::size_t r = r0; r < r1; ++r)
                        o[b + c * rows + r] = in[b + r * cols + c];
            }
        });
        return out;
    }
    const std::size_t last = out_shape[n - 1], step = stride[n - 1];
    for_each_row(out_shape, stride, [&](std::size_t start, std::size_t offset) {
        for (std::size_t j = 0; j < last; ++j) o[start + j] = in[offset + j * step];
    });
    return out;
}

template xt::xarray<float> permuted(const xt::xarray<float>&, std::span<const std::size_t>);
template xt::xarray<double> permuted(const xt::xarray<double>&, std::span<const std::size_t>);
template xt::xarray<std::int64_t> permuted(const xt::xarray<std::int64_t>&,
                                           std::span<const std::size_t>);

}  // namespace detail

Tensor reshape(const Tensor& x, const std::vector<std::int64_t>& shape) {
    check(x.defined(), "reshape: expected a defined tensor (got an undefined one)");
    std::size_t numel = x.numel(), known = 1;
    auto inferred = shape.end();
    bool valid = true;
    for (auto it = shape.begin(); it != shape.end(); ++it) {
        if (*it == -1 && inferred == shape.end())
            inferred = it;
        else if (*it < 0)
            valid = false;
        else
            known *= static_cast<std::size_t>(*it);
    }
    detail::ArrayShape target;
    for (auto it = shape.begin(); it != shape.end(); ++it) {
        if (it != inferred)
            target.push_back(static_cast<std::size_t>(std::max<std::int64_t>(*it, 0)));
        else
            target.push_back(known == 0 ? 0 : numel / known);
    }
    valid = valid && product(target) == numel && (inferred == shape.end() || known != 0);
    if (!valid) {
        fail("reshape: shape [{}] is invalid for a tensor of {} elements", fmt::join(shape, ", "),
             numel);
    }
    return reshape_to(x, target, "reshape", "ReshapeBackward");
}

namespace {

// x with out dim i taken from x's dim perm[i] (a checked permutation); its
// gradient is g permuted back. permute and transpose both record this.
Tensor permuted_op(const Tensor& x, const detail::ArrayShape& perm, const char* op,
                   const char* node) {
    Tensor out = detail::visit_any(
        x, op, [&]<class T>(xt::xarray<T>& a) { return wrap(detail::permuted(a, perm)); });
    detail::ArrayShape inverse(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = i;
    return make_result(
        out, node, {x},
        [inverse, op, node](const Tensor& g) {
            return autograd::Gradients{permuted_op(g, inverse, op, node)};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
    check(x.defined(), "permute: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(permute(detail::computable(x), dims), *to);
    const std::size_t n = x.dim();
    if (dims.size() != n) {
        fail("permute: expected {} dims for a tensor of shape {} (got [{}])", n,
             shape_str(x.shape()), fmt::join(dims, ", "));
    }
    detail::ArrayShape perm(n), seen(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
        perm[i] = detail::normalize_dim(dims[i], n, "permute");
        if (seen[perm[i]]++ > 0)
            fail("permute: expected each dim once (got [{}])", fmt::join(dims, ", "));
    }
    return permuted_op(x, perm, "permute", "PermuteBackward");
}

Tensor transpose(const Tensor& x, int dim0, int dim1) {
    check(x.defined(), "transpose: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(transpose(detail::computable(x), dim0, dim1), *to);
    std::size_t n = x.dim();
    std::size_t a = detail::normalize_dim(dim0, n, "transpose");
    std::size_t b = detail::normalize_dim(dim1, n, "transpose");
    if (n == 0) return x.clone();
    detail::ArrayShape perm(n);
    std::iota(perm.begin(), perm.end(), std::size_t(0));
    std::swap(perm[a], perm[b]);
    return permuted_op(x, perm, "transpose", "TransposeBackward");
}

Tensor unsqueeze(const Tensor& x, int dim) {
    check(x.defined(), "unsqueeze: expected a defined tensor (got an undefined one)");
    Shape shape = x.shape();
    std::size_t at = detail::normalize_dim(dim, shape.size() + 1, "unsqueeze", shape.size());
    shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(at), 1);
    return reshape_to(x, shape, "unsqueeze", "UnsqueezeBackward");
}

Tensor squeeze(const Tensor& x) {
    check(x.defined(), "squeeze: expected a defined tensor (got an undefined one)");
    Shape shape;
    for (auto d : x.shape()) {
        if (d != 1) shape.push_back(d);
    }
    return reshape_to(x, shape, "squeeze", "SqueezeBackward");
}

// Like torch.squeeze(x, dim): a dim whose size is not 1 is left alone.
Tensor squeeze(const Tensor& x, int dim) {
    check(x.defined(), "squeeze: expected a defined tensor (got an undefined one)");
    Shape shape = x.shape();
    std::size_t at = detail::normalize_dim(dim, shape.size(), "squeeze");
    if (!shape.empty() && shape[at] == 1)
        shape.erase(shape.begin() + static_cast<std::ptrdiff_t>(at));
    return reshape_to(x, shape, "squeeze", "SqueezeBackward");
}

Tensor cat(const std::vector<Tensor>& tensors, int dim) {
    check(!tensors.empty(), "cat: expected a non-empty list of tensors (got none)");
    // PyTorch's promotion: every part meets at the dtype they all convert to.
    Dtype dtype = tensors.front().defined() ? tensors.front().dtype() : kFloat32;
    for (const Tensor& t : tensors) {
        check(t.defined(), "cat: expected defined tensors (got an undefined one)");
        dtype = promote_types(dtype, t.dtype());
    }
    for (const Tensor& t : tensors) {
        if (t.dtype() == dtype && compute_dtype(dtype) == dtype) continue;
        std::vector<Tensor> promoted;
        for (const Tensor& part : tensors) promoted.push_back(part.to(compute_dtype(dtype)));
        return detail::rounded(cat(promoted, dim), dtype);
    }
    const Tensor& first = tensors.front();
    check(first.defined(), "cat: expected defined tensors (got an undefined one)");
    Shape shape = first.shape();
    if (shape.empty()) {
        fail("cat: expected tensors with at least 1 dimension (got {})", shape_str(shape));
    }
    std::size_t axis = detail::normalize_dim(dim, shape.size(), "cat");
    std::vector<std::size_t> sizes;
    for (const Tensor& t : tensors) {
        detail::check_same_dtype(first, t, "cat");
        Shape s = t.shape();
        bool compatible = s.size() == shape.size();
        for (std::size_t i = 0; compatible && i < s.size(); ++i) {
            compatible = i == axis || s[i] == shape[i];
        }
        if (!compatible) {
            fail("cat: expected tensors of shape {} except in dim {} (got {})", shape_str(shape),
                 dim, shape_str(s));
        }
        sizes.push_back(s[axis]);
    }
    Shape out_shape = shape;
    out_shape[axis] = std::accumulate(sizes.begin(), sizes.end(), std::size_t{0});
    auto split = detail::split_at(out_shape, axis);
    Tensor out = detail::visit_any(first, "cat", [&]<class T>(xt::xarray<T>&) {
        auto result = detail::empty_array<T>(out_shape);
        std::size_t offset = 0;  // where this part starts inside one outer row
        for (std::size_t p = 0; p < tensors.size(); ++p) {
            const T* src = tensors[p].data<T>().data();
            std::size_t chunk = sizes[p] * split.inner;
            for (std::size_t o = 0; o < split.outer; ++o) {
                std::copy_n(src + o * chunk, chunk,
                            result.data() + o * split.size * split.inner + offset);
            }
            offset += chunk;
        }
        return wrap(std::move(result));
    });
    std::vector<Shape> part_shapes;
    for (const Tensor& t : tensors) part_shapes.push_back(t.shape());
    // Each input's gradient is its slab of g, cut out the way forward pasted it in.
    const auto axis_int = static_cast<int>(axis);
    return make_result(
        out, "CatBackward", tensors,
        [part_shapes, split, axis_int](const Tensor& g) {
            std::vector<Tensor> grads;
            if (autograd::creating_graph()) {  // the same slabs, cut with narrow
                std::int64_t start = 0;
                for (const Shape& part_shape : part_shapes) {
                    const auto length = static_cast<std::int64_t>(part_shape[axis_int]);
                    grads.push_back(narrow(g, axis_int, start, length));
                    start += length;
                }
                return autograd::Gradients(grads);
            }
            std::size_t offset = 0;
            for (const Shape& part_shape : part_shapes) {
                std::size_t chunk = product(part_shape) / std::max<std::size_t>(split.outer, 1);
                grads.push_back(detail::visit_floating(g, "cat", [&]<class T>(xt::xarray<T>& gv) {
                    auto part = detail::empty_array<T>(part_shape);
                    for (std::size_t o = 0; o < split.outer; ++o) {
                        std::copy_n(gv.data() + o * split.size * split.inner + offset, chunk,
                                    part.data() + o * chunk);
                    }
                    return wrap(std::move(part));
                }));
                offset += chunk;
            }
            return autograd::Gradients(grads);
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

// ---- derived from the ops above: each gradient comes from theirs ----

Tensor stack(const std::vector<Tensor>& tensors, int dim) {
    check(!tensors.empty(), "stack: expected a non-empty list of tensors (got none)");
    for (const Tensor& t : tensors) {
        if (!(t.defined() && t.shape() == tensors.front().shape())) {
            fail("stack: expected tensors of one shape {} (got {})",
                 shape_str(tensors.front().shape()),
                 t.defined() ? shape_str(t.shape()) : "an undefined one");
        }
    }
    const int axis =
        static_cast<int>(detail::normalize_dim(dim, tensors.front().dim() + 1, "stack"));
    std::vector<Tensor> parts;
    for (const Tensor& t : tensors) parts.push_back(unsqueeze(t, axis));
    return cat(parts, axis);
}

Tensor flatten(const Tensor& x, int start_dim, int end_dim) {
    check(x.defined(), "flatten: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    if (shape.empty()) return reshape(x, {1});
    const std::size_t first = detail::normalize_dim(start_dim, shape.size(), "flatten");
    const std::size_t last = detail::normalize_dim(end_dim, shape.size(), "flatten");
    check(first <= last, "flatten: expected start_dim <= end_dim (got {} and {})", start_dim,
          end_dim);
    std::vector<std::int64_t> sizes(shape.begin(),
                                    shape.begin() + static_cast<std::ptrdiff_t>(first));
    std::int64_t merged = 1;
    for (std::size_t d = first; d <= last; ++d) merged *= static_cast<std::int64_t>(shape[d]);
    sizes.push_back(merged);
    sizes.insert(sizes.end(), shape.begin() + static_cast<std::ptrdiff_t>(last) + 1, shape.end());
    return reshape(x, sizes);
}

Tensor unflatten(const Tensor& x, int dim, const std::vector<std::int64_t>& sizes) {
    check(x.defined() && x.dim() > 0, "unflatten: expected a tensor with at least 1 dimension");
    const Shape shape = x.shape();
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "unflatten");
    std::vector<std::int64_t> out(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(axis));
    out.insert(out.end(), sizes.begin(), sizes.end());
    out.insert(out.end(), shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, shape.end());
    return reshape(x, out);  // reshape checks the sizes multiply out (one -1 allowed)
}

// x + zeros(shape): the broadcasting add's gradient sums back to x's shape.
Tensor broadcast_to(const Tensor& x, const Shape& shape) {
    check(x.defined(), "broadcast_to: expected a defined tensor (got an undefined one)");
    if (detail::broadcast_shapes(x.shape(), shape, "broadcast_to") != shape) {
        fail("broadcast_to: cannot broadcast {} to {}", shape_str(x.shape()), shape_str(shape));
    }
    return x + zeros(shape, x.dtype());
}

namespace {
// x where the [rows, cols] mask of its last two dims holds, else 0 (NaN too).
Tensor triangle(const Tensor& x, std::int64_t diagonal, bool lower, const char* op) {
    if (!(x.defined() && x.dim() >= 2)) {
        fail("{}: expected a tensor with at least 2 dimensions (got {})", op,
             x.defined() ? shape_str(x.shape()) : "an undefined one");
    }
    const Shape shape = x.shape();
    const std::size_t rows = shape[shape.size() - 2], cols = shape.back();
    xt::xarray<bool> keep = xt::xarray<bool>::from_shape({rows, cols});
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            const auto offset = static_cast<std::int64_t>(j) - static_cast<std::int64_t>(i);
            keep(i, j) = lower ? offset <= diagonal : offset >= diagonal;
        }
    }
    return where(tensor(std::move(keep)), x, zeros({}, x.dtype()));
}
}  // namespace

Tensor tril(const Tensor& x, std::int64_t diagonal) { return triangle(x, diagonal, true, "tril"); }
Tensor triu(const Tensor& x, std::int64_t diagonal) { return triangle(x, diagonal, false, "triu"); }

}  // namespace xg
