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

class AdamOptions : public OptimizerOptions {
public:
    AdamOptions() : OptimizerOptions() { lr_ = 1e-3; }
    explicit AdamOptions(double lr) : OptimizerOptions(lr) {}

    AdamOptions& lr(double v) { return set(lr_, v, "lr"); }
    AdamOptions& betas(std::pair<double, double> v);
    AdamOptions& eps(double v) { return set(eps_, v, "eps"); }
    AdamOptions& weight_decay(double v) { return set(weight_decay_, v, "weight_decay"); }
    AdamOptions& amsgrad(bool v) { return set(amsgrad_, v, "amsgrad"); }
    AdamOptions& maximize(bool v) { return set(maximize_, v, "maximize"); }
    double lr() const { return lr_; }
    std::pair<double, double> betas() const { return {beta1_, beta2_}; }
    double eps() const { return eps_; }
    double weight_decay() const { return weight_decay_; }
    bool amsgrad() const { return amsgrad_; }
    bool maximize() const { return maximize_; }

    std::unique_ptr<OptimizerOptions> clone() const override;
    // The betas appear as "beta1" and "beta2".
    std::vector<std::pair<std::string, double>> items() const override;
    bool set_item(const std::string& name, double value) override;
    void validate(const std::string& optimizer) const override;

protected:
    template <class T>
    AdamOptions& set(T& field, T value, const char* name) {
        field = value;
        mark_set(name);
        return *this;
    }

    double beta1_ = 0.9;
    double beta2_ = 0.999;
    double eps_ = 1e-8;
    double weight_decay_ = 0.0;
    bool amsgrad_ = false;
    bool maximize_ = false;
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

    bool decoupled_;
    std::unordered_map<const TensorImpl*, ParamState> state_;
};

}  // namespace xg::optim
