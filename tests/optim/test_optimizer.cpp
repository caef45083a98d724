// The optimizer base: groups and option inheritance, add_param_group,
// zero_grad, skipping parameters without gradients, parameter checks, and
// state_dict / load_state_dict (layout, exact resume, refusing mismatches),
// and every declared option in state_dict and the printout.
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "optim/problem.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace optim_test_optimizer {

using namespace xg::optim;
using test::copy_param;
using test::identical;
using xg::Tensor;

namespace {

// n optimizer steps on the reference problem.
void train(Optimizer& optimizer, const test::Problem<double>& problem, const Tensor& w,
           const Tensor& b, int n, LRScheduler* scheduler = nullptr) {
    for (int i = 0; i < n; ++i) {
        optimizer.zero_grad();
        problem.backward(w, b);
        optimizer.step();
        if (scheduler) scheduler->step();
    }
}

double option(const ParamGroupState& group, const std::string& name) {
    for (const auto& [key, value] : group.options) {
        if (key == name) return value;
    }
    FAIL("no option ", name);
    return 0.0;
}

}  // namespace

TEST_CASE("optim: a group inherits every option it does not set from the defaults") {
    test::Problem<double> p;
    SGD sgd({p.w}, SGDOptions(0.1).momentum(0.9).weight_decay(0.01));
    sgd.add_param_group({p.b}, SGDOptions(0.5).dampening(0.2));
    REQUIRE(sgd.param_groups().size() == 2);
    const auto& first = static_cast<const SGDOptions&>(sgd.param_groups()[0].options());
    const auto& second = static_cast<const SGDOptions&>(sgd.param_groups()[1].options());
    CHECK(first.lr() == 0.1);
    CHECK(first.momentum() == 0.9);
    CHECK(second.lr() == 0.5);
    CHECK(second.dampening() == 0.2);
    CHECK(second.momentum() == 0.9);       // inherited
    CHECK(second.weight_decay() == 0.01);  // inherited

    Adam adam({p.w}, AdamOptions(0.01).betas({0.8, 0.9}));
    adam.add_param_group({p.b}, AdamOptions().amsgrad(true));  // lr too is inherited
    const auto& adam_b = static_cast<const AdamOptions&>(adam.param_groups()[1].options());
    CHECK(adam_b.lr() == 0.01);
    CHECK(adam_b.betas() == std::pair<double, double>{0.8, 0.9});
    CHECK(adam_b.amsgrad());

    Adam plain({p.x.detach().clone().requires_grad_()});
    plain.add_param_group({p.y.detach().clone().requires_grad_()});  // all defaults
    CHECK(plain.param_groups()[1].options().get_lr() == 1e-3);
}

TEST_CASE("optim: a parameter given twice, an empty list or a bad parameter throws") {
    test::Problem<double> p;
    CHECK_THROWS_WITH_AS(
        SGD({p.w, p.b, p.w}, SGDOptions(0.1)),
        "SGD: expected each parameter at most once (got parameter 2 of group 0 twice)", xg::Error);
    SGD sgd({p.w, p.b}, SGDOptions(0.1));
    CHECK_THROWS_WITH_AS(
        sgd.add_param_group({p.b}),
        "SGD: expected each parameter at most once (got parameter 0 of group 1 twice)", xg::Error);
    CHECK(sgd.param_groups().size() == 1);  // the refused group is not in the list
    CHECK_THROWS_WITH_AS(sgd.add_param_group({copy_param(p.w)}, SGDOptions(-1.0)),
                         "SGD: expected lr >= 0 (got -1)", xg::Error);
    CHECK(sgd.param_groups().size() == 1);

    CHECK_THROWS_WITH_AS(Adam(std::vector<Tensor>{}),
                         "Adam: expected a non-empty parameter list (got an empty one)", xg::Error);
    CHECK_THROWS_WITH_AS(SGD({xg::arange(3)}, SGDOptions(0.1)),
                         "SGD: expected floating-point parameters (got int64 at 0 of group 0)",
                         xg::Error);
    Tensor non_leaf = p.w * 2.0;
    CHECK_THROWS_WITH_AS(SGD({non_leaf}, SGDOptions(0.1)),
                         "SGD: expected leaf tensors (got a non-leaf at 0 of group 0)", xg::Error);
}

