// FeedForward: the position-wise feed-forward block of a Transformer, with the
// gated (GLU) variants of Shazeer (2020), "GLU Variants Improve Transformer".
//
//   input [..., d_model] -> output [..., d_model]
//   FFN(x)       = layer2(dropout(act(layer1(x))))             = act(x W1 + b1) W2 + b2
//   FFN_gated(x) = layer2(dropout(act(layer1(x)) * linear_v(x))) = (act(x W1) ⊙ x V) W2
//
// Expand-contract: layer1 lifts each position from d_model to a wider d_ff
// (typically 4 d_model), the nonlinearity acts there, and layer2 projects back,
// so the block can sit on a residual path. Every position is transformed
// independently with the same weights.
//
// Gating: a second projection linear_v multiplies the activated features
// elementwise, so the block computes products of two linear views of the input
// and can switch features on and off per input, not just threshold them. With
// d_ff scaled to keep the parameter count equal, Shazeer found the gated
// variants (GEGLU, SwiGLU above all) reach lower perplexity than ReLU or GELU.
//
// Submodules are registered as layer1, layer2, dropout, activation, then
// linear_v when gated: the names and order of the labml Python FeedForward, so
// a state_dict moves between the two unchanged.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "xgrad/nn/activation.hpp"
#include "xgrad/nn/dropout.hpp"
#include "xgrad/nn/linear.hpp"
#include "xgrad/nn/module.hpp"

namespace xg::nn {

class FeedForward : public Module {
public:
    FeedForward(std::size_t d_model, std::size_t d_ff, double dropout = 0.1,
                std::shared_ptr<Module> activation = std::make_shared<ReLU>(),
                bool is_gated = false, bool bias1 = true, bool bias2 = true, bool bias_gate = true);

    // The GLU variants: gated, no biases, differing only in the gate's activation.
    static std::shared_ptr<FeedForward> glu(std::size_t d_model, std::size_t d_ff,
                                            double dropout = 0.1);  // sigmoid
    static std::shared_ptr<FeedForward> bilinear(std::size_t d_model, std::size_t d_ff,
                                                 double dropout = 0.1);  // identity
    static std::shared_ptr<FeedForward> reglu(std::size_t d_model, std::size_t d_ff,
                                              double dropout = 0.1);  // ReLU
    static std::shared_ptr<FeedForward> geglu(std::size_t d_model, std::size_t d_ff,
                                              double dropout = 0.1);  // GELU
    static std::shared_ptr<FeedForward> swiglu(std::size_t d_model, std::size_t d_ff,
                                               double dropout = 0.1);  // SiLU

    Tensor forward(const Tensor& x) override;

    std::size_t d_model, d_ff;
    bool is_gated;
    // The registered children, kept in step with set_submodule: a replacement
    // layer must be a Linear (or subclass), dropout a MonteCarloDropout, the
    // activation any module.
    std::shared_ptr<Linear> layer1, layer2, linear_v;  // linear_v is null unless gated
    std::shared_ptr<MonteCarloDropout> dropout;
    std::shared_ptr<Module> activation;

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_child_set(const std::string& member, const std::shared_ptr<Module>& child) override;
};

}  // namespace xg::nn
