// TransformerEncoder: num_layers clones of a layer, then an optional norm
// (see transformer_encoder.hpp).
#include "xgrad/nn/transformer_encoder.hpp"

#include "layer_helpers.hpp"

namespace xg::nn {

TransformerEncoder::TransformerEncoder(const std::shared_ptr<Module>& encoder_layer,
                                       std::size_t num_layers, std::shared_ptr<Module> norm)
    : num_layers(num_layers) {
    check(encoder_layer != nullptr, "TransformerEncoder: expected an encoder layer (got None)");
    auto list = std::make_shared<ModuleList>();
    for (std::size_t i = 0; i < num_layers; ++i) list->push_back(encoder_layer->clone());
    register_module("layers", std::move(list));
    register_module("norm", std::move(norm));
}

Value TransformerEncoder::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"src", {"mask", Value()}, {"src_key_padding_mask", Value()}};
    return invoke_forward<TransformerEncoder>(*this, &TransformerEncoder::forward, signature, args,
                                              kwargs);
}

// Each layer is called as PyTorch calls it, the masks by keyword.
Tensor TransformerEncoder::forward(const Tensor& src, const Tensor& mask,
                                   const Tensor& src_key_padding_mask) {
    Tensor x = src;
    for (const auto& layer : *layers) {
        check(layer != nullptr, "TransformerEncoder: a layer is None and cannot be called");
        Value out =
            layer->call({x}, {{"src_mask", mask}, {"src_key_padding_mask", src_key_padding_mask}});
        x = result_as<Tensor>(*layer, out);
    }
    return norm ? (*norm)(x) : x;
}

void TransformerEncoder::on_child_set(const std::string& member,
                                      const std::shared_ptr<Module>& child) {
    if (member == "layers") {
        layers =
            detail::require_child<ModuleList>("TransformerEncoder", member, child, "ModuleList");
    } else if (member == "norm") {
        norm = child;
    }
}

std::shared_ptr<Module> TransformerEncoder::make_fresh() const {
    std::shared_ptr<TransformerEncoder> fresh(new TransformerEncoder());
    fresh->num_layers = num_layers;
    return fresh;
}

}  // namespace xg::nn