TEST_CASE("optim: zero_grad drops gradients or zeroes them in place") {
    test::Problem<double> p;
    SGD sgd({p.w, p.b}, SGDOptions(0.1));
    p.backward();
    REQUIRE(p.w.grad().defined());
    sgd.zero_grad(false);
    REQUIRE(p.w.grad().defined());
    CHECK(p.w.grad().shape() == p.w.shape());
    CHECK(xt::all(xt::equal(p.w.grad().data<double>(), 0.0)));
    CHECK(xt::all(xt::equal(p.b.grad().data<double>(), 0.0)));
    sgd.zero_grad();
    CHECK_FALSE(p.w.grad().defined());
    CHECK_FALSE(p.b.grad().defined());
}

TEST_CASE("optim: step skips parameters without a gradient and keeps no state for them") {
    test::Problem<double> p;
    Tensor unused = copy_param(p.x);
    const xt::xarray<double> before = unused.data<double>();
    Adam adam({p.w, unused, p.b}, AdamOptions(0.1));
    p.backward();
    adam.step();
    CHECK(unused.data<double>() == before);
    const OptimizerState state = adam.state_dict();
    REQUIRE(state.state.size() == 2);
    CHECK(state.state[0].first == 0);
    CHECK(state.state[1].first == 2);
}

TEST_CASE("optim: step(closure) evaluates the closure and returns its loss") {
    test::Problem<double> p;
    SGD sgd({p.w, p.b}, SGDOptions(0.01));
    int calls = 0;
    Tensor loss = sgd.step([&] {
        ++calls;
        sgd.zero_grad();
        Tensor l = xg::sum(xg::pow(xg::matmul(p.x, p.w) + p.b - p.y, 2.0));
        l.backward();
        return l;
    });
    CHECK(calls == 1);
    REQUIRE(loss.defined());
    CHECK(loss.item<double>() > 0.0);
    CHECK_FALSE(p.w.data<double>() == test::matrix<double>(optim_ref::w0).data<double>());
}

TEST_CASE("optim: state_dict mirrors PyTorch's layout") {
    test::Problem<double> p;
    Adam adam({p.w}, AdamOptions(0.01).amsgrad(true));
    adam.add_param_group({p.b}, AdamOptions(0.02));
    train(adam, p, p.w, p.b, 3);
    const OptimizerState state = adam.state_dict();
    REQUIRE(state.param_groups.size() == 2);
    CHECK(state.param_groups[0].params == std::vector<std::size_t>{0});
    CHECK(state.param_groups[1].params == std::vector<std::size_t>{1});
    CHECK(option(state.param_groups[0], "lr") == 0.01);
    CHECK(option(state.param_groups[1], "lr") == 0.02);
    CHECK(option(state.param_groups[1], "amsgrad") == 1.0);  // inherited
    CHECK(option(state.param_groups[0], "beta2") == 0.999);
    REQUIRE(state.state.size() == 2);
    const xg::StateDict& w_state = state.state[0].second;
    CHECK(w_state.keys() ==
          std::vector<std::string>{"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"});
    CHECK(w_state.at("step").dtype() == xg::kFloat32);
    CHECK(w_state.at("step").item<double>() == 3.0);
    CHECK(w_state.at("exp_avg").shape() == xg::Shape{3, 2});

    // The tensors are copies: training on does not change a saved state.
    const xt::xarray<double> saved = w_state.at("exp_avg").data<double>();
    train(adam, p, p.w, p.b, 1);
    CHECK(w_state.at("exp_avg").data<double>() == saved);

    SGD sgd({p.w, p.b}, SGDOptions(0.01).momentum(0.9));
    train(sgd, p, p.w, p.b, 1);
    const OptimizerState sgd_state = sgd.state_dict();
    REQUIRE(sgd_state.state.size() == 2);
    CHECK(sgd_state.state[1].second.keys() == std::vector<std::string>{"momentum_buffer"});
    CHECK(sgd_state.param_groups[0].options.size() == 6);
}

