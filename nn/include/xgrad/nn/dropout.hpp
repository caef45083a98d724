// Dropout and MonteCarloDropout: inverted dropout, as torch.nn.Dropout.
//
//   input [...] -> output [...] (same shape)
//   training: y = x * m / (1 - p), m ~ Bernoulli(1 - p) per element
//   eval:     y = x
//
// Scaling the kept units by 1/(1-p) during training keeps E[y] = x, so eval
// needs no rescaling. p = 1 zeroes everything; p outside [0, 1] throws.
//
// MonteCarloDropout behaves the same, except that while enable_mc_dropout(true)
// is set it keeps sampling in eval mode too: running the model N times then gives
// N samples of the prediction, whose spread estimates model uncertainty
// (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation").
#pragma once

#include <memory>
#include <string>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

class Dropout : public Module {
public:
    explicit Dropout(double p = 0.5);

    Tensor forward(const Tensor& input) override;
    std::string extra_repr() const override;

    double p;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class MonteCarloDropout : public Dropout {
public:
    explicit MonteCarloDropout(double p = 0.5) : Dropout(p) {}

    // Active in eval mode as well while enabled (training mode always samples).
    MonteCarloDropout& enable_mc_dropout(bool enabled = true) {
        mc_dropout_ = enabled;
        return *this;
    }
    bool mc_dropout_enabled() const { return mc_dropout_; }

    Tensor forward(const Tensor& input) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;

private:
    bool mc_dropout_ = false;
};

}  // namespace xg::nn
