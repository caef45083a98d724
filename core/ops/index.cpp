// Indexing ops: embedding (a row lookup in a table).
//
// embedding(weight [num, dim], indices int64 [...]) -> [..., dim]:
//   out[i..., :] = weight[indices[i...], :]
// Backward scatter-adds each output row's gradient into the row it came from,
// so an index used twice receives the sum of both gradients.
#include <algorithm>
#include <cstdint>

#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

Tensor embedding(const Tensor& weight, const Tensor& indices) {
    check(weight.defined() && indices.defined(),
          "embedding: expected a defined weight and defined indices (got an undefined tensor)");
    check(indices.dtype() == kInt64, "embedding: expected int64 indices (got {})",
          dtype_name(indices.dtype()));
    Shape sw = weight.shape();
    check(sw.size() == 2,
          "embedding: expected a 2-d weight [num_embeddings, embedding_dim] (got {})",
          shape_str(sw));
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
        return autograd::make_result(detail::wrap(std::move(out)), "EmbeddingBackward", {weight},
                                     [rows = std::move(rows), num, dim](const Tensor& grad) {
                                         const T* g = grad.data<T>().data();
                                         xt::xarray<T> d = xt::zeros<T>({num, dim});
                                         for (std::size_t r = 0; r < rows.size(); ++r) {
                                             T* row = d.data() + rows[r] * dim;
                                             for (std::size_t c = 0; c < dim; ++c)
                                                 row[c] += g[r * dim + c];
                                         }
                                         return autograd::Gradients{detail::wrap(std::move(d))};
                                     });
    });
}

}  // namespace xg
