// xg::optim::SGD: stochastic gradient descent with momentum, dampening,
// Nesterov momentum, L2 weight decay and maximize, as torch.optim.SGD
// (_single_tensor_sgd), term for term:
//   d = ±grad + weight_decay * param
//   buf = d (first step) | momentum * buf + (1 - dampening) * d
//   d = nesterov ? d + momentum * buf : buf
//   param += -lr * d
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xgrad/optim/optimizer.hpp"

namespace xg::optim {

class SGDOptions : public OptimizerOptions {
public:
    explicit SGDOptions(double lr) : OptimizerOptions(lr) {}

    SGDOptions& lr(double v) { return set(lr_, v, "lr"); }
    SGDOptions& momentum(double v) { return set(momentum_, v, "momentum"); }
    SGDOptions& dampening(double v) { return set(dampening_, v, "dampening"); }
    SGDOptions& weight_decay(double v) { return set(weight_decay_, v, "weight_decay"); }
    SGDOptions& nesterov(bool v) { return set(nesterov_, v, "nesterov"); }
    SGDOptions& maximize(bool v) { return set(maximize_, v, "maximize"); }
    double lr() const { return lr_; }
    double momentum() const { return momentum_; }
    double dampening() const { return dampening_; }
    double weight_decay() const { return weight_decay_; }
    bool nesterov() const { return nesterov_; }
    bool maximize() const { return maximize_; }

    std::unique_ptr<OptimizerOptions> clone() const override;
    std::vector<std::pair<std::string, double>> items() const override;
    bool set_item(const std::string& name, double value) override;
    void validate(const std::string& optimizer) const override;

private:
    template <class T>
    SGDOptions& set(T& field, T value, const char* name) {
        field = value;
        mark_set(name);
        return *this;
    }

    double momentum_ = 0.0;
    double dampening_ = 0.0;
    double weight_decay_ = 0.0;
    bool nesterov_ = false;
    bool maximize_ = false;
};

class SGD : public Optimizer {
public:
    SGD(std::vector<Tensor> params, const SGDOptions& defaults);
    SGD(std::vector<OptimizerParamGroup> groups, const SGDOptions& defaults);

protected:
    void update() override;
    std::optional<StateDict> get_param_state(const Tensor& param) const override;
    void check_param_state(const Tensor& param, const StateDict& state,
                           const std::string& where) const override;
    void set_param_states(const std::vector<std::pair<Tensor, StateDict>>& state) override;

private:
    std::unordered_map<const TensorImpl*, Tensor> momentum_buffers_;
};

}  // namespace xg::optim
