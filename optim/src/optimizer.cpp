// The optimizer base: options read through their fields, groups, option
// inheritance, zero_grad, state_dict and the printout.
#include "xgrad/optim/optimizer.hpp"

#include <algorithm>
#include <cstring>
#include <ostream>
#include <typeinfo>
#include <unordered_set>

#include "xgrad/autograd.hpp"
#include "xgrad/error.hpp"

namespace xg::optim {

// ---- OptimizerOptions ----

bool OptimizerOptions::is_set(const std::string& name) const {
    return std::find(explicitly_set_.begin(), explicitly_set_.end(), name) != explicitly_set_.end();
}

void OptimizerOptions::mark_set(const char* name) {
    if (!is_set(name)) explicitly_set_.emplace_back(name);
}

std::vector<std::pair<std::string, double>> OptimizerOptions::items() const {
    std::vector<std::pair<std::string, double>> result;
    for (const OptionField& field : readable_fields())
        result.emplace_back(field.name(), field.get());
    return result;
}

bool OptimizerOptions::set_item(const std::string& name, double value) {
    for (const OptionField& field : fields()) {
        if (name == field.name()) {
            field.set(value);
            return true;
        }
    }
    return false;
}

void OptimizerOptions::inherit_unset(const OptimizerOptions& defaults) {
    for (const auto& [name, value] : defaults.items()) {
        if (!is_set(name)) set_item(name, value);  // same type: every name is known
    }
}

// ---- OptimizerParamGroup ----

OptimizerParamGroup::OptimizerParamGroup(std::vector<Tensor> params,
                                         std::unique_ptr<OptimizerOptions> options)
    : params_(std::move(params)), options_(std::move(options)) {}

OptimizerParamGroup::OptimizerParamGroup(const OptimizerParamGroup& other)
    : params_(other.params_),
      options_(other.options_ ? other.options_->clone() : nullptr),
      initial_lr_(other.initial_lr_) {}

OptimizerParamGroup& OptimizerParamGroup::operator=(const OptimizerParamGroup& other) {
    if (this != &other) *this = OptimizerParamGroup(other);
    return *this;
}

OptimizerOptions& OptimizerParamGroup::options() {
    check(options_ != nullptr, "OptimizerParamGroup: expected options (got a group without any)");
    return *options_;
}

const OptimizerOptions& OptimizerParamGroup::options() const {
    return const_cast<OptimizerParamGroup*>(this)->options();
}

// ---- Optimizer ----

Optimizer::Optimizer(std::string name, std::vector<OptimizerParamGroup> groups,
                     std::unique_ptr<OptimizerOptions> defaults)
    : name_(std::move(name)), defaults_(std::move(defaults)) {
    defaults_->validate(name_);
    std::size_t total = 0;
    for (const auto& group : groups) total += group.params().size();
    check(total > 0, "{}: expected a non-empty parameter list (got an empty one)", name_);
    for (auto& group : groups) add_group(std::move(group));
}

void Optimizer::add_param_group(std::vector<Tensor> params) {
    add_group(OptimizerParamGroup(std::move(params)));
}

void Optimizer::add_param_group(std::vector<Tensor> params, const OptimizerOptions& options) {
    add_group(OptimizerParamGroup(std::move(params), options.clone()));
}

void Optimizer::add_group(OptimizerParamGroup group) {
    std::unique_ptr<OptimizerOptions> options =
        group.has_options() ? group.options().clone() : defaults_->clone();
    // typeid of plain references: no call inside typeid for clang to warn about.
    const OptimizerOptions &given = *options, &defaults = *defaults_;
    check(typeid(given) == typeid(defaults),
          "{}: expected param group options of the optimizer's own type (got another "
          "optimizer's)",
          name_);
    options->inherit_unset(*defaults_);
    options->validate(name_);

    const std::size_t index = param_groups_.size();
    std::unordered_set<const TensorImpl*> seen;
    for (const auto& existing : param_groups_) {
        for (const Tensor& p : existing.params()) seen.insert(p.impl());
    }
    for (std::size_t i = 0; i < group.params().size(); ++i) {
        const Tensor& p = group.params()[i];
        check(p.defined(),
              "{}: expected defined parameters (got an undefined one at {} of group {})", name_, i,
              index);
        if (!is_floating_point(p.dtype())) {
            fail("{}: expected floating-point parameters (got {} at {} of group {})", name_,
                 dtype_name(p.dtype()), i, index);
        }
        check_updatable(p, "", i, index);
        check(p.is_leaf(), "{}: expected leaf tensors (got a non-leaf at {} of group {})", name_, i,
              index);
        check(seen.insert(p.impl()).second,
              "{}: expected each parameter at most once (got parameter {} of group {} twice)",
              name_, i, index);
    }
    group.set_options(std::move(options));
    param_groups_.push_back(std::move(group));
}

Tensor Optimizer::step(const LossClosure& closure) {
    Tensor loss;
    if (closure) loss = closure();
    NoGradGuard no_grad;
    update();
    return loss;
}

void Optimizer::zero_grad(bool set_to_none) {
    for (auto& group : param_groups_) {
        for (const Tensor& p : group.params()) {
            Tensor& grad = p.mutable_grad();
            if (!grad.defined()) continue;
            if (set_to_none) {
                grad = Tensor();
                continue;
            }
            grad = grad.detach();                            // drop any history, then zero in place
            std::memset(grad.data_ptr(), 0, grad.nbytes());  // zero is all-zero bits in every dtype
        }
    }
}

// The update kernels run on float32 and float64 values. A float16 or bfloat16
// parameter would need every step rounded as PyTorch rounds each of its ops;
// mixed-precision training keeps float32 weights and converts them to save.
void Optimizer::check_updatable(const Tensor& p, const char* when, std::size_t i,
                                std::size_t group) const {
    if (compute_dtype(p.dtype()) != p.dtype()) {
        fail(
            "{}{}: expected float32 or float64 parameters (got {} at {} of group {}); train in "
            "float32 and convert to save (Module::bfloat16(), Tensor::to)",
            name_, when, dtype_name(p.dtype()), i, group);
    }
}

Tensor Optimizer::checked_grad(const Tensor& param) const {
    Tensor grad = param.grad();
    if (!grad.defined()) return grad;
    if (compute_dtype(param.dtype()) != param.dtype()) {
        for (std::size_t g = 0; g < param_groups_.size(); ++g) {
            const auto& params = param_groups_[g].params();
            for (std::size_t i = 0; i < params.size(); ++i)
                if (params[i].impl() == param.impl()) check_updatable(param, ".step", i, g);
        }
    }
    if (grad.dtype() != param.dtype() || !std::ranges::equal(grad.sizes(), param.sizes())) {
        fail("{}.step: expected a gradient of dtype {} and shape {} (got {} and {})", name_,
             dtype_name(param.dtype()), shape_str(param.shape()), dtype_name(grad.dtype()),
             shape_str(grad.shape()));
    }
    return grad;
}

OptimizerState Optimizer::state_dict() const {
    OptimizerState result;
    std::size_t position = 0;
    for (const auto& group : param_groups_) {
        ParamGroupState saved;
        saved.options = group.options().items();
        if (group.initial_lr()) saved.options.emplace_back("initial_lr", *group.initial_lr());
        for (const Tensor& p : group.params()) {
            if (auto state = get_param_state(p))
                result.state.emplace_back(position, std::move(*state));
            saved.params.push_back(position++);
        }
        result.param_groups.push_back(std::move(saved));
    }
    return result;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
    const std::string where = name_ + ".load_state_dict";
    check(state.param_groups.size() == param_groups_.size(),
          "{}: expected {} parameter groups (got {})", where, param_groups_.size(),
          state.param_groups.size());

    // Saved positions map to our parameters in order, as PyTorch's id_map does.
    std::unordered_map<std::size_t, Tensor> by_position;
    std::vector<std::unique_ptr<OptimizerOptions>> options;
    std::vector<std::optional<double>> initial_lrs;
    for (std::size_t g = 0; g < param_groups_.size(); ++g) {
        const auto& ours = param_groups_[g];
        const auto& saved = state.param_groups[g];
        check(saved.params.size() == ours.params().size(),
              "{}: expected {} parameters in group {} (got {})", where, ours.params().size(), g,
              saved.params.size());
        for (std::size_t i = 0; i < saved.params.size(); ++i) {
            check(by_position.emplace(saved.params[i], ours.params()[i]).second,
                  "{}: expected each parameter position once (got {} twice)", where,
                  saved.params[i]);
        }
        auto group_options = ours.options().clone();
        std::optional<double> initial_lr;
        for (const auto& [key, value] : saved.options) {
            if (key == "initial_lr")
                initial_lr = value;
            else
                check(group_options->set_item(key, value), "{}: unknown option '{}' in group {}",
                      where, key, g);
        }
        group_options->validate(where);
        options.push_back(std::move(group_options));
        initial_lrs.push_back(initial_lr);
    }

    std::vector<std::pair<Tensor, StateDict>> per_param;
    for (const auto& [position, param_state] : state.state) {
        auto it = by_position.find(position);
        check(it != by_position.end(), "{}: expected state for a saved parameter position (got {})",
              where, position);
        check_param_state(it->second, param_state,
                          fmt::format("{} (parameter {})", where, position));
        per_param.emplace_back(it->second, param_state);
    }

    // Everything checked: commit.
    set_param_states(per_param);
    for (std::size_t g = 0; g < param_groups_.size(); ++g) {
        param_groups_[g].set_options(std::move(options[g]));
        param_groups_[g].initial_lr() = initial_lrs[g];
    }
}

std::string Optimizer::repr() const {
    std::string out = name_ + " (";
    for (std::size_t g = 0; g < param_groups_.size(); ++g) {
        const OptimizerParamGroup& group = param_groups_[g];
        out += fmt::format("\nParameter Group {}\n", g);
        for (const OptionField& field : group.options().readable_fields()) {
            if (field.is_flag())
                out += fmt::format("    {}: {}\n", field.name(),
                                   field.get() != 0.0 ? "True" : "False");
            else
                out += fmt::format("    {}: {}\n", field.name(), field.get());
        }
        if (group.initial_lr()) out += fmt::format("    initial_lr: {}\n", *group.initial_lr());
    }
    return out + ")";
}

std::ostream& operator<<(std::ostream& out, const Optimizer& optimizer) {
    return out << optimizer.repr();
}

namespace detail {

Tensor copy_as(const Tensor& t, Dtype dtype) {
    NoGradGuard no_grad;
    Tensor source = t.detach();
    return source.dtype() == dtype ? source.clone() : source.to(dtype);
}

}  // namespace detail
}  // namespace xg::optim
