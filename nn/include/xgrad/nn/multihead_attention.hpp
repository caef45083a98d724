// MultiheadAttention: torch.nn.MultiheadAttention (kdim = vdim = embed_dim).
//
//   query [L, N, E], key [S, N, E], value [S, N, E] ([N, L, E]... with batch_first;
//   [L, E] / [S, E] unbatched) -> (attn_output like query,
//                                  attn_weights [N, L, S], or [N, H, L, S] per head)
//   head_i = softmax(q_i k_i^T / sqrt(E / H) + mask) v_i,  q = query W_q^T + b_q, ...
//   attn_output = concat(head_1 .. head_H) W_o^T + b_o
//
// Parameters as PyTorch names them: in_proj_weight [3E, E] (W_q, W_k, W_v stacked,
// xavier-uniform), in_proj_bias [3E] (zeros), and out_proj (a Linear whose bias
// starts at zero). Masks are kBool (true = masked out) or floating (added to the
// scores): key_padding_mask [N, S], attn_mask [L, S] or [N * H, L, S]. Without
// need_weights the heads run as one fused scaled_dot_product_attention.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "xgrad/nn/linear.hpp"
#include "xgrad/nn/module.hpp"

namespace xg::nn {

// out_proj's class, named as PyTorch names it (so printing matches).
class NonDynamicallyQuantizableLinear : public Linear {
public:
    using Linear::Linear;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class MultiheadAttention : public Module {
public:
    MultiheadAttention(std::size_t embed_dim, std::size_t num_heads, double dropout = 0.0,
                       bool bias = true, bool batch_first = false);

    // Called as (*mha)(query, key, value, key_padding_mask = {}, need_weights = true,
    // attn_mask = {}, average_attn_weights = true); see forward_args for the defaults.
    using Module::forward;
    std::pair<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                      const Tensor& key_padding_mask, bool need_weights,
                                      const Tensor& attn_mask, bool average_attn_weights);
    template <class... A>
    std::pair<Tensor, Tensor> operator()(const A&... args) {
        return call_as<std::pair<Tensor, Tensor>>(args...);
    }
    Value forward_args(const Args& args, const Kwargs& kwargs) override;
    std::string extra_repr() const override { return ""; }
    void reset_parameters();  // PyTorch's _reset_parameters

    std::size_t embed_dim, num_heads, head_dim;
    double dropout;
    bool batch_first;
    Tensor in_proj_weight, in_proj_bias;  // in_proj_bias undefined without bias
    std::shared_ptr<NonDynamicallyQuantizableLinear> out_proj;

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;
    void on_child_set(const std::string& member, const std::shared_ptr<Module>& child) override;

private:
    std::tuple<Tensor, Tensor, Tensor> project(const Tensor& query, const Tensor& key,
                                               const Tensor& value) const;
    Tensor combined_mask(const Tensor& attn_mask, const Tensor& key_padding_mask, Dtype dtype,
                         std::size_t n, std::size_t l, std::size_t s) const;
};

}  // namespace xg::nn
