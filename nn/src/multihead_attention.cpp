// MultiheadAttention: projections, per-head attention and the output projection
// (see multihead_attention.hpp).
#include "xgrad/nn/multihead_attention.hpp"

#include <cmath>
#include <limits>

#include "layer_helpers.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

std::shared_ptr<Module> NonDynamicallyQuantizableLinear::make_fresh() const {
    return detail::without_consuming_rng([&] {
        return std::make_shared<NonDynamicallyQuantizableLinear>(in_features, out_features,
                                                                 bias.defined());
    });
}

MultiheadAttention::MultiheadAttention(std::size_t embed_dim, std::size_t num_heads, double dropout,
                                       bool bias, bool batch_first)
    : embed_dim(embed_dim),
      num_heads(num_heads),
      head_dim(num_heads > 0 ? embed_dim / num_heads : 0),
      dropout(dropout),
      batch_first(batch_first) {
    check(num_heads > 0 && head_dim * num_heads == embed_dim,
          "MultiheadAttention: expected embed_dim divisible by num_heads (got {} and {})",
          embed_dim, num_heads);
    check(dropout >= 0.0 && dropout <= 1.0,
          "MultiheadAttention: expected dropout in [0, 1] (got {})", dropout);
    register_parameter("in_proj_weight", empty({3 * embed_dim, embed_dim}));
    register_parameter("in_proj_bias", bias ? empty({3 * embed_dim}) : Tensor());
    register_module("out_proj",
                    std::make_shared<NonDynamicallyQuantizableLinear>(embed_dim, embed_dim, bias));
    reset_parameters();
}

void MultiheadAttention::reset_parameters() {
    NoGradGuard no_grad;
    // xavier_uniform_: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)) over the [3E, E] matrix.
    const double bound = std::sqrt(6.0 / static_cast<double>(4 * embed_dim));
    Tensor u = rand(in_proj_weight.shape(), in_proj_weight.dtype());
    in_proj_weight.set_data(((u * 2.0 - 1.0) * bound).detach());
    if (in_proj_bias.defined()) in_proj_bias.set_data(zeros_like(in_proj_bias));
    if (out_proj->bias.defined()) out_proj->bias.set_data(zeros_like(out_proj->bias));
}

Value MultiheadAttention::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"query",
                                     "key",
                                     "value",
                                     {"key_padding_mask", Value()},
                                     {"need_weights", true},
                                     {"attn_mask", Value()},
                                     {"average_attn_weights", true}};
    return invoke_forward<MultiheadAttention>(*this, &MultiheadAttention::forward, signature, args,
                                              kwargs);
}

namespace {

// A mask as scores to add: kBool becomes -inf where true and 0 elsewhere;
// a floating mask must have the scores' dtype and is added as it is.
Tensor additive(const Tensor& mask, Dtype dtype, const char* name) {
    if (!mask.defined()) return mask;
    if (mask.dtype() == kBool) {
        return masked_fill(zeros(mask.shape(), dtype), mask,
                           -std::numeric_limits<double>::infinity());
    }
    if (mask.dtype() != dtype) {
        fail("MultiheadAttention: expected {} to be bool or {} (got {})", name, dtype_name(dtype),
             dtype_name(mask.dtype()));
    }
    return mask;
}

// reshape's sizes, in one vector per thread that each call refills: a fresh
// vector would be a heap allocation per reshape per step. Use the result
// before the next call (one per expression).
const std::vector<std::int64_t>& dims(std::initializer_list<std::size_t> sizes) {
    thread_local std::vector<std::int64_t> sizes_of_reshape;
    sizes_of_reshape.assign(sizes.begin(), sizes.end());
    return sizes_of_reshape;
}

}  // namespace

// Inputs in the module's layout ([T, N, E], or [N, T, E] with batch_first) ->
// q, k, v of shape [N, H, T, head_dim]: the head split is the one copy.
std::tuple<Tensor, Tensor, Tensor> MultiheadAttention::project(const Tensor& query,
                                                               const Tensor& key,
                                                               const Tensor& value) const {
    // Three GEMMs on slices of in_proj_weight (small) rather than one GEMM whose
    // [T, N, 3E] output would be sliced: slicing the activations costs a copy
    // each way and a zero-filled gradient per slice.
    // Rows [i E, (i + 1) E) of the packed weight and bias: chunk(.., 3, 0)[i].
    const auto e = static_cast<std::int64_t>(embed_dim);
    auto projected = [&](const Tensor& x, std::int64_t i) {
        return linear(x, narrow(in_proj_weight, 0, i * e, e),
                      in_proj_bias.defined() ? narrow(in_proj_bias, 0, i * e, e) : Tensor());
    };
    Tensor q = projected(query, 0);
    Tensor k = projected(key, 1);
    Tensor v = projected(value, 2);
    static const std::vector<int> kBatchFirst{0, 2, 1, 3}, kSequenceFirst{1, 2, 0, 3};
    auto heads = [&](const Tensor& x) {
        const auto s = x.sizes();
        Tensor split = reshape(x, dims({s[0], s[1], num_heads, head_dim}));
        return permute(split, batch_first ? kBatchFirst : kSequenceFirst);
    };
    return {heads(q), heads(k), heads(v)};
}

