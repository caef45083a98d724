// TransformerEncoderLayer: self-attention then a feed-forward block, each with
// a residual connection and a LayerNorm, as torch.nn.TransformerEncoderLayer.
//
//   src [S, N, E] ([N, S, E] with batch_first; [S, E] unbatched) -> the same shape
//   post-norm: x = norm1(x + sa(x));  x = norm2(x + ff(x))
//   pre-norm:  x = x + sa(norm1(x));  x = x + ff(norm2(x))     (norm_first)
//   sa(x) = dropout1(self_attn(x, x, x, attn_mask = src_mask,
//                              key_padding_mask = src_key_padding_mask)[0])
//   ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))
//
// Children as PyTorch names them: self_attn, linear1, dropout, linear2, norm1,
// norm2, dropout1, dropout2, so a PyTorch state_dict loads strictly. Built
// with a FeedForward instead, ff(x) = dropout2(feed_forward(x)) and the
// children are self_attn, feed_forward, norm1, norm2, dropout1, dropout2: the
// modern pre-norm SwiGLU block is
//   TransformerEncoderLayer(d, h, FeedForward::swiglu(d, d_ff, 0.1), 0.1, 1e-5, true, true)
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <type_traits>

#include "xgrad/nn/dropout.hpp"
#include "xgrad/nn/feed_forward.hpp"
#include "xgrad/nn/layer_norm.hpp"
#include "xgrad/nn/linear.hpp"
#include "xgrad/nn/module.hpp"
#include "xgrad/nn/multihead_attention.hpp"

namespace xg::nn {

class TransformerEncoderLayer : public Module {
public:
    TransformerEncoderLayer(std::size_t d_model, std::size_t nhead,
                            std::size_t dim_feedforward = 2048, double dropout = 0.1,
                            const std::string& activation = "relu", double layer_norm_eps = 1e-5,
                            bool batch_first = false, bool norm_first = false);
    TransformerEncoderLayer(std::size_t d_model, std::size_t nhead,
                            std::shared_ptr<FeedForward> feed_forward, double dropout = 0.1,
                            double layer_norm_eps = 1e-5, bool batch_first = false,
                            bool norm_first = false);

    // Called as (*layer)(src, src_mask = {}, src_key_padding_mask = {}).
    using Module::forward;
    Tensor forward(const Tensor& src) override;  // no masks
    Tensor forward(const Tensor& src, const Tensor& src_mask, const Tensor& src_key_padding_mask);
    template <class... A>
    Tensor operator()(const A&... args) {
        // A lone tensor takes Module's one-tensor call, which builds no argument
        // list when no hook would see the call.
        if constexpr (sizeof...(A) == 1 && (std::is_same_v<A, Tensor> && ...))
            return Module::operator()(args...);
        else
            return call_as<Tensor>(args...);
    }
    Value forward_args(const Args& args, const Kwargs& kwargs) override;

    std::string activation;  // "relu" or "gelu"; empty with a FeedForward
    bool norm_first;
    std::shared_ptr<MultiheadAttention> self_attn;
    std::shared_ptr<Linear> linear1, linear2;   // null with a FeedForward
    std::shared_ptr<Dropout> dropout;           // null with a FeedForward
    std::shared_ptr<FeedForward> feed_forward;  // null without one
    std::shared_ptr<LayerNorm> norm1, norm2;
    std::shared_ptr<Dropout> dropout1, dropout2;

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_child_set(const std::string& member, const std::shared_ptr<Module>& child) override;

private:
    TransformerEncoderLayer() = default;  // for make_fresh
    Tensor self_attention_block(const Tensor& x, const Tensor& mask, const Tensor& padding);
    Tensor feed_forward_block(const Tensor& x);
};

}  // namespace xg::nn
