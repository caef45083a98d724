// The scheduler base (PyTorch's _LRScheduler) and the small schedulers, each
// a get_lr in PyTorch's chainable form plus its hyper-parameters as fields.
#include "xgrad/optim/lr_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "xgrad/error.hpp"

namespace xg::optim {

// ---- LRScheduler ----

LRScheduler::LRScheduler(std::string name, Optimizer& optimizer)
    : name_(std::move(name)), optimizer_(optimizer) {
    for (auto& group : optimizer_.param_groups()) {
        if (!group.initial_lr()) group.initial_lr() = group.options().get_lr();
        base_lrs_.push_back(*group.initial_lr());
    }
}

void LRScheduler::initial_step() {
    step_count_ = 0;
    step();
}

void LRScheduler::step() {
    ++step_count_;
    ++last_epoch_;
    std::vector<double> lrs = get_lr();
    auto& groups = optimizer_.param_groups();
    check(lrs.size() == groups.size(), "{}.step: expected {} parameter groups (got {})", name_,
          lrs.size(), groups.size());
    last_lr_.clear();
    for (std::size_t i = 0; i < groups.size(); ++i) {
        groups[i].options().set_lr(lrs[i]);
        last_lr_.push_back(lrs[i]);
    }
}

std::vector<double> LRScheduler::group_lrs() const {
    std::vector<double> lrs;
    for (const auto& group : optimizer_.param_groups()) lrs.push_back(group.options().get_lr());
    return lrs;
}

SchedulerState LRScheduler::state_dict() const {
    SchedulerState state;
    state.scalars = {{"last_epoch", static_cast<double>(last_epoch_)},
                     {"_step_count", static_cast<double>(step_count_)}};
    state.lists = {{"base_lrs", base_lrs_}, {"_last_lr", last_lr_}};
    for (const SchedulerField& field : readable_fields()) {
        if (field.number)
            state.scalars.emplace_back(field.name, *field.number);
        else if (field.count)
            state.scalars.emplace_back(field.name, static_cast<double>(*field.count));
        else
            state.lists.emplace_back(field.name,
                                     std::vector<double>(field.list->begin(), field.list->end()));
    }
    return state;
}

void LRScheduler::load_state_dict(const SchedulerState& state) {
    const std::string where = name_ + ".load_state_dict";
    const SchedulerState before = state_dict();
    try {
        for (const auto& [key, value] : state.scalars) load_scalar(key, value, where);
        for (const auto& [key, value] : state.lists) load_list(key, value, where);
    } catch (...) {
        // Restoring a state this scheduler produced cannot fail.
        load_state_dict(before);
        throw;
    }
}

void LRScheduler::load_scalar(const std::string& key, double value, const std::string& where) {
    if (key == "last_epoch") {
        last_epoch_ = static_cast<std::int64_t>(value);
        return;
    }
    if (key == "_step_count") {
        step_count_ = static_cast<std::int64_t>(value);
        return;
    }
    if (key == "verbose" || key == "_get_lr_called_within_step") return;
    for (const SchedulerField& field : fields()) {
        if (key != field.name || field.list) continue;
        if (field.number) {
            *field.number = value;
        } else {
            check(!field.positive || value >= 1.0, "{}: expected {} > 0 (got {})", where, key,
                  value);
            *field.count = static_cast<std::int64_t>(value);
        }
        return;
    }
    fail("{}: unknown entry '{}'", where, key);
}

void LRScheduler::load_list(const std::string& key, const std::vector<double>& value,
                            const std::string& where) {
    if (key == "base_lrs" || key == "_last_lr") {
        const std::size_t groups = optimizer_.param_groups().size();
        check(value.size() == groups, "{}: expected {} with {} values, one per group (got {})",
              where, key, groups, value.size());
        (key == "base_lrs" ? base_lrs_ : last_lr_) = value;
        return;
    }
    for (const SchedulerField& field : fields()) {
        if (key != field.name || !field.list) continue;
        field.list->assign(value.begin(), value.end());
        std::sort(field.list->begin(), field.list->end());
        return;
    }
    fail("{}: unknown entry '{}'", where, key);
}

// ---- LambdaLR ----

LambdaLR::LambdaLR(Optimizer& optimizer, Lambda lr_lambda)
    : LambdaLR(optimizer, std::vector<Lambda>(optimizer.param_groups().size(), lr_lambda)) {}

LambdaLR::LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas)
    : LRScheduler("LambdaLR", optimizer), lr_lambdas_(std::move(lr_lambdas)) {
    check(lr_lambdas_.size() == base_lrs_.size(), "LambdaLR: expected {} lr_lambdas (got {})",
          base_lrs_.size(), lr_lambdas_.size());
    for (const auto& fn : lr_lambdas_) {
        check(static_cast<bool>(fn), "LambdaLR: expected callable lr_lambdas (got an empty one)");
    }
    initial_step();
}

std::vector<double> LambdaLR::get_lr() {
    std::vector<double> lrs;
    for (std::size_t i = 0; i < base_lrs_.size(); ++i) {
        lrs.push_back(base_lrs_[i] * lr_lambdas_[i](last_epoch_));
    }
    return lrs;
}

