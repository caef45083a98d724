// xg::optim::Adam: Adam with PyTorch's bias correction, coupled (L2) weight
// decay, amsgrad and maximize, as torch.optim.Adam (_single_tensor_adam).
// AdamW (adamw.hpp) is this class with decoupled decay, as in tinygrad:
//   step += 1
//   g = ±grad (+ weight_decay * param)         Adam
//   param *= 1 - lr * weight_decay            AdamW
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   vmax = max(vmax, v) if amsgrad
//   param += -lr / (1 - beta1^step) * m / (sqrt(v or vmax) / sqrt(1 - beta2^step) + eps)
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xgrad/optim/optimizer.hpp"

namespace xg::optim {

// Adam's options in state_dict order (see options.hpp); lr comes first.
#define XG_ADAM_OPTIONS(OPTION, FIELD) \
    FIELD(double, beta1, 0.9)          \
    FIELD(double, beta2, 0.999)        \
    OPTION(double, eps, 1e-8)          \
    OPTION(double, weight_decay, 0.0)  \
    OPTION(bool, amsgrad, false)       \
    OPTION(bool, maximize, false)

class AdamOptions : public OptimizerOptions {
    XG_OPTIONS(AdamOptions, XG_ADAM_OPTIONS)

public:
    AdamOptions() { lr_ = 1e-3; }
    explicit AdamOptions(double lr) { this->lr(lr); }

    // The betas appear as "beta1" and "beta2" in items().
    AdamOptions& betas(std::pair<double, double> v);
    std::pair<double, double> betas() const { return {beta1_, beta2_}; }

    void validate(const std::string& optimizer) const override;
};

class Adam : public Optimizer {
public:
    Adam(std::vector<Tensor> params, const AdamOptions& defaults = AdamOptions());
    Adam(std::vector<OptimizerParamGroup> groups, const AdamOptions& defaults = AdamOptions());

protected:
    // For AdamW: `decoupled` selects param *= 1 - lr * weight_decay over L2 decay.
    Adam(std::string name, std::vector<OptimizerParamGroup> groups, const AdamOptions& defaults,
         bool decoupled);

    void update() override;
    std::optional<StateDict> get_param_state(const Tensor& param) const override;
    void check_param_state(const Tensor& param, const StateDict& state,
                           const std::string& where) const override;
    void set_param_states(const std::vector<std::pair<Tensor, StateDict>>& state) override;

private:
    struct ParamState {
        double step = 0.0;
        Tensor exp_avg, exp_avg_sq, max_exp_avg_sq;  // the last only with amsgrad
    };

    // 1 - beta1^step and 1 - beta2^step for the step, betas and results last
    // asked for: parameters and steps mostly share them, and the two pow calls
    // were the update's dearest scalars.
    struct BiasCorrections {
        double beta1 = -1.0, beta2 = -1.0, step = -1.0;
        double first = 0.0, second = 0.0;
    };
    const BiasCorrections& bias_corrections(double beta1, double beta2, double step);

    bool decoupled_;
    std::unordered_map<const TensorImpl*, ParamState> state_;
    BiasCorrections corrections_;
};

}  // namespace xg::optim