// One additive mask broadcastable to [N, H, L, S], or none.
Tensor MultiheadAttention::combined_mask(const Tensor& attn_mask, const Tensor& key_padding_mask,
                                         Dtype dtype, std::size_t n, std::size_t l,
                                         std::size_t s) const {
    Tensor mask = additive(attn_mask, dtype, "attn_mask");
    if (mask.defined() && mask.dim() == 3) mask = reshape(mask, dims({n, num_heads, l, s}));
    Tensor padding = additive(key_padding_mask, dtype, "key_padding_mask");
    if (!padding.defined()) return mask;
    padding = reshape(padding, dims({n, 1, 1, s}));
    return mask.defined() ? mask + padding : padding;
}

std::pair<Tensor, Tensor> MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                                      const Tensor& value,
                                                      const Tensor& key_padding_mask,
                                                      bool need_weights, const Tensor& attn_mask,
                                                      bool average_attn_weights) {
    check(query.defined() && key.defined() && value.defined(),
          "MultiheadAttention: expected query, key and value (got an undefined one)");
    const bool batched = query.dim() == 3;
    if (!(batched || query.dim() == 2) || key.dim() != query.dim() || value.dim() != query.dim()) {
        fail(
            "MultiheadAttention: expected query, key and value of rank 3 (or 2, unbatched) with "
            "embed_dim {} last (got {}, {} and {})",
            embed_dim, shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
    }
    // Unbatched [T, E] is one sequence: a batch of one, in the module's layout.
    const int batch_dim = batch_first ? 0 : 1, seq_dim = 1 - batch_dim;
    const bool self_attention = query.impl() == key.impl() && key.impl() == value.impl();
    auto batch_of = [&](const Tensor& x) { return batched ? x : unsqueeze(x, batch_dim); };
    Tensor q_in = batch_of(query);
    Tensor k_in = self_attention ? q_in : batch_of(key);
    Tensor v_in = self_attention ? q_in : batch_of(value);
    const auto qs = q_in.sizes(), ks = k_in.sizes(), vs = v_in.sizes();
    if (qs[2] != embed_dim || ks[2] != embed_dim || vs[2] != embed_dim ||
        ks[batch_dim] != qs[batch_dim] || vs[batch_dim] != qs[batch_dim] ||
        vs[seq_dim] != ks[seq_dim]) {
        fail(
            "MultiheadAttention: expected query [L, N, {0}] and key, value [S, N, {0}] (got {1}, "
            "{2} and {3})",
            embed_dim, shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()));
    }
    const std::size_t n = qs[batch_dim], l = qs[seq_dim], s = ks[seq_dim];
    auto [q, k, v] = project(q_in, k_in, v_in);
    Tensor mask = combined_mask(attn_mask, key_padding_mask, q.dtype(), n, l, s);
    const double p = is_training() ? dropout : 0.0;

    Tensor heads, weights;
    if (need_weights) {
        Tensor scores = matmul(q, transpose(k, -2, -1)) * (1.0 / std::sqrt(double(head_dim)));
        if (mask.defined()) scores = scores + mask;
        weights = xg::dropout(softmax(scores, -1), p, p > 0.0);
        heads = matmul(weights, v);
        if (average_attn_weights) weights = mean(weights, {1});
        if (!batched) weights = squeeze(weights, 0);
    } else {
        heads = scaled_dot_product_attention(q, k, v, mask, p);
    }
    // [N, H, L, head_dim] back to the layout, heads side by side: [L, N, E] or [N, L, E].
    static const std::vector<int> kBatchFirst{0, 2, 1, 3}, kSequenceFirst{2, 0, 1, 3};
    Tensor joined = permute(heads, batch_first ? kBatchFirst : kSequenceFirst);
    Tensor out = (*out_proj)(reshape(joined, dims({qs[0], qs[1], embed_dim})));
    return {batched ? out : squeeze(out, batch_dim), weights};
}

void MultiheadAttention::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "in_proj_weight")
        in_proj_weight = value;
    else if (member == "in_proj_bias")
        in_proj_bias = value;
}

void MultiheadAttention::on_child_set(const std::string& member,
                                      const std::shared_ptr<Module>& child) {
    if (member == "out_proj") {
        out_proj = detail::require_child<NonDynamicallyQuantizableLinear>(
            "MultiheadAttention", member, child, "NonDynamicallyQuantizableLinear");
    }
}

std::shared_ptr<Module> MultiheadAttention::make_fresh() const {
    return detail::without_consuming_rng([&] {
        return std::make_shared<MultiheadAttention>(embed_dim, num_heads, dropout,
                                                    in_proj_bias.defined(), batch_first);
    });
}

}  // namespace xg::nn
