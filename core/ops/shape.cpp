// Shape ops. Each returns a fresh copy (xgrad has no views), so a result
// never aliases its input; the gradient is the inverse rearrangement.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

std::size_t product(const Shape& shape) {
    return std::accumulate(shape.begin(), shape.end(), std::size_t{1}, std::multiplies<>());
}

// Same values, new shape: reshape, unsqueeze and squeeze are all this.
Tensor reshape_to(const Tensor& x, const Shape& shape, const char* op, const char* node) {
    Tensor out = detail::visit_any(x, op, [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> copy = a;
        copy.reshape(shape);
        return wrap(std::move(copy));
    });
    return make_result(out, node, {x}, [in_shape = x.shape(), op, node](const Tensor& g) {
        return autograd::Gradients{reshape_to(g, in_shape, op, node)};
    });
}

}  // namespace

namespace detail {

// x's elements rearranged so that out dim i is x's dim perm[i], contiguous.
// When only the last two dims swap (a batch of matrix transposes), 32 x 32
// tiles keep both sides in cache; otherwise rows of the output are gathered
// from x at its stride.
template <class T>
xt::xarray<T> permuted(const xt::xarray<T>& x, const std::vector<std::size_t>& perm) {
    const std::size_t n = perm.size();
    if (n == 0) return x;
    Shape in_shape(x.shape().begin(), x.shape().end()), out_shape(n);
    std::vector<std::size_t> in_stride(n), stride(n);  // stride: x's, along each out dim
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
        constexpr std::size_t kTile = 32;
        const std::size_t rows = in_shape[n - 2], cols = in_shape[n - 1];
        for (std::size_t b = 0; b < out.size(); b += rows * cols) {
            for (std::size_t r0 = 0; r0 < rows; r0 += kTile) {
                for (std::size_t c0 = 0; c0 < cols; c0 += kTile) {
                    const std::size_t r1 = std::min(rows, r0 + kTile);
                    const std::size_t c1 = std::min(cols, c0 + kTile);
                    for (std::size_t c = c0; c < c1; ++c)
                        for (std::size_t r = r0; r < r1; ++r)
                            o[b + c * rows + r] = in[b + r * cols + c];
                }
            }
        }
        return out;
    }
    const std::size_t last = out_shape[n - 1], step = stride[n - 1];
    for_each_row(out_shape, stride, [&](std::size_t start, std::size_t offset) {
        for (std::size_t j = 0; j < last; ++j) o[start + j] = in[offset + j * step];
    });
    return out;
}

template xt::xarray<float> permuted(const xt::xarray<float>&, const std::vector<std::size_t>&);
template xt::xarray<double> permuted(const xt::xarray<double>&, const std::vector<std::size_t>&);
template xt::xarray<std::int64_t> permuted(const xt::xarray<std::int64_t>&,
                                           const std::vector<std::size_t>&);

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
    Shape target;
    for (auto it = shape.begin(); it != shape.end(); ++it) {
        if (it != inferred)
            target.push_back(static_cast<std::size_t>(std::max<std::int64_t>(*it, 0)));
        else
            target.push_back(known == 0 ? 0 : numel / known);
    }
    valid = valid && product(target) == numel && (inferred == shape.end() || known != 0);
    check(valid, "reshape: shape [{}] is invalid for a tensor of {} elements",
          fmt::join(shape, ", "), numel);
    return reshape_to(x, target, "reshape", "ReshapeBackward");
}

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
    check(x.defined(), "permute: expected a defined tensor (got an undefined one)");
    std::size_t n = x.dim();
    check(dims.size() == n, "permute: expected {} dims for a tensor of shape {} (got [{}])", n,
          shape_str(x.shape()), fmt::join(dims, ", "));
    std::vector<std::size_t> perm, inverse(n);
    for (int d : dims) perm.push_back(detail::normalize_dim(d, n, "permute"));
    std::vector<bool> seen(n, false);
    for (std::size_t i = 0; i < n; ++i) {
        check(!seen[perm[i]], "permute: expected each dim once (got [{}])", fmt::join(dims, ", "));
        seen[perm[i]] = true;
        inverse[perm[i]] = i;
    }
    Tensor out = detail::visit_any(
        x, "permute", [&]<class T>(xt::xarray<T>& a) { return wrap(detail::permuted(a, perm)); });
    std::vector<int> back(inverse.begin(), inverse.end());
    return make_result(out, "PermuteBackward", {x},
                       [back](const Tensor& g) { return autograd::Gradients{permute(g, back)}; });
}

