// scaled_dot_product_attention as one op: softmax(q k^T * scale + mask) v with
// optional dropout on the weights, as PyTorch 2's math path computes it, for
// every index of the leading (batch, head) dims. Each product is a BLAS gemm;
// backward saves q, k, v and the attention weights P (dropout's mask is hashed
// again from its key), and per batch entry runs four gemms and softmax's rule
// in two [L, S] scratch rows reused across the batch. Under create_graph the
// gradients come from the op recomputed with ops, which record.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include <xtensor/xbroadcast.hpp>

#include "blas.hpp"
#include "buffer_cache.hpp"
#include "dropout_mask.hpp"
#include "internal.hpp"
#include "row_kernels.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

// q [..., L, E], k [..., S, E], v [..., S, Ev]: count batch entries.
struct Dims {
    std::size_t count = 1, L = 0, S = 0, E = 0, Ev = 0;
};

// The query's shape [..., L, E] with its last dim `last`: the scores' shape
// [..., L, S] or the output's [..., L, Ev].
detail::ArrayShape query_shape_with(std::span<const std::size_t> query, std::size_t last) {
    detail::ArrayShape s(query.begin(), query.end());
    s.back() = last;
    return s;
}

Dims check_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                  double dropout_p, bool is_causal) {
    detail::check_same_dtype(q, k, kOp);
    detail::check_same_dtype(q, v, kOp);
    const auto sq = q.sizes(), sk = k.sizes(), sv = v.sizes();
    const std::size_t rank = sq.size();
    const bool batch_equal = sk.size() == rank && sv.size() == rank && rank >= 2 &&
                             std::equal(sq.begin(), sq.end() - 2, sk.begin()) &&
                             std::equal(sq.begin(), sq.end() - 2, sv.begin());
    if (!batch_equal || sq[rank - 1] != sk[rank - 1] || sk[rank - 2] != sv[rank - 2]) {
        fail(
            "{}: expected query [..., L, E], key [..., S, E] and value [..., S, Ev] with the "
            "same leading dims (got {}, {} and {})",
            kOp, shape_str(q.shape()), shape_str(k.shape()), shape_str(v.shape()));
    }
    check(dropout_p >= 0.0 && dropout_p <= 1.0, "{}: expected dropout_p in [0, 1] (got {})", kOp,
          dropout_p);
    Dims d;
    for (std::size_t i = 0; i + 2 < rank; ++i) d.count *= sq[i];
    d.L = sq[rank - 2], d.E = sq[rank - 1], d.S = sk[rank - 2], d.Ev = sv[rank - 1];
    if (!mask.defined()) return d;
    if (is_causal) {
        fail("{}: expected no attn_mask when is_causal is true (got one of shape {})", kOp,
             shape_str(mask.shape()));
    }
    if (mask.dtype() != q.dtype()) {
        fail("{}: expected a floating-point attn_mask of the query's dtype {} (got {})", kOp,
             dtype_name(q.dtype()), dtype_name(mask.dtype()));
    }
    const auto scores = query_shape_with(sq, d.S);
    const auto ms = mask.sizes();
    bool fits = ms.size() <= scores.size();
    for (std::size_t i = 0; fits && i < ms.size(); ++i) {
        const std::size_t target = scores[scores.size() - ms.size() + i];
        fits = ms[i] == target || ms[i] == 1;
    }
    if (!fits) {
        fail("{}: expected an attn_mask broadcastable to the scores' shape {} (got {})", kOp,
             shape_str(Shape(scores.begin(), scores.end())), shape_str(mask.shape()));
    }
    return d;
}

// The additive mask as values the forward adds to each batch entry's scores:
// [L, S], shared by every entry, for a causal mask (-inf where key j comes
// after query i) or an attn_mask without batch dims of its own (the common
// [L, S] or [1, S]); else a broadcast copy of [count, L, S].
template <class T>
xt::xarray<T> score_mask(const Tensor& mask, bool is_causal, const Dims& d,
                         std::span<const std::size_t> query) {
    auto shared = detail::empty_array<T>({d.L, d.S});
    if (is_causal) {
        for (std::size_t i = 0; i < d.L; ++i) {
            for (std::size_t j = 0; j < d.S; ++j)
                shared(i, j) = j > i ? -std::numeric_limits<T>::infinity() : T(0);
        }
        return shared;
    }
    const auto ms = mask.sizes();
    const auto& m = mask.data<T>();
    if (ms.size() < 2 || m.size() == ms[ms.size() - 2] * ms.back()) {
        // Only its last two dims (each 1 or full) have extent.
        const std::size_t rows = ms.size() < 2 ? 1 : ms[ms.size() - 2];
        const std::size_t cols = ms.empty() ? 1 : ms.back();
        for (std::size_t i = 0; i < d.L; ++i) {
            for (std::size_t j = 0; j < d.S; ++j)
                shared(i, j) = m.data()[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)];
        }
        return shared;
    }
    return xt::xarray<T>(xt::broadcast(m, query_shape_with(query, d.S)));
}