TEST_CASE("optim: save mid-run, load into a fresh optimizer, continue bit-identically") {
    struct Case {
        const char* name;
        std::function<std::unique_ptr<Optimizer>(Tensor, Tensor)> make;
    };
    const Case cases[] = {
        {"SGD",
         [](Tensor w, Tensor b) {
             auto o = std::make_unique<SGD>(std::vector<Tensor>{w},
                                            SGDOptions(0.01).momentum(0.9).nesterov(true));
             o->add_param_group({b}, SGDOptions(0.02).weight_decay(0.1));
             return std::unique_ptr<Optimizer>(std::move(o));
         }},
        {"Adam",
         [](Tensor w, Tensor b) {
             return std::unique_ptr<Optimizer>(std::make_unique<Adam>(
                 std::vector<Tensor>{w, b}, AdamOptions(0.05).amsgrad(true)));
         }},
        {"AdamW",
         [](Tensor w, Tensor b) {
             return std::unique_ptr<Optimizer>(
                 std::make_unique<AdamW>(std::vector<Tensor>{w, b}, AdamWOptions(0.05)));
         }},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        test::Problem<double> p;
        auto optimizer = c.make(p.w, p.b);
        CosineAnnealingLR scheduler(*optimizer, 7, 0.001);
        train(*optimizer, p, p.w, p.b, 20, &scheduler);

        Tensor w2 = copy_param(p.w), b2 = copy_param(p.b);
        const OptimizerState saved = optimizer->state_dict();
        const SchedulerState saved_scheduler = scheduler.state_dict();
        auto resumed = c.make(w2, b2);
        CosineAnnealingLR resumed_scheduler(*resumed, 7, 0.001);
        resumed->load_state_dict(saved);
        resumed_scheduler.load_state_dict(saved_scheduler);

        train(*optimizer, p, p.w, p.b, 30, &scheduler);
        train(*resumed, p, w2, b2, 30, &resumed_scheduler);
        CHECK(identical(p.w, w2));
        CHECK(identical(p.b, b2));
        CHECK(scheduler.get_last_lr() == resumed_scheduler.get_last_lr());
    }
}

