// matmul with torch.matmul's rules: 1-D operands are promoted to matrices and
// squeezed back, leading (batch) dimensions broadcast. Every product is a BLAS gemm.
#include <algorithm>
#include <cstring>

#include "blas.hpp"
#include "buffer_cache.hpp"
#include "grad_buffers.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

namespace {

std::size_t product(const Shape& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

// c[i] = op(a[i]) * op(b[i]) for every index i of `batch`, where a and b carry
// their own (broadcastable) batch shapes. op(a) is [m, k], op(b) is [k, n].
template <class T>
void batched_gemm(const T* a, const Shape& batch_a, bool trans_a, const T* b, const Shape& batch_b,
                  bool trans_b, std::size_t m, std::size_t n, std::size_t k, const Shape& batch,
                  T* c) {
    std::size_t rank = batch.size();
    // Matrix strides of a and b along each batch dim; 0 where they broadcast.
    std::vector<std::size_t> stride_a(rank, 0), stride_b(rank, 0);
    for (std::size_t i = rank, sa = 1, sb = 1; i-- > 0;) {
        std::size_t ia = i + batch_a.size(), ib = i + batch_b.size();  // right-aligned
        if (ia >= rank) {
            std::size_t d = batch_a[ia - rank];
            stride_a[i] = d == 1 ? 0 : sa;
            sa *= d;
        }
        if (ib >= rank) {
            std::size_t d = batch_b[ib - rank];
            stride_b[i] = d == 1 ? 0 : sb;
            sb *= d;
        }
    }
    std::size_t count = product(batch);
    for (std::size_t index = 0; index < count; ++index) {
        std::size_t rest = index, offset_a = 0, offset_b = 0;
        for (std::size_t i = rank; i-- > 0;) {
            std::size_t coordinate = rest % batch[i];
            rest /= batch[i];
            offset_a += coordinate * stride_a[i];
            offset_b += coordinate * stride_b[i];
        }
        blas::gemm<T>(trans_a, trans_b, m, n, k, T(1), a + offset_a * m * k, b + offset_b * k * n,
                      T(0), c + index * m * n);
    }
}

// matmul's gradients with ops, for double backward: 1-D operands promoted to
// matrices as in forward, dA = dC B^T and dB = A^T dC, each summed back over
// the batch dims it was broadcast along.
autograd::Gradients matmul_grads_with_ops(const Tensor& grad, const Tensor& a, const Tensor& b) {
    if (a.dim() == 1 && b.dim() == 1) return {grad * b, grad * a};  // a dot product
    const Tensor pa = a.dim() == 1 ? unsqueeze(a, 0) : a;
    const Tensor pb = b.dim() == 1 ? unsqueeze(b, 1) : b;
    Tensor g = grad;
    if (a.dim() == 1) g = unsqueeze(g, g.dim() == 1 ? 0 : -2);
    if (b.dim() == 1) g = unsqueeze(g, -1);
    Tensor ga = detail::sum_to_op(matmul(g, transpose(pb, -1, -2)), pa.shape());
    Tensor gb = detail::sum_to_op(matmul(transpose(pa, -1, -2), g), pb.shape());
    if (a.dim() == 1) ga = squeeze(ga, 0);
    if (b.dim() == 1) gb = squeeze(gb, 1);
    return {ga, gb};
}

// linear's gradients with ops, for double backward: dX = dY W, dW = dY^T X
// and db = the column sums of dY, over the rows of every leading dim.
autograd::Gradients linear_grads_with_ops(const Tensor& grad, const Tensor& x, const Tensor& w,
                                          bool need_x, bool need_w, bool need_b) {
    const auto in = static_cast<std::int64_t>(w.shape()[1]);
    const auto out = static_cast<std::int64_t>(w.shape()[0]);
    const Tensor rows = reshape(grad, {-1, out});
    Tensor gx, gw, gb;
    if (need_x) gx = matmul(grad, w);
    if (need_w) gw = matmul(transpose(rows, 0, 1), reshape(x, {-1, in}));
    if (need_b) gb = sum(rows, {0});
    return {gx, gw, gb};
}

// Every row of out ([rows, n]) set to b ([n]), rows split across threads. The
// first row is copied from b, then the rows done so far onward, doubling up to
// a block that stays in L1, then that block: a few memcpy calls instead of one
// per row (a call per 64-float row was 2.6 % of the tiny step, an inlined loop
// 3.2-5.1 %), and every copy reads from cache.
template <class T>
void seed_rows(const T* b, T* out, std::size_t rows, std::size_t n) {
    constexpr std::size_t kBlockBytes = 16 * 1024;
    detail::for_rows(rows * n, n, [=](std::size_t first, std::size_t count) {
        if (count == 0) return;
        const std::size_t block = std::max<std::size_t>(1, kBlockBytes / sizeof(T) / n) * n;
        T* start = out + first;
        std::memcpy(start, b, n * sizeof(T));
        for (std::size_t done = n; done < count;) {
            const std::size_t take = std::min({done, block, count - done});
            std::memcpy(start + done, start, take * sizeof(T));
            done += take;
        }
    });
}

// sums[c] = the sum of g's column c ([rows, n]), each column's rows in order on
// any number of threads (columns split across them), so the same bits.
template <class T>
void column_sums(const T* g, T* sums, std::size_t rows, std::size_t n) {
    detail::for_columns(rows, n, [=](std::size_t first, std::size_t count) {
        std::fill_n(sums + first, count, T(0));
        detail::add_columns(g + first, rows, n, sums + first, count);
    });
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
    detail::check_same_dtype(a, b, "matmul");
    if (auto to = detail::storage_dtype(a, b))
        return detail::rounded(matmul(detail::computable(a), detail::computable(b)), *to);
    Shape sa = a.shape(), sb = b.shape();
    if (sa.empty() || sb.empty()) {
        fail("matmul: expected tensors with at least 1 dimension (got {} and {})", shape_str(sa),
             shape_str(sb));
    }
    // Promote 1-D operands: a vector on the left is a row, on the right a column.
    Shape pa = sa.size() == 1 ? Shape{1, sa[0]} : sa;
    Shape pb = sb.size() == 1 ? Shape{sb[0], 1} : sb;
    std::size_t m = pa[pa.size() - 2], k = pa.back(), n = pb.back();
    if (k != pb[pb.size() - 2]) {
        fail("matmul: shapes {} and {} cannot be multiplied ({} != {})", shape_str(sa),
             shape_str(sb), k, pb[pb.size() - 2]);
    }
    Shape batch_a(pa.begin(), pa.end() - 2), batch_b(pb.begin(), pb.end() - 2);
    Shape batch;
    try {
        batch = detail::broadcast_shapes(batch_a, batch_b, "matmul");
    } catch (const Error&) {
        throw Error(
            fmt::format("matmul: batch dimensions of shapes {} and {} are not broadcastable",
                        shape_str(sa), shape_str(sb)));
    }
    Shape out_shape = batch;
    if (sa.size() > 1) out_shape.push_back(m);
    if (sb.size() > 1) out_shape.push_back(n);
    // With a 2-D right operand the left batch folds into rows: one gemm in all.
    bool fold = batch_b.empty();
    std::size_t rows = product(batch) * m;

    return detail::visit_floating(a, "matmul", [&]<class T>(xt::xarray<T>& av) {
        auto& bv = b.data<T>();
        auto out = detail::empty_array<T>(out_shape);
        if (fold) {
            blas::gemm<T>(false, false, rows, n, k, T(1), av.data(), bv.data(), T(0), out.data());
        } else {
            batched_gemm<T>(av.data(), batch_a, false, bv.data(), batch_b, false, m, n, k, batch,
                            out.data());
        }
        bool need_a = a.requires_grad(), need_b = b.requires_grad();
        return autograd::make_result(
            detail::wrap(std::move(out)), "MatmulBackward", {a, b},
            [=, saved_a = a.detach(), saved_b = b.detach()](const Tensor& grad) {
                if (autograd::creating_graph())
                    return matmul_grads_with_ops(grad, autograd::saved_input(0, saved_a),
                                                 autograd::saved_input(1, saved_b));
                const T* g = grad.data<T>().data();
                const T* x = saved_a.data<T>().data();
                const T* y = saved_b.data<T>().data();
                Tensor ga, gb;
                if (need_a) {  // dA = dC * B^T
                    Shape full = batch;
                    full.insert(full.end(), {m, k});
                    auto d = detail::empty_array<T>(fold ? pa : full);
                    if (fold) {
                        blas::gemm<T>(false, true, rows, k, n, T(1), g, y, T(0), d.data());
                    } else {
                        batched_gemm<T>(g, batch, false, y, batch_b, true, m, k, n, batch,
                                        d.data());
                        d = detail::sum_to_shape(d, pa);
                    }
                    d.reshape(sa);
                    ga = detail::wrap(std::move(d));
                }
                if (need_b) {  // dB = A^T * dC
                    Shape full = batch;
                    full.insert(full.end(), {k, n});
                    auto d = detail::empty_array<T>(fold ? pb : full);
                    if (fold) {
                        blas::gemm<T>(true, false, k, n, rows, T(1), x, g, T(0), d.data());
                    } else {
                        batched_gemm<T>(x, batch_a, true, g, batch, false, k, n, m, batch,
                                        d.data());
                        d = detail::sum_to_shape(d, pb);
                    }
                    d.reshape(sb);
                    gb = detail::wrap(std::move(d));
                }
                return autograd::Gradients{ga, gb};
            },
            autograd::DoubleBackward::Supported);
    });
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias) {
    detail::check_same_dtype(input, weight, "linear");
    if (bias.defined()) detail::check_same_dtype(input, bias, "linear");
    if (auto to = detail::storage_dtype(input, weight, bias)) {
        return detail::rounded(
            linear(detail::computable(input), detail::computable(weight), detail::computable(bias)),
            *to);
    }
    return detail::visit_floating(input, "linear", [&]<class T>(xt::xarray<T>& x) {
        // The arrays' own shapes: building Shapes for the checks would allocate every call.
        const auto& si = x.shape();
        const auto& sw = weight.data<T>().shape();
        if (sw.size() != 2)
            fail("linear: expected a 2-d weight [out, in] (got {})", shape_str(weight.shape()));
        if (si.size() == 0 || si.back() != sw[1]) {
            fail("linear: expected input [..., {}] for weight {} (got {})", sw[1],
                 shape_str(weight.shape()), shape_str(input.shape()));
        }
        const std::size_t out_features = sw[0], in_features = sw[1];
        if (bias.defined()) {
            const auto& sb = bias.data<T>().shape();
            if (sb.size() != 1 || sb[0] != out_features) {
                fail("linear: expected bias [{}] (got {})", out_features, shape_str(bias.shape()));
            }
        }
        const std::size_t rows = in_features == 0 ? x.size() : x.size() / in_features;
        auto out_shape = si;  // an svector: no allocation up to rank 4
        out_shape.back() = out_features;
        Tensor out = detail::empty_tensor<T>(out_shape);
        T* op = out.data<T>().data();
        T beta = T(0);
        if (bias.defined()) {  // seed every row with the bias, then gemm accumulates onto it
            seed_rows(bias.data<T>().data(), op, rows, out_features);
            beta = T(1);
        }
        blas::gemm<T>(false, true, rows, out_features, in_features, T(1), x.data(),
                      weight.data<T>().data(), beta, op);
        bool need_x = input.requires_grad(), need_w = weight.requires_grad();
        bool need_b = bias.defined() && bias.requires_grad();
        return autograd::make_result(
            std::move(out), "LinearBackward", {input, weight, bias},
            // Saves the storages themselves: detached handles would cost an allocation each.
            [rows, in_features, out_features, need_x, need_w, need_b,
             saved_x = input.impl()->storage,
             saved_w = weight.impl()->storage](const Tensor& grad) {
                if (autograd::creating_graph()) {
                    return linear_grads_with_ops(
                        grad, autograd::saved_input(0, detail::tensor_of(saved_x)),
                        autograd::saved_input(1, detail::tensor_of(saved_w)), need_x, need_w,
                        need_b);
                }
                const T* g = grad.data<T>().data();
                const auto& xv = std::get<xt::xarray<T>>(*saved_x);
                const auto& wv = std::get<xt::xarray<T>>(*saved_w);
                Tensor gx, gw, gb;
                if (need_w) {  // dW = dY^T X
                    gw = detail::empty_tensor<T>({out_features, in_features});
                    blas::gemm<T>(true, false, out_features, in_features, rows, T(1), g, xv.data(),
                                  T(0), gw.data<T>().data());
                }
                if (need_b) {  // db = column sums of dY
                    gb = detail::empty_tensor<T>({out_features});
                    column_sums(g, gb.data<T>().data(), rows, out_features);
                }
                if (need_x) {  // dX = dY W, over X's buffer if it may: dW has read X
                    gx = autograd::gradient_over_saved<T>(saved_x);
                    blas::gemm<T>(false, false, rows, in_features, out_features, T(1), g, wv.data(),
                                  T(0), gx.data<T>().data());
                }
                return autograd::Gradients{gx, gw, gb};
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg
