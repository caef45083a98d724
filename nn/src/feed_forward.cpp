// FeedForward and its GLU variants (see feed_forward.hpp for the block and the math).
#include "xgrad/nn/feed_forward.hpp"

#include <optional>
#include <typeinfo>

#include "layer_helpers.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

FeedForward::FeedForward(std::size_t d_model, std::size_t d_ff, double dropout,
                         std::shared_ptr<Module> activation, bool is_gated, bool bias1, bool bias2,
                         bool bias_gate)
    : d_model(d_model), d_ff(d_ff), is_gated(is_gated) {
    check(activation != nullptr, "FeedForward: expected an activation module (got nullptr)");
    // on_child_set points the members at these.
    register_module("layer1", std::make_shared<Linear>(d_model, d_ff, bias1));
    register_module("layer2", std::make_shared<Linear>(d_ff, d_model, bias2));
    register_module("dropout", std::make_shared<MonteCarloDropout>(dropout));
    register_module("activation", std::move(activation));
    if (is_gated) register_module("linear_v", std::make_shared<Linear>(d_model, d_ff, bias_gate));
}

namespace {

// The fused op's name for a built-in activation module; nullopt for anything
// else (a subclass may override forward, so the type must match exactly).
std::optional<FusedActivation> fusable(const Module& activation) {
    const std::type_info& type = typeid(activation);
    if (type == typeid(ReLU)) return FusedActivation::ReLU;
    if (type == typeid(SiLU)) return FusedActivation::SiLU;
    if (type == typeid(Tanh)) return FusedActivation::Tanh;
    if (type == typeid(Sigmoid)) return FusedActivation::Sigmoid;
    if (type == typeid(Identity)) return FusedActivation::Identity;
    if (type == typeid(GELU)) {
        return static_cast<const GELU&>(activation).approximate == "tanh"
                   ? FusedActivation::GELUTanh
                   : FusedActivation::GELU;
    }
    return std::nullopt;
}

}  // namespace

// activation, gate and dropout run as one op (same values, gradients and
// random stream) unless something could tell: a hook on the activation or the
// dropout module, a custom activation or dropout class, or anomaly mode, which
// names the module each op ran in.
Tensor FeedForward::forward(const Tensor& x) {
    std::optional<FusedActivation> kind = fusable(*activation);
    const Dropout& drop = *dropout;  // typeid of a plain reference, not of a call
    if (kind && typeid(drop) == typeid(MonteCarloDropout) && !activation->has_hooks() &&
        !dropout->has_hooks() && !autograd::is_anomaly_enabled()) {
        Tensor h = (*layer1)(x);
        Tensor v = is_gated ? (*linear_v)(x) : Tensor();
        bool sample = dropout->is_training() || dropout->mc_dropout_enabled();
        return (*layer2)(activation_dropout(h, v, *kind, dropout->p, sample));
    }
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

namespace {
template <class M>
std::shared_ptr<M> require(const std::string& member, const std::shared_ptr<Module>& child,
                           const char* expected) {
    return detail::require_child<M>("FeedForward", member, child, expected);
}
}  // namespace

// forward calls the parts through the members, so set_submodule must move them too.
void FeedForward::on_child_set(const std::string& member, const std::shared_ptr<Module>& child) {
    if (member == "layer1") {
        layer1 = require<Linear>(member, child, "Linear");
    } else if (member == "layer2") {
        layer2 = require<Linear>(member, child, "Linear");
    } else if (member == "linear_v") {
        linear_v = require<Linear>(member, child, "Linear");
    } else if (member == "dropout") {
        dropout = require<MonteCarloDropout>(member, child, "MonteCarloDropout");
    } else if (member == "activation") {
        check(child != nullptr, "FeedForward: expected a module for 'activation' (got None)");
        activation = child;
    }
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
