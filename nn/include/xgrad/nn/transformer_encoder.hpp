// TransformerEncoder: a stack of encoder layers, as torch.nn.TransformerEncoder.
//
//   src [S, N, E] (as the layers take it) -> the same shape
//   x = layers.{num_layers - 1}(... layers.0(src, mask, src_key_padding_mask) ...)
//   then norm(x) when a norm is given
//
// The layer passed in is cloned num_layers times (PyTorch's copy.deepcopy), so
// the layers start equal and train apart; state_dict keys are layers.0.*,
// layers.1.*, ..., then norm.*.
#pragma once

#include <cstddef>
#include <memory>

#include "xgrad/nn/module.hpp"
#include "xgrad/nn/module_list.hpp"

namespace xg::nn {

class TransformerEncoder : public Module {
public:
    TransformerEncoder(const std::shared_ptr<Module>& encoder_layer, std::size_t num_layers,
                       std::shared_ptr<Module> norm = nullptr);

    // Called as (*encoder)(src, mask = {}, src_key_padding_mask = {}).
    using Module::forward;
    Tensor forward(const Tensor& src, const Tensor& mask, const Tensor& src_key_padding_mask);
    template <class... A>
    Tensor operator()(const A&... args) {
        return call_as<Tensor>(args...);
    }
    Value forward_args(const Args& args, const Kwargs& kwargs) override;

    std::size_t num_layers;
    std::shared_ptr<ModuleList> layers;
    std::shared_ptr<Module> norm;  // null: none

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_child_set(const std::string& member, const std::shared_ptr<Module>& child) override;

private:
    TransformerEncoder() = default;  // for make_fresh
};

}  // namespace xg::nn