// One call's fixed settings.
template <class T>
struct Settings {
    Dims d;
    T scale;       // 1 / sqrt(E)
    T drop_scale;  // 1 / (1 - dropout_p)
    detail::Mask dropout;
};

// P = softmax(q k^T * scale + mask) for every batch entry, and out = P' v,
// P' being P after dropout.
template <class T>
void attention_forward(const Settings<T>& c, const T* q, const T* k, const T* v,
                       const xt::xarray<T>* mask, T* p, T* out) {
    const Dims& d = c.d;
    const std::size_t ls = d.L * d.S;
    const detail::Scratch<T> dropped(c.dropout.active ? ls : 0);
    for (std::size_t b = 0; b < d.count; ++b) {
        T* pb = p + b * ls;
        blas::gemm<T>(false, true, d.L, d.S, d.E, c.scale, q + b * d.L * d.E, k + b * d.S * d.E,
                      T(0), pb);
        if (mask) {  // [L, S] shared by every entry, or [count, L, S]
            const T* mb = mask->data() + (mask->size() == ls ? 0 : b * ls);
            for (std::size_t i = 0; i < ls; ++i) pb[i] += mb[i];
        }
        detail::softmax_rows(pb, pb, ls, d.S);
        const T* weights = pb;
        if (c.dropout.active) {
            detail::apply_dropout(c.dropout, c.drop_scale, b * ls, pb, dropped.data(), ls);
            weights = dropped.data();
        }
        blas::gemm<T>(false, false, d.L, d.Ev, d.S, T(1), weights, v + b * d.S * d.Ev, T(0),
                      out + b * d.L * d.Ev);
    }
}

// Gradients for grad_output g [count, L, Ev]: dv = P'^T g; dP' = g v^T, through
// dropout to dP; dscores = softmax's rule; dq = dscores k * scale, dk =
// dscores^T q * scale. dscores goes to dmask when asked for ([count, L, S]).
template <class T>
void attention_backward(const Settings<T>& c, const T* q, const T* k, const T* v, const T* p,
                        const T* g, T* dq, T* dk, T* dv, T* dmask) {
    const Dims& d = c.d;
    const std::size_t ls = d.L * d.S;
    const detail::Scratch<T> dropped(c.dropout.active ? ls : 0), dscores(ls);
    for (std::size_t b = 0; b < d.count; ++b) {
        const T *pb = p + b * ls, *gb = g + b * d.L * d.Ev, *vb = v + b * d.S * d.Ev;
        const T* weights = pb;
        if (c.dropout.active) {
            detail::apply_dropout(c.dropout, c.drop_scale, b * ls, pb, dropped.data(), ls);
            weights = dropped.data();
        }
        if (dv)
            blas::gemm<T>(true, false, d.S, d.Ev, d.L, T(1), weights, gb, T(0),
                          dv + b * d.S * d.Ev);
        if (!dq && !dk && !dmask) continue;
        T* ds = dmask ? dmask + b * ls : dscores.data();
        blas::gemm<T>(false, true, d.L, d.S, d.Ev, T(1), gb, vb, T(0), ds);
        if (c.dropout.active) detail::apply_dropout(c.dropout, c.drop_scale, b * ls, ds, ds, ls);
        detail::softmax_rows_grad(pb, ds, ds, ls, d.S);
        if (dq) {
            blas::gemm<T>(false, false, d.L, d.E, d.S, c.scale, ds, k + b * d.S * d.E, T(0),
                          dq + b * d.L * d.E);
        }
        if (dk) {
            blas::gemm<T>(true, false, d.S, d.E, d.L, c.scale, ds, q + b * d.L * d.E, T(0),
                          dk + b * d.S * d.E);
        }
    }
}

// True where key j comes after query i: the scores a causal mask sets to -inf.
Tensor causal_mask(const Dims& d) {
    auto after = xt::xarray<bool>::from_shape({d.L, d.S});
    for (std::size_t i = 0; i < d.L; ++i) {
        for (std::size_t j = 0; j < d.S; ++j) after(i, j) = j > i;
    }
    return tensor(std::move(after));
}

// The op written with ops, as PyTorch's math path: matmul, the mask added (or the
// causal one filled in), softmax, dropout with the forward's mask, matmul. Its
// gradients by recomputation are the double backward.
template <class T>
Tensor attention_composite(const std::vector<Tensor>& in, const Settings<T>& c, bool is_causal) {
    Tensor scores = matmul(in[0], transpose(in[1], -2, -1)) * double(c.scale);
    if (in[3].defined()) scores = scores + in[3];
    if (is_causal)
        scores = masked_fill(scores, causal_mask(c.d), -std::numeric_limits<double>::infinity());
    Tensor weights = softmax(scores, -1);
    if (c.dropout.active) weights = detail::masked_scale(weights, c.dropout, double(c.drop_scale));
    return matmul(weights, in[2]);
}

template <class T>
T* data_if(std::optional<xt::xarray<T>>& a) {
    return a ? a->data() : nullptr;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal) {
    if (auto to = detail::storage_dtype(query, key, value)) {
        const Tensor mask = attn_mask.defined() && attn_mask.dtype() != kBool
                                ? detail::computable(attn_mask)
                                : attn_mask;
        return detail::rounded(
            scaled_dot_product_attention(detail::computable(query), detail::computable(key),
                                         detail::computable(value), mask, dropout_p, is_causal),
            *to);
    }
    const Dims d = check_inputs(query, key, value, attn_mask, dropout_p, is_causal);
    const bool dropout = dropout_p > 0.0;
    const detail::Mask mask{dropout, dropout ? next_random_key() : 0,
                            detail::dropout_threshold(dropout_p)};
    return detail::visit_floating(query, kOp, [&]<class T>(xt::xarray<T>& qv) {
        const Settings<T> c{d, T(1.0 / std::sqrt(double(d.E))),
                            dropout_p == 1.0 ? T(0) : T(1.0 / (1.0 - dropout_p)), mask};
        std::optional<xt::xarray<T>> scores_mask;
        if (attn_mask.defined() || is_causal)
            scores_mask = score_mask<T>(attn_mask, is_causal, d, query.sizes());
        auto out = detail::empty_array<T>(query_shape_with(query.sizes(), d.Ev));
        auto p = detail::empty_array<T>({d.count, d.L, d.S});
        attention_forward(c, qv.data(), key.data<T>().data(), value.data<T>().data(),
                          scores_mask ? &*scores_mask : nullptr, p.data(), out.data());
        const bool need_mask = attn_mask.defined() && attn_mask.requires_grad();
        const Tensor weights = detail::wrap(std::move(p));
        return autograd::make_result(
            detail::wrap(std::move(out)), "ScaledDotProductAttentionBackward",
            {query, key, value, attn_mask},
            [c, sq = query.detach(), sk = key.detach(), sv = value.detach(), weights,
             need_q = query.requires_grad(), need_k = key.requires_grad(),
             need_v = value.requires_grad(), need_mask, is_causal,
             sm = attn_mask.defined() ? attn_mask.detach() : Tensor()](const Tensor& g) {
                if (autograd::creating_graph()) {
                    return autograd::recomputed_gradients(
                        g, {sq, sk, sv, sm}, [&](const std::vector<Tensor>& in) {
                            return attention_composite(in, c, is_causal);
                        });
                }
                const Dims& d = c.d;
                std::optional<xt::xarray<T>> dq, dk, dv, dm;
                if (need_q) dq = detail::empty_array<T>(sq.data<T>().shape());
                if (need_k) dk = detail::empty_array<T>(sk.data<T>().shape());
                if (need_v) dv = detail::empty_array<T>(sv.data<T>().shape());
                if (need_mask) dm = detail::empty_array<T>({d.count, d.L, d.S});
                attention_backward(c, sq.data<T>().data(), sk.data<T>().data(), sv.data<T>().data(),
                                   weights.data<T>().data(), g.data<T>().data(), data_if(dq),
                                   data_if(dk), data_if(dv), data_if(dm));
                autograd::Gradients grads{Tensor(), Tensor(), Tensor(), Tensor()};
                if (dq) grads[0] = detail::wrap(std::move(*dq));
                if (dk) grads[1] = detail::wrap(std::move(*dk));
                if (dv) grads[2] = detail::wrap(std::move(*dv));
                if (dm) {
                    dm->reshape(query_shape_with(sq.sizes(), d.S));
                    grads[3] = detail::wrap(detail::sum_to_shape(*dm, sm.shape()));
                }
                return grads;
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg
