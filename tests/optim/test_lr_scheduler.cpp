// The schedulers: first value at construction, hand-computed schedules,
// chaining, their state_dict (every hyper-parameter), and argument errors. (Their 50-step
// trajectories against PyTorch are in test_trajectories.cpp.)
#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "optim/problem.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace optim_test_lr_scheduler {

using namespace xg::optim;
using xg::Tensor;

namespace {

struct Fixture {
    test::Problem<double> p;
    SGD sgd{std::vector<Tensor>{p.w}, SGDOptions(1.0)};
    Fixture() { sgd.add_param_group({p.b}, SGDOptions(0.5)); }
    // The lr of both groups after each of n steps.
    std::vector<std::vector<double>> run(LRScheduler& s, int n) {
        std::vector<std::vector<double>> lrs;
        for (int i = 0; i < n; ++i) {
            s.step();
            lrs.push_back(s.get_last_lr());
        }
        return lrs;
    }
};

}  // namespace

TEST_CASE("optim: LR schedulers set the first value at construction") {
    Fixture f;
    LinearLR warmup(f.sgd, 0.25, 1.0, 4);
    CHECK(warmup.last_epoch() == 0);
    CHECK(warmup.get_last_lr() == std::vector<double>{0.25, 0.125});
    CHECK(f.sgd.param_groups()[0].options().get_lr() == 0.25);
    CHECK(warmup.base_lrs() == std::vector<double>{1.0, 0.5});
    CHECK(f.sgd.param_groups()[1].initial_lr() == 0.5);
}

TEST_CASE("optim: StepLR, MultiStepLR, ExponentialLR and LambdaLR follow their closed forms") {
    {
        Fixture f;
        StepLR s(f.sgd, 3, 0.5);
        auto lrs = f.run(s, 7);
        for (int e = 1; e <= 7; ++e) {
            CHECK(lrs[e - 1][0] == std::pow(0.5, e / 3));
            CHECK(lrs[e - 1][1] == 0.5 * std::pow(0.5, e / 3));
        }
    }
    {
        Fixture f;
        MultiStepLR s(f.sgd, {4, 2, 4}, 0.1);  // unsorted, 4 twice
        auto lrs = f.run(s, 5);
        CHECK(lrs[0][0] == 1.0);
        CHECK(lrs[1][0] == doctest::Approx(0.1));
        CHECK(lrs[3][0] == doctest::Approx(0.001));
        CHECK(lrs[4][0] == doctest::Approx(0.001));
    }
    {
        Fixture f;
        ExponentialLR s(f.sgd, 0.9);
        auto lrs = f.run(s, 4);
        CHECK(lrs[3][1] == doctest::Approx(0.5 * std::pow(0.9, 4)));
    }
    {
        Fixture f;
        LambdaLR s(f.sgd, {[](std::int64_t e) { return 1.0 / (1 + e); },
                           [](std::int64_t e) { return static_cast<double>(e); }});
        auto lrs = f.run(s, 3);
        CHECK(lrs[2] == std::vector<double>{0.25, 1.5});
    }
}

TEST_CASE("optim: CosineAnnealingLR and LinearLR's recursive forms track their closed forms") {
    Fixture f;
    CosineAnnealingLR cosine(f.sgd, 5, 0.1);
    auto lrs = f.run(cosine, 23);  // past two restarts
    for (int e = 1; e <= 23; ++e) {
        const double closed = 0.1 + (1.0 - 0.1) * (1 + std::cos(std::numbers::pi * e / 5)) / 2;
        CHECK(lrs[e - 1][0] == doctest::Approx(closed).epsilon(1e-12));
    }
    Fixture g;
    LinearLR warmup(g.sgd, 0.2, 0.8, 4);
    auto warm = g.run(warmup, 6);
    for (int e = 1; e <= 6; ++e) {
        const double closed = 0.2 + (0.8 - 0.2) * std::min(e, 4) / 4.0;
        CHECK(warm[e - 1][1] == doctest::Approx(0.5 * closed).epsilon(1e-12));
    }
}

TEST_CASE(
    "optim: chained LR schedulers multiply, the second starting from the first's initial_lr") {
    Fixture f;
    StepLR step(f.sgd, 2, 0.5);
    ExponentialLR exponential(f.sgd, 0.9);
    CHECK(exponential.base_lrs() == std::vector<double>{1.0, 0.5});
    for (int e = 1; e <= 6; ++e) {
        step.step();
        exponential.step();
        CHECK(f.sgd.param_groups()[0].options().get_lr() ==
              doctest::Approx(std::pow(0.5, e / 2) * std::pow(0.9, e)));
    }
}

TEST_CASE("optim: an LR scheduler's state_dict resumes the schedule and refuses other states") {
    Fixture f;
    CosineAnnealingLR cosine(f.sgd, 6, 0.01);
    f.run(cosine, 9);
    const SchedulerState saved = cosine.state_dict();
    const std::vector<std::pair<std::string, double>> scalars{
        {"last_epoch", 9}, {"_step_count", 10}, {"T_max", 6}, {"eta_min", 0.01}};
    CHECK(saved.scalars == scalars);
    REQUIRE(saved.lists.size() == 2);
    CHECK(saved.lists[0].first == "base_lrs");
    CHECK(saved.lists[1].second == cosine.get_last_lr());

    Fixture g;
    g.sgd.load_state_dict(f.sgd.state_dict());
    CosineAnnealingLR resumed(g.sgd, 6, 0.01);
    resumed.load_state_dict(saved);
    CHECK(f.run(cosine, 10) == g.run(resumed, 10));

    SchedulerState wrong_groups = saved;
    wrong_groups.lists[0].second.push_back(1.0);
    const SchedulerState before = resumed.state_dict();
    CHECK_THROWS_WITH_AS(
        resumed.load_state_dict(wrong_groups),
        "CosineAnnealingLR.load_state_dict: expected base_lrs with 2 values, one per group (got 3)",
        xg::Error);
    SchedulerState unknown = saved;
    unknown.scalars.emplace_back("gamma", 0.5);
    CHECK_THROWS_WITH_AS(resumed.load_state_dict(unknown),
                         "CosineAnnealingLR.load_state_dict: unknown entry 'gamma'", xg::Error);
    const SchedulerState after = resumed.state_dict();
    CHECK(after.scalars == before.scalars);
    CHECK(after.lists == before.lists);

    Fixture h;
    MultiStepLR multi(h.sgd, {3, 5}, 0.5);
    const SchedulerState m = multi.state_dict();
    REQUIRE(m.lists.size() == 3);
    CHECK(m.lists[2] == std::pair<std::string, std::vector<double>>{"milestones", {3, 5}});
}

TEST_CASE("optim: LR schedulers reject invalid arguments") {
    Fixture f;
    CHECK_THROWS_WITH_AS(StepLR(f.sgd, 0), "StepLR: expected step_size > 0 (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(CosineAnnealingLR(f.sgd, 0),
                         "CosineAnnealingLR: expected T_max > 0 (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(LinearLR(f.sgd, 0.0), "LinearLR: expected 0 < start_factor <= 1 (got 0)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(LinearLR(f.sgd, 0.5, 1.5),
                         "LinearLR: expected 0 <= end_factor <= 1 (got 1.5)", xg::Error);
    CHECK_THROWS_WITH_AS(LinearLR(f.sgd, 0.5, 1.0, 0), "LinearLR: expected total_iters > 0 (got 0)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        LambdaLR(f.sgd, std::vector<LambdaLR::Lambda>{[](std::int64_t) { return 1.0; }}),
        "LambdaLR: expected 2 lr_lambdas (got 1)", xg::Error);
}

TEST_CASE("optim: every scheduler hyper-parameter round-trips through state_dict") {
    using Scalars = std::vector<std::pair<std::string, double>>;
    struct Case {
        const char* name;
        std::function<std::unique_ptr<LRScheduler>(Optimizer&)> saved, other;
        Scalars scalars;  // after last_epoch and _step_count
    };
    const Case cases[] = {
        {"StepLR", [](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 0.5); },
         [](Optimizer& o) { return std::make_unique<StepLR>(o, 7); },
         Scalars{{"step_size", 3}, {"gamma", 0.5}}},
        {"MultiStepLR",
         [](Optimizer& o) {
             return std::make_unique<MultiStepLR>(o, std::vector<std::int64_t>{2, 4}, 0.5);
         },
         [](Optimizer& o) {
             return std::make_unique<MultiStepLR>(o, std::vector<std::int64_t>{9});
         },
         Scalars{{"gamma", 0.5}}},
        {"ExponentialLR", [](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.8); },
         [](Optimizer& o) { return std::make_unique<ExponentialLR>(o, 0.3); },
         Scalars{{"gamma", 0.8}}},
        {"CosineAnnealingLR",
         [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 4, 0.05); },
         [](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 9); },
         Scalars{{"T_max", 4}, {"eta_min", 0.05}}},
        {"LinearLR", [](Optimizer& o) { return std::make_unique<LinearLR>(o, 0.5, 0.9, 3); },
         [](Optimizer& o) { return std::make_unique<LinearLR>(o); },
         Scalars{{"start_factor", 0.5}, {"end_factor", 0.9}, {"total_iters", 3}}},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        Fixture f, g;
        auto saved = c.saved(f.sgd);
        f.run(*saved, 2);
        const SchedulerState state = saved->state_dict();
        Scalars expected{{"last_epoch", 2}, {"_step_count", 3}};
        expected.insert(expected.end(), c.scalars.begin(), c.scalars.end());
        CHECK(state.scalars == expected);

        auto loaded = c.other(g.sgd);
        g.sgd.load_state_dict(f.sgd.state_dict());  // the lrs `other`'s first step changed
        loaded->load_state_dict(state);
        CHECK(loaded->state_dict().scalars == state.scalars);
        CHECK(loaded->state_dict().lists == state.lists);
        CHECK(f.run(*saved, 6) == g.run(*loaded, 6));
    }
}

TEST_CASE("optim: a loaded step_size or T_max below 1 throws and changes nothing") {
    Fixture f;
    StepLR step(f.sgd, 3);
    const SchedulerState before = step.state_dict();
    SchedulerState state = before;
    state.scalars[0].second = 7.0;  // last_epoch, applied before step_size fails
    state.scalars[2].second = 0.5;  // step_size
    CHECK_THROWS_WITH_AS(step.load_state_dict(state),
                         "StepLR.load_state_dict: expected step_size > 0 (got 0.5)", xg::Error);
    CHECK(step.state_dict().scalars == before.scalars);

    CosineAnnealingLR cosine(f.sgd, 5);
    SchedulerState cosine_state = cosine.state_dict();
    cosine_state.scalars[2].second = 0.0;  // T_max
    CHECK_THROWS_WITH_AS(cosine.load_state_dict(cosine_state),
                         "CosineAnnealingLR.load_state_dict: expected T_max > 0 (got 0)",
                         xg::Error);
    CHECK(cosine.state_dict().scalars[2].second == 5.0);

    MultiStepLR multi(f.sgd, {3});
    SchedulerState misplaced = multi.state_dict();
    misplaced.scalars.emplace_back("milestones", 4.0);  // a list given as a scalar
    CHECK_THROWS_WITH_AS(multi.load_state_dict(misplaced),
                         "MultiStepLR.load_state_dict: unknown entry 'milestones'", xg::Error);
    SchedulerState unsorted = multi.state_dict();
    unsorted.lists[2].second = {5, 1};
    multi.load_state_dict(unsorted);
    CHECK(multi.state_dict().lists[2].second == std::vector<double>{1, 5});
}

}  // namespace optim_test_lr_scheduler
