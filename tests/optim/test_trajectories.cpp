// Every optimizer option combination and every scheduler against PyTorch:
// 50 steps on the least-squares problem of reference/gen_optim.py, compared
// after every step: 1e-12 relative per element in float64, 1e-5 relative to
// the step's largest parameter value in float32.
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "optim/problem.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace optim_test_trajectories {

using namespace xg::optim;
using xg::Tensor;

namespace {

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(Tensor w, Tensor b)>;
using MakeScheduler = std::function<std::unique_ptr<LRScheduler>(Optimizer&)>;
struct Config {
    MakeOptimizer optimizer;
    MakeScheduler scheduler;
};

template <class O, class Options>
MakeOptimizer one_group(Options options) {
    return [options](Tensor w, Tensor b) {
        return std::make_unique<O>(std::vector<Tensor>{w, b}, options);
    };
}

// b's group sets only `b_options`, inheriting the rest from `defaults`.
template <class O, class Options>
MakeOptimizer two_groups(Options defaults, Options b_options) {
    return [defaults, b_options](Tensor w, Tensor b) {
        auto optimizer = std::make_unique<O>(std::vector<Tensor>{w}, defaults);
        optimizer->add_param_group({b}, b_options);
        return optimizer;
    };
}

template <class S, class... Args>
MakeScheduler scheduler(Args... args) {
    return [=](Optimizer& optimizer) { return std::make_unique<S>(optimizer, args...); };
}

// Mirrors CONFIGS in gen_optim.py, name for name.
std::map<std::string, Config> configs() {
    const auto sched_sgd = two_groups<SGD>(SGDOptions(0.02).momentum(0.5), SGDOptions(0.05));
    return {
        {"sgd_plain", {one_group<SGD>(SGDOptions(0.01)), nullptr}},
        {"sgd_momentum", {one_group<SGD>(SGDOptions(0.01).momentum(0.9)), nullptr}},
        {"sgd_dampening", {one_group<SGD>(SGDOptions(0.01).momentum(0.9).dampening(0.3)), nullptr}},
        {"sgd_nesterov", {one_group<SGD>(SGDOptions(0.01).momentum(0.8).nesterov(true)), nullptr}},
        {"sgd_weight_decay", {one_group<SGD>(SGDOptions(0.01).weight_decay(0.1)), nullptr}},
        {"sgd_momentum_weight_decay",
         {one_group<SGD>(SGDOptions(0.01).momentum(0.9).weight_decay(0.05)), nullptr}},
        {"sgd_maximize", {one_group<SGD>(SGDOptions(0.002).momentum(0.5).maximize(true)), nullptr}},
        {"sgd_groups",
         {two_groups<SGD>(SGDOptions(0.01).momentum(0.7), SGDOptions(0.03).nesterov(true)),
          nullptr}},
        {"adam_plain", {one_group<Adam>(AdamOptions(0.05)), nullptr}},
        {"adam_weight_decay", {one_group<Adam>(AdamOptions(0.05).weight_decay(0.1)), nullptr}},
        {"adam_amsgrad",
         {one_group<Adam>(AdamOptions(0.05).betas({0.8, 0.9}).amsgrad(true)), nullptr}},
        {"adam_maximize", {one_group<Adam>(AdamOptions(0.01).maximize(true)), nullptr}},
        {"adam_eps", {one_group<Adam>(AdamOptions(0.05).eps(1e-3)), nullptr}},
        {"adam_groups",
         {two_groups<Adam>(AdamOptions(0.04).betas({0.85, 0.95}),
                           AdamOptions().amsgrad(true).weight_decay(0.2)),
          nullptr}},
        {"adamw_plain", {one_group<AdamW>(AdamWOptions(0.05)), nullptr}},
        {"adamw_amsgrad",
         {one_group<AdamW>(AdamWOptions(0.05).weight_decay(0.1).amsgrad(true)), nullptr}},
        {"adamw_maximize", {one_group<AdamW>(AdamWOptions(0.01).maximize(true)), nullptr}},
        {"step_lr", {sched_sgd, scheduler<StepLR>(std::int64_t{7}, 0.5)}},
        {"multi_step_lr",
         {sched_sgd, scheduler<MultiStepLR>(std::vector<std::int64_t>{5, 12, 12, 30}, 0.5)}},
        {"exponential_lr", {sched_sgd, scheduler<ExponentialLR>(0.95)}},
        {"cosine_annealing_lr", {sched_sgd, scheduler<CosineAnnealingLR>(std::int64_t{10}, 0.001)}},
        {"linear_lr", {sched_sgd, scheduler<LinearLR>(0.25, 1.0, std::int64_t{8})}},
        {"lambda_lr", {sched_sgd, scheduler<LambdaLR>(LambdaLR::Lambda([](std::int64_t e) {
                           return 1.0 / (1.0 + 0.1 * static_cast<double>(e)) *
                                  (e >= 20 ? 0.5 : 1.0);
                       }))}},
    };
}

double relative_error(double actual, double expected, double floor = 1e-300) {
    return std::abs(actual - expected) / std::max(std::abs(expected), floor);
}

// Runs one configuration in dtype T; checks every step against `expected`.
// Element by element relative error, or with `norm_wise` relative to the
// largest value of that step: float32 rounding in a value that cancelled down
// from O(1) to O(1e-3) is legitimately 1e-5 of the small value, not of O(1).
template <class T, class E>
void check_trajectory(const optim_ref::Reference& ref, const Config& config, const E (*expected)[8],
                      double rtol, bool norm_wise) {
    test::Problem<T> problem;
    auto optimizer = config.optimizer(problem.w, problem.b);
    std::unique_ptr<LRScheduler> scheduler =
        config.scheduler ? config.scheduler(*optimizer) : nullptr;
    double worst = 0.0, worst_lr = 0.0;
    int worst_step = -1;
    for (int step = 0; step < optim_ref::kSteps; ++step) {
        optimizer->zero_grad();
        problem.backward();
        optimizer->step();
        if (scheduler) {
            scheduler->step();
            const auto& lrs = scheduler->get_last_lr();
            REQUIRE(lrs.size() == 2);
            for (std::size_t g = 0; g < 2; ++g) {
                worst_lr = std::max(worst_lr, relative_error(lrs[g], ref.lr[step][g]));
            }
        }
        const auto values = test::flat_values<T>(problem.w, problem.b);
        double floor = norm_wise ? 0.0 : 1e-300;
        for (int i = 0; norm_wise && i < optim_ref::kValues; ++i) {
            floor = std::max(floor, std::abs(static_cast<double>(expected[step][i])));
        }
        for (int i = 0; i < optim_ref::kValues; ++i) {
            const double err =
                relative_error(values[i], static_cast<double>(expected[step][i]), floor);
            if (err > worst) worst = err, worst_step = step;
        }
    }
    INFO(std::string(ref.name), " in ", xg::dtype_name(problem.w.dtype()),
         ": worst relative error ", worst, " at step ", worst_step + 1);
    CHECK(worst <= rtol);
    CHECK(worst_lr <= 1e-12);
}

}  // namespace

TEST_CASE("optim: every PyTorch reference configuration has a C++ twin") {
    const auto table = configs();
    for (const auto& ref : optim_ref::references) {
        INFO(ref.name);
        CHECK(table.count(ref.name) == 1);
    }
    CHECK(table.size() == std::size(optim_ref::references));
}

TEST_CASE("optim: trajectories match PyTorch in float64 to 1e-12, element by element") {
    const auto table = configs();
    for (const auto& ref : optim_ref::references) {
        auto it = table.find(ref.name);
        if (it == table.end()) continue;
        SUBCASE(ref.name) { check_trajectory<double>(ref, it->second, ref.f64, 1e-12, false); }
    }
}

TEST_CASE("optim: trajectories match PyTorch in float32 to 1e-5 of each step's largest value") {
    const auto table = configs();
    for (const auto& ref : optim_ref::references) {
        auto it = table.find(ref.name);
        if (it == table.end()) continue;
        SUBCASE(ref.name) { check_trajectory<float>(ref, it->second, ref.f32, 1e-5, true); }
    }
}

}  // namespace optim_test_trajectories
