// Learning-rate schedulers, as torch.optim.lr_scheduler: each writes a new lr
// into every param group on step(), called after optimizer.step(). They use
// PyTorch's chainable (recursive) get_lr forms, which scale the group's
// current lr, so trajectories match PyTorch's step for step and schedulers
// compose. Construction performs the first step (last_epoch becomes 0).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/optim/optimizer.hpp"

namespace xg::optim {

// PyTorch's scheduler state_dict (its __dict__ minus the optimizer) as a struct.
struct SchedulerState {
    std::vector<std::pair<std::string, double>> scalars;  // last_epoch, _step_count, gamma, ...
    std::vector<std::pair<std::string, std::vector<double>>> lists;  // base_lrs, _last_lr, ...
};

// One hyper-parameter of a scheduler under PyTorch's attribute name, and the
// member holding it; exactly one of number, count and list is set. state_dict
// and load_state_dict iterate a scheduler's fields().
struct SchedulerField {
    const char* name;
    double* number = nullptr;
    std::int64_t* count = nullptr;              // a double in SchedulerState::scalars
    std::vector<std::int64_t>* list = nullptr;  // in SchedulerState::lists, kept sorted
    bool positive = false;                      // load_state_dict refuses a count below 1
};

class LRScheduler {
public:
    virtual ~LRScheduler() = default;
    LRScheduler(const LRScheduler&) = delete;
    LRScheduler& operator=(const LRScheduler&) = delete;

    void step();
    const std::vector<double>& get_last_lr() const { return last_lr_; }
    const std::vector<double>& base_lrs() const { return base_lrs_; }
    std::int64_t last_epoch() const { return last_epoch_; }

    SchedulerState state_dict() const;
    // Throws, changing nothing, for a state of another scheduler or group count.
    void load_state_dict(const SchedulerState& state);

protected:
    // Records each group's initial_lr (keeping one an earlier scheduler set).
    LRScheduler(std::string name, Optimizer& optimizer);
    // PyTorch's constructor ends with a step; ours must run after the
    // subclass's members exist, so each subclass constructor calls this last.
    void initial_step();

    // The new lr of every group at last_epoch_ (the chainable form).
    virtual std::vector<double> get_lr() = 0;
    // The subclass's own hyper-parameters, in state_dict order.
    virtual std::vector<SchedulerField> fields() { return {}; }

    std::vector<double> group_lrs() const;

    std::string name_;
    Optimizer& optimizer_;
    std::vector<double> base_lrs_;
    std::int64_t last_epoch_ = -1;
    std::int64_t step_count_ = 0;
    std::vector<double> last_lr_;

private:
    // fields() of a const scheduler, only ever read through.
    std::vector<SchedulerField> readable_fields() const {
        return const_cast<LRScheduler*>(this)->fields();
    }
    void load_scalar(const std::string& key, double value, const std::string& where);
    void load_list(const std::string& key, const std::vector<double>& value,
                   const std::string& where);
};

// lr = base_lr * lr_lambda(epoch); one function for all groups or one per group.
class LambdaLR final : public LRScheduler {
public:
    using Lambda = std::function<double(std::int64_t epoch)>;
    LambdaLR(Optimizer& optimizer, Lambda lr_lambda);
    LambdaLR(Optimizer& optimizer, std::vector<Lambda> lr_lambdas);

private:
    std::vector<double> get_lr() override;
    std::vector<Lambda> lr_lambdas_;
};

// lr *= gamma every step_size epochs.
class StepLR final : public LRScheduler {
public:
    StepLR(Optimizer& optimizer, std::int64_t step_size, double gamma = 0.1);

private:
    std::vector<double> get_lr() override;
    std::vector<SchedulerField> fields() override;
    std::int64_t step_size_;
    double gamma_;
};

// lr *= gamma at each milestone (a milestone listed twice applies gamma twice).
class MultiStepLR final : public LRScheduler {
public:
    MultiStepLR(Optimizer& optimizer, std::vector<std::int64_t> milestones, double gamma = 0.1);

private:
    std::vector<double> get_lr() override;
    std::vector<SchedulerField> fields() override;
    std::vector<std::int64_t> milestones_;  // sorted, with repeats
    double gamma_;
};

// lr *= gamma every epoch.
class ExponentialLR final : public LRScheduler {
public:
    ExponentialLR(Optimizer& optimizer, double gamma);

private:
    std::vector<double> get_lr() override;
    std::vector<SchedulerField> fields() override;
    double gamma_;
};

// Cosine from base_lr down to eta_min over T_max epochs (then back up), in
// PyTorch's recursive form.
class CosineAnnealingLR final : public LRScheduler {
public:
    CosineAnnealingLR(Optimizer& optimizer, std::int64_t T_max, double eta_min = 0.0);

private:
    std::vector<double> get_lr() override;
    std::vector<SchedulerField> fields() override;
    std::int64_t T_max_;
    double eta_min_;
};

// Warm-up: the factor on base_lr moves linearly from start_factor to
// end_factor over total_iters epochs, in PyTorch's recursive form.
class LinearLR final : public LRScheduler {
public:
    LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
             std::int64_t total_iters = 5);

private:
    std::vector<double> get_lr() override;
    std::vector<SchedulerField> fields() override;
    double start_factor_;
    double end_factor_;
    std::int64_t total_iters_;
};

}  // namespace xg::optim
