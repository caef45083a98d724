// TransformerEncoderLayer: attention and feed-forward blocks with residuals
// and LayerNorms (see transformer_encoder_layer.hpp).
#include "xgrad/nn/transformer_encoder_layer.hpp"

#include "layer_helpers.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

TransformerEncoderLayer::TransformerEncoderLayer(std::size_t d_model, std::size_t nhead,
                                                 std::size_t dim_feedforward, double dropout,
                                                 const std::string& activation,
                                                 double layer_norm_eps, bool batch_first,
                                                 bool norm_first)
    : activation(activation), norm_first(norm_first) {
    check(activation == "relu" || activation == "gelu",
          "TransformerEncoderLayer: activation should be relu/gelu, not {}", activation);
    // on_child_set points the typed members at these.
    register_module("self_attn", std::make_shared<MultiheadAttention>(d_model, nhead, dropout, true,
                                                                      batch_first));
    register_module("linear1", std::make_shared<Linear>(d_model, dim_feedforward));
    register_module("dropout", std::make_shared<Dropout>(dropout));
    register_module("linear2", std::make_shared<Linear>(dim_feedforward, d_model));
    register_module("norm1", std::make_shared<LayerNorm>(Shape{d_model}, layer_norm_eps));
    register_module("norm2", std::make_shared<LayerNorm>(Shape{d_model}, layer_norm_eps));
    register_module("dropout1", std::make_shared<Dropout>(dropout));
    register_module("dropout2", std::make_shared<Dropout>(dropout));
}

TransformerEncoderLayer::TransformerEncoderLayer(std::size_t d_model, std::size_t nhead,
                                                 std::shared_ptr<FeedForward> feed_forward,
                                                 double dropout, double layer_norm_eps,
                                                 bool batch_first, bool norm_first)
    : norm_first(norm_first) {
    check(feed_forward != nullptr, "TransformerEncoderLayer: expected a FeedForward (got None)");
    check(feed_forward->d_model == d_model,
          "TransformerEncoderLayer: expected a FeedForward with d_model {} (got {})", d_model,
          feed_forward->d_model);
    register_module("self_attn", std::make_shared<MultiheadAttention>(d_model, nhead, dropout, true,
                                                                      batch_first));
    register_module("feed_forward", std::move(feed_forward));
    register_module("norm1", std::make_shared<LayerNorm>(Shape{d_model}, layer_norm_eps));
    register_module("norm2", std::make_shared<LayerNorm>(Shape{d_model}, layer_norm_eps));
    register_module("dropout1", std::make_shared<Dropout>(dropout));
    register_module("dropout2", std::make_shared<Dropout>(dropout));
}

Value TransformerEncoderLayer::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{
        "src", {"src_mask", Value()}, {"src_key_padding_mask", Value()}};
    using Forward =
        Tensor (TransformerEncoderLayer::*)(const Tensor&, const Tensor&, const Tensor&);
    return invoke_forward<TransformerEncoderLayer>(
        *this, static_cast<Forward>(&TransformerEncoderLayer::forward), signature, args, kwargs);
}

Tensor TransformerEncoderLayer::forward(const Tensor& src) {
    return forward(src, Tensor(), Tensor());
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const Tensor& src_mask,
                                        const Tensor& src_key_padding_mask) {
    Tensor x = src;
    if (norm_first) {
        x = x + self_attention_block((*norm1)(x), src_mask, src_key_padding_mask);
        return x + feed_forward_block((*norm2)(x));
    }
    x = (*norm1)(x + self_attention_block(x, src_mask, src_key_padding_mask));
    return (*norm2)(x + feed_forward_block(x));
}

// self_attn is called as PyTorch calls it, masks by keyword, so its hooks see the same call.
Tensor TransformerEncoderLayer::self_attention_block(const Tensor& x, const Tensor& mask,
                                                     const Tensor& padding) {
    // With no hook to see the call, forward directly (as Module::operator() does for
    // one tensor): building the argument lists would cost allocations every step.
    if (!self_attn->has_hooks() && !autograd::is_anomaly_enabled()) {
        return (*dropout1)(self_attn->forward(x, x, x, padding, false, mask, true).first);
    }
    Value out = self_attn->call(
        {x, x, x}, {{"attn_mask", mask}, {"key_padding_mask", padding}, {"need_weights", false}});
    return (*dropout1)(result_as<std::pair<Tensor, Tensor>>(*self_attn, out).first);
}

Tensor TransformerEncoderLayer::feed_forward_block(const Tensor& x) {
    if (feed_forward) return (*dropout2)((*feed_forward)(x));
    Tensor h = (*linear1)(x);
    h = activation == "gelu" ? gelu(h) : relu(h);
    return (*dropout2)((*linear2)((*dropout)(h)));
}

void TransformerEncoderLayer::on_child_set(const std::string& member,
                                           const std::shared_ptr<Module>& child) {
    const char* owner = "TransformerEncoderLayer";
    if (member == "self_attn")
        self_attn =
            detail::require_child<MultiheadAttention>(owner, member, child, "MultiheadAttention");
    else if (member == "linear1" || member == "linear2")
        (member == "linear1" ? linear1 : linear2) =
            detail::require_child<Linear>(owner, member, child, "Linear");
    else if (member == "feed_forward")
        feed_forward = detail::require_child<FeedForward>(owner, member, child, "FeedForward");
    else if (member == "norm1" || member == "norm2")
        (member == "norm1" ? norm1 : norm2) =
            detail::require_child<LayerNorm>(owner, member, child, "LayerNorm");
    else if (member == "dropout" || member == "dropout1" || member == "dropout2")
        (member == "dropout"    ? dropout
         : member == "dropout1" ? dropout1
                                : dropout2) =
            detail::require_child<Dropout>(owner, member, child, "Dropout");
}

// Empty, with the configuration: clone() then copies each child over under its own name.
std::shared_ptr<Module> TransformerEncoderLayer::make_fresh() const {
    std::shared_ptr<TransformerEncoderLayer> fresh(new TransformerEncoderLayer());
    fresh->activation = activation;
    fresh->norm_first = norm_first;
    return fresh;
}

}  // namespace xg::nn
