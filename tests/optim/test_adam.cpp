// Adam's options: builders, defaults and the errors for invalid values, and
// a hand-computed first step. (Trajectories: test_trajectories.cpp.)
#include <cmath>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "optim/problem.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace optim_test_adam {

using namespace xg::optim;
using xg::Tensor;

TEST_CASE("optim: AdamOptions has PyTorch's defaults and lists betas as beta1, beta2") {
    AdamOptions o;
    CHECK(o.lr() == 1e-3);
    CHECK(o.betas() == std::pair<double, double>{0.9, 0.999});
    CHECK(o.eps() == 1e-8);
    CHECK(o.weight_decay() == 0.0);
    CHECK_FALSE(o.amsgrad());
    CHECK_FALSE(o.maximize());
    CHECK_FALSE(o.is_set("lr"));
    const std::vector<std::pair<std::string, double>> items{
        {"lr", 1e-3},          {"beta1", 0.9},   {"beta2", 0.999}, {"eps", 1e-8},
        {"weight_decay", 0.0}, {"amsgrad", 0.0}, {"maximize", 0.0}};
    CHECK(o.items() == items);
    CHECK(AdamOptions(0.5).is_set("lr"));
}

TEST_CASE("optim: Adam rejects invalid options with the option and value") {
    test::Problem<double> p;
    const std::vector<Tensor> params{p.w, p.b};
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions(-1e-3)), "Adam: expected lr >= 0 (got -0.001)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions().betas({1.5, 0.999})),
                         "Adam: expected 0 <= beta1 < 1 (got 1.5)", xg::Error);
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions().betas({0.9, 1.0})),
                         "Adam: expected 0 <= beta2 < 1 (got 1)", xg::Error);
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions().betas({-0.1, 0.9})),
                         "Adam: expected 0 <= beta1 < 1 (got -0.1)", xg::Error);
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions().eps(-1e-8)),
                         "Adam: expected eps >= 0 (got -1e-08)", xg::Error);
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions().weight_decay(-0.1)),
                         "Adam: expected weight_decay >= 0 (got -0.1)", xg::Error);
    CHECK_THROWS_WITH_AS(Adam(params, AdamOptions().betas({NAN, 0.9})),
                         "Adam: expected 0 <= beta1 < 1 (got nan)", xg::Error);
}

TEST_CASE("optim: Adam's first step moves each element by lr against its gradient's sign") {
    // After one step m = (1-b1) g, v = (1-b2) g^2, so the update is
    // -lr * g / (|g| + eps * sqrt(1-b2)) / ... : -lr * sign(g) up to eps.
    test::Problem<double> p;
    const xt::xarray<double> before = p.w.data<double>();
    Adam adam({p.w, p.b}, AdamOptions(0.1).eps(0.0));
    p.backward();
    const xt::xarray<double> grad = p.w.grad().data<double>();
    adam.step();
    for (std::size_t i = 0; i < before.size(); ++i) {
        const double expected = before.flat(i) - 0.1 * (grad.flat(i) > 0 ? 1.0 : -1.0);
        CHECK(p.w.data<double>().flat(i) == doctest::Approx(expected).epsilon(1e-14));
    }
    const auto state = adam.state_dict().state[0].second;
    CHECK(state.at("step").item<double>() == 1.0);
    CHECK_FALSE(state.contains("max_exp_avg_sq"));
}

TEST_CASE("optim: Adam creates max_exp_avg_sq when amsgrad is switched on mid-run") {
    test::Problem<double> p;
    Adam adam({p.w, p.b}, AdamOptions(0.01));
    p.backward();
    adam.step();
    static_cast<AdamOptions&>(adam.param_groups()[0].options()).amsgrad(true);
    adam.step();
    CHECK(adam.state_dict().state[0].second.contains("max_exp_avg_sq"));
}

}  // namespace optim_test_adam