// ---- StepLR ----

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma)
    : LRScheduler("StepLR", optimizer), step_size_(step_size), gamma_(gamma) {
    check(step_size_ > 0, "StepLR: expected step_size > 0 (got {})", step_size_);
    initial_step();
}

std::vector<double> StepLR::get_lr() {
    std::vector<double> lrs = group_lrs();
    if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return lrs;
    for (double& lr : lrs) lr = lr * gamma_;
    return lrs;
}

std::vector<SchedulerField> StepLR::fields() {
    return {{.name = "step_size", .count = &step_size_, .positive = true},
            {.name = "gamma", .number = &gamma_}};
}

// ---- MultiStepLR ----

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma)
    : LRScheduler("MultiStepLR", optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
    std::sort(milestones_.begin(), milestones_.end());
    initial_step();
}

std::vector<double> MultiStepLR::get_lr() {
    std::vector<double> lrs = group_lrs();
    const auto hits = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
    if (hits == 0) return lrs;
    const double factor = std::pow(gamma_, static_cast<double>(hits));
    for (double& lr : lrs) lr = lr * factor;
    return lrs;
}

std::vector<SchedulerField> MultiStepLR::fields() {
    return {{.name = "milestones", .list = &milestones_}, {.name = "gamma", .number = &gamma_}};
}

// ---- ExponentialLR ----

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler("ExponentialLR", optimizer), gamma_(gamma) {
    initial_step();
}

std::vector<double> ExponentialLR::get_lr() {
    std::vector<double> lrs = group_lrs();
    if (last_epoch_ == 0) return lrs;
    for (double& lr : lrs) lr = lr * gamma_;
    return lrs;
}

std::vector<SchedulerField> ExponentialLR::fields() {
    return {{.name = "gamma", .number = &gamma_}};
}

// ---- CosineAnnealingLR ----

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min)
    : LRScheduler("CosineAnnealingLR", optimizer), T_max_(T_max), eta_min_(eta_min) {
    check(T_max_ > 0, "CosineAnnealingLR: expected T_max > 0 (got {})", T_max_);
    initial_step();
}

std::vector<double> CosineAnnealingLR::get_lr() {
    constexpr double pi = std::numbers::pi;
    const double epoch = static_cast<double>(last_epoch_), T_max = static_cast<double>(T_max_);
    std::vector<double> lrs = group_lrs();
    if (last_epoch_ == 0) return lrs;
    if (step_count_ == 1 && last_epoch_ > 0) {  // resumed: the closed form
        for (std::size_t i = 0; i < lrs.size(); ++i) {
            lrs[i] = eta_min_ + (base_lrs_[i] - eta_min_) * (1 + std::cos(epoch * pi / T_max)) / 2;
        }
        return lrs;
    }
    const std::int64_t period = 2 * T_max_;
    if ((((last_epoch_ - 1 - T_max_) % period) + period) % period == 0) {  // Python's %
        for (std::size_t i = 0; i < lrs.size(); ++i) {
            lrs[i] = lrs[i] + (base_lrs_[i] - eta_min_) * (1 - std::cos(pi / T_max)) / 2;
        }
        return lrs;
    }
    for (double& lr : lrs) {
        lr = (1 + std::cos(pi * epoch / T_max)) / (1 + std::cos(pi * (epoch - 1) / T_max)) *
                 (lr - eta_min_) +
             eta_min_;
    }
    return lrs;
}

std::vector<SchedulerField> CosineAnnealingLR::fields() {
    return {{.name = "T_max", .count = &T_max_, .positive = true},
            {.name = "eta_min", .number = &eta_min_}};
}

// ---- LinearLR ----

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   std::int64_t total_iters)
    : LRScheduler("LinearLR", optimizer),
      start_factor_(start_factor),
      end_factor_(end_factor),
      total_iters_(total_iters) {
    // start_factor 0 would divide by zero in the recursive form.
    check(start_factor_ > 0.0 && start_factor_ <= 1.0,
          "LinearLR: expected 0 < start_factor <= 1 (got {})", start_factor_);
    check(end_factor_ >= 0.0 && end_factor_ <= 1.0,
          "LinearLR: expected 0 <= end_factor <= 1 (got {})", end_factor_);
    check(total_iters_ > 0, "LinearLR: expected total_iters > 0 (got {})", total_iters_);
    initial_step();
}

std::vector<double> LinearLR::get_lr() {
    std::vector<double> lrs = group_lrs();
    if (last_epoch_ == 0) {
        for (double& lr : lrs) lr = lr * start_factor_;
        return lrs;
    }
    if (last_epoch_ > total_iters_) return lrs;
    const double slope = end_factor_ - start_factor_;
    const double factor = 1.0 + slope / (static_cast<double>(total_iters_) * start_factor_ +
                                         static_cast<double>(last_epoch_ - 1) * slope);
    for (double& lr : lrs) lr = lr * factor;
    return lrs;
}

std::vector<SchedulerField> LinearLR::fields() {
    return {{.name = "start_factor", .number = &start_factor_},
            {.name = "end_factor", .number = &end_factor_},
            {.name = "total_iters", .count = &total_iters_}};
}

}  // namespace xg::optim
