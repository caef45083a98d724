// xg::optim::Optimizer: the base every optimizer shares, modelled on
// torch.optim.Optimizer with libtorch's option builders.
//
// Parameters live in groups; each group carries its own options. An option a
// group does not set explicitly is inherited from the optimizer's defaults,
// as a missing key in a PyTorch param-group dict is. Subclasses implement
// update() (one in-place pass per parameter) and the three per-parameter state
// hooks that state_dict() / load_state_dict() are built on.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "xgrad/optim/options.hpp"
#include "xgrad/state_dict.hpp"
#include "xgrad/tensor.hpp"

namespace xg::optim {

class OptimizerParamGroup {
public:
    explicit OptimizerParamGroup(std::vector<Tensor> params,
                                 std::unique_ptr<OptimizerOptions> options = nullptr);
    OptimizerParamGroup(const OptimizerParamGroup& other);
    OptimizerParamGroup& operator=(const OptimizerParamGroup& other);
    OptimizerParamGroup(OptimizerParamGroup&&) = default;
    OptimizerParamGroup& operator=(OptimizerParamGroup&&) = default;

    std::vector<Tensor>& params() { return params_; }
    const std::vector<Tensor>& params() const { return params_; }
    bool has_options() const { return options_ != nullptr; }
    OptimizerOptions& options();
    const OptimizerOptions& options() const;
    void set_options(std::unique_ptr<OptimizerOptions> options) { options_ = std::move(options); }
    // The lr a scheduler started from (PyTorch's group['initial_lr']); set by
    // the first scheduler attached to the optimizer.
    std::optional<double>& initial_lr() { return initial_lr_; }
    const std::optional<double>& initial_lr() const { return initial_lr_; }

private:
    std::vector<Tensor> params_;
    std::unique_ptr<OptimizerOptions> options_;
    std::optional<double> initial_lr_;
};

// PyTorch's optimizer state_dict as a struct: per-parameter state keyed by the
// parameter's position (counting through the groups in order), and each
// group's options with the positions of its parameters. Tensors are copies.
struct ParamGroupState {
    std::vector<std::pair<std::string, double>> options;  // includes "initial_lr" once set
    std::vector<std::size_t> params;
};
struct OptimizerState {
    std::vector<std::pair<std::size_t, StateDict>> state;
    std::vector<ParamGroupState> param_groups;
};

using LossClosure = std::function<Tensor()>;

class Optimizer {
public:
    virtual ~Optimizer() = default;
    Optimizer(const Optimizer&) = delete;
    Optimizer& operator=(const Optimizer&) = delete;

    // Re-evaluates the loss with `closure` when given, then updates every
    // parameter that has a gradient. Returns the closure's loss (or undefined).
    Tensor step(const LossClosure& closure = nullptr);
    void zero_grad(bool set_to_none = true);

    // `params` must not already be in this optimizer; options left unset
    // come from the defaults.
    void add_param_group(std::vector<Tensor> params);
    void add_param_group(std::vector<Tensor> params, const OptimizerOptions& options);
    std::vector<OptimizerParamGroup>& param_groups() { return param_groups_; }
    const std::vector<OptimizerParamGroup>& param_groups() const { return param_groups_; }
    const OptimizerOptions& defaults() const { return *defaults_; }
    const std::string& name() const { return name_; }
    // PyTorch's layout: the name, then each group's options (and initial_lr
    // once a scheduler set it) as "    key: value" lines, flags as True/False.
    std::string repr() const;

    OptimizerState state_dict() const;
    // Validates everything first: a state for other groups, parameter counts or
    // shapes, or with unknown or invalid options, throws and changes nothing.
    void load_state_dict(const OptimizerState& state);

protected:
    Optimizer(std::string name, std::vector<OptimizerParamGroup> groups,
              std::unique_ptr<OptimizerOptions> defaults);

    // One in-place pass over every parameter with a gradient (grad mode off).
    virtual void update() = 0;
    // The parameter's state under PyTorch's names, as copies; nullopt if it has none yet.
    virtual std::optional<StateDict> get_param_state(const Tensor& param) const = 0;
    // Throws unless `state` could be loaded for `param` (`where` names it in messages).
    virtual void check_param_state(const Tensor& param, const StateDict& state,
                                   const std::string& where) const = 0;
    // Replaces all state with `state` (already checked), copying the tensors.
    virtual void set_param_states(const std::vector<std::pair<Tensor, StateDict>>& state) = 0;

    // The gradient `update` should use, or undefined to skip: checks dtype and shape.
    Tensor checked_grad(const Tensor& param) const;
    // An error unless p is float32 or float64, naming its place (`when`: "" or ".step").
    void check_updatable(const Tensor& p, const char* when, std::size_t i, std::size_t group) const;

private:
    void add_group(OptimizerParamGroup group);

    std::string name_;
    std::unique_ptr<OptimizerOptions> defaults_;
    std::vector<OptimizerParamGroup> param_groups_;
};

std::ostream& operator<<(std::ostream& out, const Optimizer& optimizer);

namespace detail {
// A detached copy of `t` in `dtype` that shares nothing with it.
Tensor copy_as(const Tensor& t, Dtype dtype);
}  // namespace detail

}  // namespace xg::optim