Tensor transpose(const Tensor& x, int dim0, int dim1) {
    check(x.defined(), "transpose: expected a defined tensor (got an undefined one)");
    std::size_t n = x.dim();
    std::size_t a = detail::normalize_dim(dim0, n, "transpose");
    std::size_t b = detail::normalize_dim(dim1, n, "transpose");
    if (n == 0) return x.clone();
    std::vector<int> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::swap(perm[a], perm[b]);
    Tensor out = detail::visit_any(x, "transpose", [&]<class T>(xt::xarray<T>& v) {
        return wrap(detail::permuted(v, std::vector<std::size_t>(perm.begin(), perm.end())));
    });
    return make_result(out, "TransposeBackward", {x}, [dim0, dim1](const Tensor& g) {
        return autograd::Gradients{transpose(g, dim0, dim1)};
    });
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
        if (t.dtype() == dtype) continue;
        std::vector<Tensor> promoted;
        for (const Tensor& part : tensors) promoted.push_back(part.to(dtype));
        return cat(promoted, dim);
    }
    const Tensor& first = tensors.front();
    check(first.defined(), "cat: expected defined tensors (got an undefined one)");
    Shape shape = first.shape();
    check(!shape.empty(), "cat: expected tensors with at least 1 dimension (got {})",
          shape_str(shape));
    std::size_t axis = detail::normalize_dim(dim, shape.size(), "cat");
    std::vector<std::size_t> sizes;
    for (const Tensor& t : tensors) {
        detail::check_same_dtype(first, t, "cat");
        Shape s = t.shape();
        bool compatible = s.size() == shape.size();
        for (std::size_t i = 0; compatible && i < s.size(); ++i) {
            compatible = i == axis || s[i] == shape[i];
        }
        check(compatible, "cat: expected tensors of shape {} except in dim {} (got {})",
              shape_str(shape), dim, shape_str(s));
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
    return make_result(out, "CatBackward", tensors, [part_shapes, split](const Tensor& g) {
        std::vector<Tensor> grads;
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
        return grads;
    });
}

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

}  // namespace

Tensor narrow(const Tensor& x, int dim, std::int64_t start, std::int64_t length) {
    check(x.defined(), "narrow: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    check(!shape.empty(), "narrow: expected a tensor with at least 1 dimension (got {})",
          shape_str(shape));
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "narrow");
    const auto size = static_cast<std::int64_t>(shape[axis]);
    if (start < 0) start += size;  // PyTorch wraps a negative start once
    check(start >= 0 && length >= 0 && start + length <= size,
          "narrow: expected 0 <= start and start + length <= {} in dim {} of {} (got start {}, "
          "length {})",
          size, dim, shape_str(shape), start, length);
    Shape out_shape = shape;
    out_shape[axis] = static_cast<std::size_t>(length);
    const auto split = detail::split_at(shape, axis);
    const auto first = static_cast<std::size_t>(start), rows = static_cast<std::size_t>(length);
    Tensor out = detail::visit_any(x, "narrow", [&]<class T>(xt::xarray<T>& a) {
        auto result = detail::empty_array<T>(out_shape);
        copy_rows(a.data(), split.size, first, result.data(), rows, 0, rows, split);
        return wrap(std::move(result));
    });
    // The gradient is g pasted back where the rows came from, zeros elsewhere.
    return make_result(out, "NarrowBackward", {x}, [shape, split, first, rows](const Tensor& g) {
        return std::vector<Tensor>{
            detail::visit_floating(g, "narrow", [&]<class T>(xt::xarray<T>& gv) {
                xt::xarray<T> grad = xt::zeros<T>(shape);
                copy_rows(gv.data(), rows, 0, grad.data(), split.size, first, rows, split);
                return wrap(std::move(grad));
            })};
    });
}

std::vector<Tensor> chunk(const Tensor& x, std::int64_t chunks, int dim) {
    check(x.defined(), "chunk: expected a defined tensor (got an undefined one)");
    check(chunks > 0, "chunk: expected chunks > 0 (got {})", chunks);
    check(x.dim() > 0, "chunk: expected a tensor with at least 1 dimension (got {})",
          shape_str(x.shape()));
    const auto size =
        static_cast<std::int64_t>(x.shape()[detail::normalize_dim(dim, x.dim(), "chunk")]);
    const std::int64_t step = std::max<std::int64_t>((size + chunks - 1) / chunks, 1);
    std::vector<Tensor> parts;
    for (std::int64_t start = 0; start < size || (size == 0 && parts.empty()); start += step) {
        parts.push_back(narrow(x, dim, start, std::min(step, size - start)));
    }
    return parts;
}

// ---- derived from the ops above: each gradient comes from theirs ----

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
    check(total == size, "split: expected sizes summing to {} (dim {} of {}) (got {})", size, dim,
          shape_str(x.shape()), total);
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

Tensor stack(const std::vector<Tensor>& tensors, int dim) {
    check(!tensors.empty(), "stack: expected a non-empty list of tensors (got none)");
    for (const Tensor& t : tensors) {
        check(t.defined() && t.shape() == tensors.front().shape(),
              "stack: expected tensors of one shape {} (got {})",
              shape_str(tensors.front().shape()),
              t.defined() ? shape_str(t.shape()) : "an undefined one");
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
    check(detail::broadcast_shapes(x.shape(), shape, "broadcast_to") == shape,
          "broadcast_to: cannot broadcast {} to {}", shape_str(x.shape()), shape_str(shape));
    return x + zeros(shape, x.dtype());
}

namespace {
// x where the [rows, cols] mask of its last two dims holds, else 0 (NaN too).
Tensor triangle(const Tensor& x, std::int64_t diagonal, bool lower, const char* op) {
    check(x.defined() && x.dim() >= 2, "{}: expected a tensor with at least 2 dimensions (got {})",
          op, x.defined() ? shape_str(x.shape()) : "an undefined one");
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

// ---- expand, repeat, flip and roll: plain loops that move whole blocks ----

namespace {

// x (read as `shape`, its own shape with leading 1s) tiled reps[d] times along
// each dim d: one pass per tiled dim, each copying the blocks below that dim.
template <class T>
xt::xarray<T> tiled(const xt::xarray<T>& x, Shape shape, const Shape& reps) {
    xt::xarray<T> result;
    const T* from = x.data();
    bool copied = false;
    for (std::size_t d = shape.size(); d-- > 0;) {
        if (reps[d] == 1) continue;
        const std::size_t outer = std::accumulate(shape.begin(), shape.begin() + std::ptrdiff_t(d),
                                                  std::size_t{1}, std::multiplies<>());
        const std::size_t chunk = product(shape) / std::max<std::size_t>(outer, 1);
        shape[d] *= reps[d];
        auto next = detail::empty_array<T>(shape);
        for (std::size_t o = 0; o < outer; ++o) {
            for (std::size_t r = 0; r < reps[d]; ++r)
                std::copy_n(from + o * chunk, chunk, next.data() + (o * reps[d] + r) * chunk);
        }
        result = std::move(next);
        from = result.data();
        copied = true;
    }
    if (!copied) result = x;  // nothing tiled: a plain copy
    result.reshape(shape);
    return result;
}

// The gradient of tiled: g (of the tiled shape) with the tiles of each dim
// summed, back to `shape`. A dim tiled 0 times gets zeros.
template <class T>
xt::xarray<T> summed_tiles(const xt::xarray<T>& g, const Shape& shape, const Shape& reps) {
    Shape current(shape.size());
    for (std::size_t d = 0; d < shape.size(); ++d) current[d] = shape[d] * reps[d];
    xt::xarray<T> result = g;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (reps[d] == 1) continue;
        current[d] = shape[d];
        const std::size_t outer =
            std::accumulate(current.begin(), current.begin() + std::ptrdiff_t(d), std::size_t{1},
                            std::multiplies<>());
        const std::size_t chunk = product(current) / std::max<std::size_t>(outer, 1);
        xt::xarray<T> next = xt::zeros<T>(current);
        const T* from = result.data();
        for (std::size_t o = 0; o < outer; ++o) {
            T* to = next.data() + o * chunk;
            for (std::size_t r = 0; r < reps[d]; ++r) {
                const T* tile = from + (o * reps[d] + r) * chunk;
                for (std::size_t k = 0; k < chunk; ++k) to[k] += tile[k];
            }
        }
        result = std::move(next);
    }
    return result;
}

// repeat and expand: x as `padded` tiled by reps; the gradient sums the tiles.
Tensor tile(const Tensor& x, const Shape& padded, const Shape& reps, const char* op,
            const char* node) {
    Tensor out = detail::visit_any(
        x, op, [&]<class T>(xt::xarray<T>& a) { return wrap(tiled(a, padded, reps)); });
    return make_result(out, node, {x}, [padded, reps, shape = x.shape(), op](const Tensor& g) {
        return autograd::Gradients{detail::visit_floating(g, op, [&]<class T>(xt::xarray<T>& gv) {
            xt::xarray<T> summed = summed_tiles(gv, padded, reps);
            summed.reshape(shape);
            return wrap(std::move(summed));
        })};
    });
}

// a with entry j of the dim laid out by `split` moved to entry to(j): one pass
// of flip or roll, copying whole rows below the dim.
template <class T, class To>
xt::xarray<T> moved(const xt::xarray<T>& a, const detail::DimSplit& split, To to) {
    auto out = detail::empty_array<T>(a.shape());
    for (std::size_t o = 0; o < split.outer; ++o) {
        for (std::size_t j = 0; j < split.size; ++j) {
            std::copy_n(a.data() + (o * split.size + j) * split.inner, split.inner,
                        out.data() + (o * split.size + to(j)) * split.inner);
        }
    }
    return out;
}

}  // namespace

Tensor expand(const Tensor& x, const std::vector<std::int64_t>& sizes) {
    check(x.defined(), "expand: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    check(sizes.size() >= shape.size(),
          "expand: expected at least {} sizes for a tensor of shape {} (got [{}])", shape.size(),
          shape_str(shape), fmt::join(sizes, ", "));
    const std::size_t lead = sizes.size() - shape.size();
    Shape padded(lead, 1), reps(sizes.size(), 1);
    padded.insert(padded.end(), shape.begin(), shape.end());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        if (sizes[i] == -1 && i >= lead) continue;  // -1 keeps an existing dim
        check(sizes[i] >= 0, "expand: expected sizes >= 0, or -1 for an existing dim (got [{}])",
              fmt::join(sizes, ", "));
        const auto size = static_cast<std::size_t>(sizes[i]);
        check(size == padded[i] || padded[i] == 1,
              "expand: expected size {} at dim {} to expand {}, where only dims of size 1 grow "
              "(got [{}])",
              padded[i], i, shape_str(shape), fmt::join(sizes, ", "));
        if (padded[i] == 1) reps[i] = size;
    }
    return tile(x, padded, reps, "expand", "ExpandBackward");
}

Tensor repeat(const Tensor& x, const std::vector<std::int64_t>& repeats) {
    check(x.defined(), "repeat: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    check(repeats.size() >= shape.size(),
          "repeat: expected at least {} repeats for a tensor of shape {} (got [{}])", shape.size(),
          shape_str(shape), fmt::join(repeats, ", "));
    check(std::all_of(repeats.begin(), repeats.end(), [](std::int64_t r) { return r >= 0; }),
          "repeat: expected repeats >= 0 (got [{}])", fmt::join(repeats, ", "));
    Shape padded(repeats.size() - shape.size(), 1);  // extra repeats tile new leading dims
    padded.insert(padded.end(), shape.begin(), shape.end());
    return tile(x, padded, Shape(repeats.begin(), repeats.end()), "repeat", "RepeatBackward");
}

Tensor flip(const Tensor& x, const std::vector<int>& dims) {
    check(x.defined(), "flip: expected a defined tensor (got an undefined one)");
    const Shape shape = x.shape();
    std::vector<bool> seen(std::max<std::size_t>(shape.size(), 1), false);
    std::vector<detail::DimSplit> splits;
    for (int dim : dims) {
        const std::size_t axis = detail::normalize_dim(dim, shape.size(), "flip");
        check(!seen[axis], "flip: expected each dim once (got [{}])", fmt::join(dims, ", "));
        seen[axis] = true;
        splits.push_back(detail::split_at(shape, axis));
    }
    Tensor out = detail::visit_any(x, "flip", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> result = splits.empty() ? a : xt::xarray<T>();
        for (std::size_t i = 0; i < splits.size(); ++i) {
            const std::size_t last = splits[i].size - 1;  // unused when the dim is empty
            result =
                moved(i == 0 ? a : result, splits[i], [last](std::size_t j) { return last - j; });
        }
        return wrap(std::move(result));
    });
    return make_result(out, "FlipBackward", {x},
                       [dims](const Tensor& g) { return autograd::Gradients{flip(g, dims)}; });
}

