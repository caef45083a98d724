// Indexing ops: embedding (a row lookup in a table), and masked_fill / where
// (elements picked by a kBool mask).
//
// embedding(weight [num, dim], indices int64 [...]) -> [..., dim]:
//   out[i..., :] = weight[indices[i...], :]
// Backward scatter-adds each output row's gradient into the row it came from,
// so an index used twice receives the sum of both gradients. That is an
// index_add of the rows into zeros, which under create_graph it runs as the op,
// whose own gradient is embedding again (PyTorch's embedding double backward).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

namespace {

// embedding's gradient with ops, for double backward: grad's rows added into
// zeros of the table at the rows they came from.
Tensor embedding_grad_op(const Tensor& grad, const std::vector<std::size_t>& rows, std::size_t num,
                         std::size_t dim) {
    auto index = xt::xarray<std::int64_t>::from_shape({rows.size()});
    std::copy(rows.begin(), rows.end(), index.begin());
    const Tensor rows_grad =
        reshape(grad, {static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(dim)});
    return index_add(zeros({num, dim}, grad.dtype()), 0, tensor(std::move(index)), rows_grad);
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices) {
    check(weight.defined() && indices.defined(),
          "embedding: expected a defined weight and defined indices (got an undefined tensor)");
    if (auto to = detail::storage_dtype(weight))
        return detail::rounded(embedding(detail::computable(weight), indices), *to);
    if (indices.dtype() != kInt64) {
        fail("embedding: expected int64 indices (got {})", dtype_name(indices.dtype()));
    }
    Shape sw = weight.shape();
    if (sw.size() != 2) {
        fail("embedding: expected a 2-d weight [num_embeddings, embedding_dim] (got {})",
             shape_str(sw));
    }
    const std::size_t num = sw[0], dim = sw[1];
    const auto& idx = indices.data<std::int64_t>();
    for (std::int64_t i : idx) {
        check(i >= 0 && static_cast<std::size_t>(i) < num,
              "embedding: expected every index in [0, {}) for a table of {} rows (got index {})",
              num, num, i);
    }
    Shape out_shape = indices.shape();
    out_shape.push_back(dim);
    // The rows to read, copied so the backward does not see later edits to `indices`.
    std::vector<std::size_t> rows(idx.begin(), idx.end());
    return detail::visit_floating(weight, "embedding", [&]<class T>(xt::xarray<T>& w) {
        auto out = xt::xarray<T>::from_shape(out_shape);
        for (std::size_t r = 0; r < rows.size(); ++r) {
            std::copy_n(w.data() + rows[r] * dim, dim, out.data() + r * dim);
        }
        return autograd::make_result(
            detail::wrap(std::move(out)), "EmbeddingBackward", {weight},
            [rows = std::move(rows), num, dim](const Tensor& grad) {
                if (autograd::creating_graph())
                    return autograd::Gradients{embedding_grad_op(grad, rows, num, dim)};
                const T* g = grad.data<T>().data();
                xt::xarray<T> d = xt::zeros<T>({num, dim});
                for (std::size_t r = 0; r < rows.size(); ++r) {
                    T* row = d.data() + rows[r] * dim;
                    for (std::size_t c = 0; c < dim; ++c) row[c] += g[r * dim + c];
                }
                return autograd::Gradients{detail::wrap(std::move(d))};
            },
            autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
    });
}

namespace {

// The shape a mask op's operands broadcast to; the mask must be kBool.
Shape masked_shape(const Tensor& condition, const Tensor& a, const Tensor* b, const char* op) {
    check(condition.defined() && a.defined() && (b == nullptr || b->defined()),
          "{}: expected defined tensors (got an undefined one)", op);
    if (condition.dtype() != kBool) {
        fail("{}: expected a bool mask (got {})", op, dtype_name(condition.dtype()));
    }
    Shape shape = detail::broadcast_shapes(condition.shape(), a.shape(), op);
    return b ? detail::broadcast_shapes(shape, b->shape(), op) : shape;
}

// g where `keep` holds (or where it does not), zeros elsewhere, summed back to `shape`.
Tensor masked_grad(const Tensor& g, const xt::xarray<bool>& condition, bool keep,
                   const Shape& shape) {
    if (autograd::creating_graph()) {  // the same with ops, for double backward
        const Tensor mask = detail::wrap(xt::xarray<bool>(condition));
        return detail::sum_to_op(masked_fill(g, keep ? logical_not(mask) : mask, 0.0), shape);
    }
    return detail::visit_floating(g, "where", [&]<class T>(xt::xarray<T>& gv) {
        auto picked = detail::empty_array<T>(gv.shape());
        const T* gp = gv.data();
        const bool* c = condition.data();
        T* out = picked.data();
        detail::for_chunks(picked.size(), [=](std::size_t first, std::size_t count) {
            for (std::size_t i = first; i < first + count; ++i) {
                const T v = gp[i];  // loaded always, so that GCC vectorises the select
                out[i] = c[i] == keep ? v : T(0);
            }
        });
        if (detail::same_shape(g, shape)) return detail::wrap(std::move(picked));
        return detail::wrap(detail::sum_to_shape(picked, shape));
    });
}

// A copy of the kBool mask at `shape` (later edits to the mask do not reach a
// backward); a plain copy when it has that shape already.
xt::xarray<bool> mask_at(const Tensor& mask, const Shape& shape) {
    if (detail::same_shape(mask, shape)) return mask.data<bool>();
    return xt::broadcast(mask.data<bool>(), shape);
}

// out[i] = c[i] ? a[i] : b[i], a raw loop when a and b have the output's shape.
template <class T>
xt::xarray<T> select_values(const xt::xarray<bool>& c, const Tensor& a, const Tensor& b,
                            const Shape& shape) {
    if (!detail::same_shape(a, shape) || !detail::same_shape(b, shape)) {
        return xt::where(c, xt::broadcast(a.data<T>(), shape), xt::broadcast(b.data<T>(), shape));
    }
    auto out = detail::empty_array<T>(shape);
    const T *ap = a.data<T>().data(), *bp = b.data<T>().data();
    // Both sides loaded always, and the mask read as bytes: GCC vectorises
    // neither a conditional load nor a select on a bool load.
    const auto* cp = reinterpret_cast<const unsigned char*>(c.data());
    T* op = out.data();
    detail::for_chunks(out.size(), [=](std::size_t first, std::size_t count) {
        for (std::size_t i = first; i < first + count; ++i) {
            const T x = ap[i], y = bp[i];
            op[i] = cp[i] != 0 ? x : y;
        }
    });
    return out;
}

}  // namespace

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(masked_fill(detail::computable(x), mask, value), *to);
    const Shape shape = masked_shape(mask, x, nullptr, "masked_fill");
    xt::xarray<bool> condition = mask_at(mask, shape);
    Tensor out = detail::visit_any(x, "masked_fill", [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<T> filled = xt::where(condition, static_cast<T>(value), xt::broadcast(a, shape));
        return detail::wrap(std::move(filled));
    });
    return autograd::make_result(
        out, "MaskedFillBackward", {x},
        [condition, x_shape = x.shape()](const Tensor& g) {
            return std::vector<Tensor>{masked_grad(g, condition, false, x_shape)};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b) {
    const Shape shape = masked_shape(condition, a, &b, "where");
    const Dtype dtype = result_type(a, b);  // PyTorch promotes a and b
    if (compute_dtype(dtype) != dtype) {
        const Dtype wide = compute_dtype(dtype);
        return detail::rounded(where(condition, a.to(wide), b.to(wide)), dtype);
    }
    if (a.dtype() != dtype || b.dtype() != dtype) return where(condition, a.to(dtype), b.to(dtype));
    xt::xarray<bool> picked = mask_at(condition, shape);
    Tensor out = detail::visit_any(a, "where", [&]<class T>(xt::xarray<T>&) {
        return detail::wrap(select_values<T>(picked, a, b, shape));
    });
    return autograd::make_result(
        out, "WhereBackward", {a, b},
        [picked, a_shape = a.shape(), b_shape = b.shape(), need_a = a.requires_grad(),
         need_b = b.requires_grad()](const Tensor& g) {
            // Only the sides that need one: where(mask, x, constant) is the common call.
            return std::vector<Tensor>{need_a ? masked_grad(g, picked, true, a_shape) : Tensor(),
                                       need_b ? masked_grad(g, picked, false, b_shape) : Tensor()};
        },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

}  // namespace xg