TEST_CASE("optim: loading a state for other parameters throws and changes nothing") {
    test::Problem<double> p;
    Adam adam({p.w, p.b}, AdamOptions(0.05));
    train(adam, p, p.w, p.b, 5);
    const OptimizerState good = adam.state_dict();

    // Another optimizer, trained a little, whose state must survive every failed load.
    Tensor w2 = copy_param(p.w), b2 = copy_param(p.b);
    Adam other({w2, b2}, AdamOptions(0.01).amsgrad(true));
    train(other, p, w2, b2, 2);
    const OptimizerState before = other.state_dict();

    OptimizerState fewer_groups = good;
    fewer_groups.param_groups.push_back(fewer_groups.param_groups[0]);
    CHECK_THROWS_WITH_AS(other.load_state_dict(fewer_groups),
                         "Adam.load_state_dict: expected 1 parameter groups (got 2)", xg::Error);

    Tensor lone = copy_param(p.w);
    Adam one_param({lone}, AdamOptions(0.05));
    CHECK_THROWS_WITH_AS(one_param.load_state_dict(good),
                         "Adam.load_state_dict: expected 1 parameters in group 0 (got 2)",
                         xg::Error);

    // Same count, other shapes: w is [3, 2] in the state, [2, 3] here.
    Tensor wt = xg::zeros({2, 3}, xg::kFloat64).requires_grad_();
    Adam transposed({wt, copy_param(p.b)}, AdamOptions(0.05));
    CHECK_THROWS_WITH_AS(
        transposed.load_state_dict(good),
        "Adam.load_state_dict (parameter 0): expected a floating-point exp_avg of shape "
        "[2, 3] (got float64 [3, 2])",
        xg::Error);
    CHECK(transposed.state_dict().state.empty());

    OptimizerState bad_option = good;
    bad_option.param_groups[0].options[1].second = 1.5;  // beta1
    CHECK_THROWS_WITH_AS(other.load_state_dict(bad_option),
                         "Adam.load_state_dict: expected 0 <= beta1 < 1 (got 1.5)", xg::Error);
    OptimizerState unknown_option = good;
    unknown_option.param_groups[0].options.emplace_back("momentum", 0.9);
    CHECK_THROWS_WITH_AS(other.load_state_dict(unknown_option),
                         "Adam.load_state_dict: unknown option 'momentum' in group 0", xg::Error);
    OptimizerState missing_key = good;
    missing_key.state[1].second.erase("exp_avg_sq");
    CHECK_THROWS_AS(other.load_state_dict(missing_key), xg::Error);
    OptimizerState bad_position = good;
    bad_position.state[1].first = 7;
    CHECK_THROWS_WITH_AS(
        other.load_state_dict(bad_position),
        "Adam.load_state_dict: expected state for a saved parameter position (got 7)", xg::Error);

    // Nothing changed: same state, and training on matches a twin that never saw a load.
    const OptimizerState after = other.state_dict();
    REQUIRE(after.state.size() == before.state.size());
    for (std::size_t i = 0; i < after.state.size(); ++i) {
        for (const auto& [key, value] : before.state[i].second) {
            CHECK(identical(after.state[i].second.at(key), value));
        }
    }
    CHECK(after.param_groups[0].options == before.param_groups[0].options);

    Tensor w3 = copy_param(w2), b3 = copy_param(b2);
    Adam twin({w3, b3}, AdamOptions(0.01).amsgrad(true));
    twin.load_state_dict(before);
    train(other, p, w2, b2, 5);
    train(twin, p, w3, b3, 5);
    CHECK(identical(w2, w3));
    CHECK(identical(b2, b3));
}

TEST_CASE("optim: loading casts state to the parameter's dtype") {
    test::Problem<double> p;
    SGD sgd({p.w, p.b}, SGDOptions(0.01).momentum(0.9));
    train(sgd, p, p.w, p.b, 2);
    Tensor w32 = p.w.detach().to(xg::kFloat32).requires_grad_(),
           b32 = p.b.detach().to(xg::kFloat32).requires_grad_();
    SGD sgd32({w32, b32}, SGDOptions(0.01).momentum(0.9));
    sgd32.load_state_dict(sgd.state_dict());
    CHECK(sgd32.state_dict().state[0].second.at("momentum_buffer").dtype() == xg::kFloat32);
}

TEST_CASE("optim: every SGD option round-trips through state_dict and appears in the printout") {
    test::Problem<double> p;
    SGD sgd({p.w}, SGDOptions(0.3).momentum(0.7).weight_decay(0.05).nesterov(true).maximize(true));
    sgd.add_param_group({p.b}, SGDOptions(0.5).dampening(0.2).nesterov(false));
    StepLR scheduler(sgd, 10);  // sets each group's initial_lr
    const OptimizerState saved = sgd.state_dict();
    const std::vector<std::pair<std::string, double>> first{
        {"lr", 0.3},       {"momentum", 0.7}, {"dampening", 0.0}, {"weight_decay", 0.05},
        {"nesterov", 1.0}, {"maximize", 1.0}, {"initial_lr", 0.3}};
    const std::vector<std::pair<std::string, double>> second{
        {"lr", 0.5},       {"momentum", 0.7}, {"dampening", 0.2}, {"weight_decay", 0.05},
        {"nesterov", 0.0}, {"maximize", 1.0}, {"initial_lr", 0.5}};
    REQUIRE(saved.param_groups.size() == 2);
    CHECK(saved.param_groups[0].options == first);
    CHECK(saved.param_groups[1].options == second);

    Tensor w2 = copy_param(p.w), b2 = copy_param(p.b);
    SGD fresh({w2}, SGDOptions(0.01));
    fresh.add_param_group({b2});
    fresh.load_state_dict(saved);
    const auto& o = static_cast<const SGDOptions&>(fresh.param_groups()[1].options());
    CHECK(o.lr() == 0.5);
    CHECK(o.momentum() == 0.7);
    CHECK(o.dampening() == 0.2);
    CHECK(o.weight_decay() == 0.05);
    CHECK_FALSE(o.nesterov());
    CHECK(o.maximize());
    CHECK(fresh.param_groups()[1].initial_lr() == 0.5);
    CHECK(fresh.state_dict().param_groups[0].options == first);

    CHECK(fresh.repr() ==
          "SGD (\n"
          "Parameter Group 0\n"
          "    lr: 0.3\n    momentum: 0.7\n    dampening: 0\n    weight_decay: 0.05\n"
          "    nesterov: True\n    maximize: True\n    initial_lr: 0.3\n"
          "\n"
          "Parameter Group 1\n"
          "    lr: 0.5\n    momentum: 0.7\n    dampening: 0.2\n    weight_decay: 0.05\n"
          "    nesterov: False\n    maximize: True\n    initial_lr: 0.5\n"
          ")");
    std::ostringstream printed;
    printed << fresh;
    CHECK(printed.str() == fresh.repr());
}

TEST_CASE("optim: every Adam option round-trips through state_dict and appears in the printout") {
    test::Problem<double> p;
    const auto options = AdamOptions(0.02)
                             .betas({0.8, 0.95})
                             .eps(1e-6)
                             .weight_decay(0.1)
                             .amsgrad(true)
                             .maximize(true);
    const std::vector<std::pair<std::string, double>> expected{
        {"lr", 0.02},          {"beta1", 0.8},   {"beta2", 0.95},  {"eps", 1e-6},
        {"weight_decay", 0.1}, {"amsgrad", 1.0}, {"maximize", 1.0}};
    const std::string printed_options =
        "    lr: 0.02\n    beta1: 0.8\n    beta2: 0.95\n    eps: 1e-06\n    weight_decay: 0.1\n"
        "    amsgrad: True\n    maximize: True\n";
    Adam adam({p.w, p.b}, options);
    AdamW adamw({copy_param(p.w), copy_param(p.b)}, options);
    for (Optimizer* optimizer : {static_cast<Optimizer*>(&adam), static_cast<Optimizer*>(&adamw)}) {
        INFO(optimizer->name());
        const OptimizerState saved = optimizer->state_dict();
        REQUIRE(saved.param_groups.size() == 1);
        CHECK(saved.param_groups[0].options == expected);
        CHECK(optimizer->repr() ==
              optimizer->name() + " (\nParameter Group 0\n" + printed_options + ")");
    }

    Adam fresh({copy_param(p.w), copy_param(p.b)});
    fresh.load_state_dict(adam.state_dict());
    const auto& o = static_cast<const AdamOptions&>(fresh.param_groups()[0].options());
    CHECK(o.lr() == 0.02);
    CHECK(o.betas() == std::pair<double, double>{0.8, 0.95});
    CHECK(o.eps() == 1e-6);
    CHECK(o.weight_decay() == 0.1);
    CHECK(o.amsgrad());
    CHECK(o.maximize());
    CHECK_FALSE(fresh.param_groups()[0].initial_lr().has_value());
    CHECK(fresh.state_dict().param_groups[0].options == expected);
}

TEST_CASE(
    "optim: a loaded param group with another optimizer's option throws and changes nothing") {
    test::Problem<double> p;
    SGD sgd({p.w, p.b}, SGDOptions(0.1).momentum(0.9));
    const OptimizerState before = sgd.state_dict();
    OptimizerState adam_option = before;
    adam_option.param_groups[0].options.emplace_back("beta1", 0.9);
    adam_option.param_groups[0].options[0].second = 0.5;  // an lr that must not be applied
    CHECK_THROWS_WITH_AS(sgd.load_state_dict(adam_option),
                         "SGD.load_state_dict: unknown option 'beta1' in group 0", xg::Error);
    CHECK(sgd.state_dict().param_groups[0].options == before.param_groups[0].options);
}

}  // namespace optim_test_optimizer