Tensor roll(const Tensor& x, const std::vector<std::int64_t>& shifts,
            const std::vector<int>& dims) {
    check(x.defined(), "roll: expected a defined tensor (got an undefined one)");
    check(!shifts.empty() && shifts.size() == std::max<std::size_t>(dims.size(), 1),
          "roll: expected one shift per dim, or one shift and no dims (got {} shifts and {} dims)",
          shifts.size(), dims.size());
    const Shape shape = x.shape();
    check(dims.empty() || !shape.empty(),
          "roll: expected a tensor with at least 1 dimension to roll along dims (got {})",
          shape_str(shape));
    // No dims: the flattened tensor rolls as one dim.
    std::vector<detail::DimSplit> splits;
    if (dims.empty()) splits.push_back({1, x.numel(), 1});
    for (int dim : dims)
        splits.push_back(detail::split_at(shape, detail::normalize_dim(dim, shape.size(), "roll")));
    std::vector<std::size_t> steps;  // each shift in [0, size): negative ones count back
    std::vector<std::int64_t> back;  // the shifts that undo them, for the gradient
    for (std::size_t i = 0; i < splits.size(); ++i) {
        const auto size = static_cast<std::int64_t>(splits[i].size);
        const std::int64_t step = size == 0 ? 0 : ((shifts[i] % size) + size) % size;
        steps.push_back(static_cast<std::size_t>(step));
        back.push_back(-step);
    }
    Tensor out = detail::visit_any(x, "roll", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> result;
        for (std::size_t i = 0; i < splits.size(); ++i) {
            const std::size_t size = splits[i].size, step = steps[i];
            result = moved(i == 0 ? a : result, splits[i],
                           [size, step](std::size_t j) { return (j + step) % size; });
        }
        return wrap(std::move(result));
    });
    return make_result(out, "RollBackward", {x}, [back, dims](const Tensor& g) {
        return autograd::Gradients{roll(g, back, dims)};
    });
}

}  // namespace xg
