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

// SGD's options in state_dict order (see options.hpp); lr comes first.
#define XG_SGD_OPTIONS(OPTION, FIELD) \
    OPTION(double, momentum, 0.0)     \
    OPTION(double, dampening, 0.0)    \
    OPTION(double, weight_decay, 0.0) \
    OPTION(bool, nesterov, false)     \
    OPTION(bool, maximize, false)

class SGDOptions : public OptimizerOptions {
    XG_OPTIONS(SGDOptions, XG_SGD_OPTIONS)

public:
    explicit SGDOptions(double lr) { this->lr(lr); }

    void validate(const std::string& optimizer) const override;
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
