// FeedForward and its GLU variants (see feed_forward.hpp for the block and the math).
#include "xgrad/nn/feed_forward.hpp"

#include "layer_helpers.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

FeedForward::FeedForward(std::size_t d_model, std::size_t d_ff, double dropout,
                         std::shared_ptr<Module> activation, bool is_gated, bool bias1, bool bias2,
                         bool bias_gate)
    : d_model(d_model), d_ff(d_ff), is_gated(is_gated) {
    check(activation != nullptr, "FeedForward: expected an activation module (got nullptr)");
    layer1 = register_module("layer1", std::make_shared<Linear>(d_model, d_ff, bias1));
    layer2 = register_module("layer2", std::make_shared<Linear>(d_ff, d_model, bias2));
    this->dropout = register_module("dropout", std::make_shared<MonteCarloDropout>(dropout));
    this->activation = register_module("activation", std::move(activation));
    if (is_gated)
        linear_v = register_module("linear_v", std::make_shared<Linear>(d_model, d_ff, bias_gate));
}

Tensor FeedForward::forward(const Tensor& x) {
    Tensor g = (*activation)((*layer1)(x));
    if (is_gated) g = g * (*linear_v)(x);
    return (*layer2)((*dropout)(g));
}

std::shared_ptr<FeedForward> FeedForward::glu(std::size_t d_model, std::size_t d_ff,
                                              double dropout) {
    return std::make_shared<FeedForward>(d_model, d_ff, dropout, std::make_shared<Sigmoid>(), true,
                                         false, false, false);
}
std::shared_ptr<FeedForward> FeedForward::bilinear(std::size_t d_model, std::size_t d_ff,
                                                   double dropout) {
    return std::make_shared<FeedForward>(d_model, d_ff, dropout, std::make_shared<Identity>(), true,
                                         false, false, false);
}
std::shared_ptr<FeedForward> FeedForward::reglu(std::size_t d_model, std::size_t d_ff,
                                                double dropout) {
    return std::make_shared<FeedForward>(d_model, d_ff, dropout, std::make_shared<ReLU>(), true,
                                         false, false, false);
}
std::shared_ptr<FeedForward> FeedForward::geglu(std::size_t d_model, std::size_t d_ff,
                                                double dropout) {
    return std::make_shared<FeedForward>(d_model, d_ff, dropout, std::make_shared<GELU>(), true,
                                         false, false, false);
}
std::shared_ptr<FeedForward> FeedForward::swiglu(std::size_t d_model, std::size_t d_ff,
                                                 double dropout) {
    return std::make_shared<FeedForward>(d_model, d_ff, dropout, std::make_shared<SiLU>(), true,
                                         false, false, false);
}

std::shared_ptr<Module> FeedForward::make_fresh() const {
    auto fresh = detail::without_consuming_rng([&] {
        return std::make_shared<FeedForward>(
            d_model, d_ff, dropout->p, activation->clone(), is_gated, layer1->bias.defined(),
            layer2->bias.defined(), linear_v && linear_v->bias.defined());
    });
    fresh->dropout->enable_mc_dropout(dropout->mc_dropout_enabled());
    return fresh;
}

}  // namespace xg::nn
