// SGD's options: builders, defaults and the errors for invalid values.
// (Its trajectories are checked against PyTorch in test_trajectories.cpp.)
#include <cmath>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "optim/problem.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace optim_test_sgd {

using namespace xg::optim;
using xg::Tensor;

TEST_CASE("optim: SGDOptions builds, reads back and lists its options in order") {
    SGDOptions o = SGDOptions(0.1).momentum(0.9).dampening(0.1).weight_decay(1e-4).maximize(true);
    CHECK(o.lr() == 0.1);
    CHECK(o.momentum() == 0.9);
    CHECK(o.dampening() == 0.1);
    CHECK(o.weight_decay() == 1e-4);
    CHECK_FALSE(o.nesterov());
    CHECK(o.maximize());
    const std::vector<std::pair<std::string, double>> items{
        {"lr", 0.1},       {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 1e-4},
        {"nesterov", 0.0}, {"maximize", 1.0}};
    CHECK(o.items() == items);
    CHECK(o.is_set("momentum"));
    CHECK_FALSE(o.is_set("nesterov"));
}

TEST_CASE("optim: SGD rejects invalid options with the option and value") {
    test::Problem<double> p;
    const std::vector<Tensor> params{p.w, p.b};
    CHECK_THROWS_WITH_AS(SGD(params, SGDOptions(-0.1)), "SGD: expected lr >= 0 (got -0.1)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(SGD(params, SGDOptions(NAN)), "SGD: expected lr >= 0 (got nan)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(SGD(params, SGDOptions(0.1).momentum(-0.5)),
                         "SGD: expected momentum >= 0 (got -0.5)", xg::Error);
    CHECK_THROWS_WITH_AS(SGD(params, SGDOptions(0.1).weight_decay(-1)),
                         "SGD: expected weight_decay >= 0 (got -1)", xg::Error);
    CHECK_THROWS_WITH_AS(SGD(params, SGDOptions(0.1).nesterov(true)),
                         "SGD: nesterov momentum requires a momentum and zero dampening (got "
                         "momentum 0, dampening 0)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(SGD(params, SGDOptions(0.1).momentum(0.9).dampening(0.1).nesterov(true)),
                         "SGD: nesterov momentum requires a momentum and zero dampening (got "
                         "momentum 0.9, dampening 0.1)",
                         xg::Error);
    CHECK_NOTHROW(SGD(params, SGDOptions(0.0).momentum(0.9).nesterov(true)));
}

TEST_CASE("optim: SGD without momentum keeps no state; with momentum one buffer per parameter") {
    test::Problem<float> p;
    SGD plain({p.w, p.b}, SGDOptions(0.1));
    p.backward();
    plain.step();
    CHECK(plain.state_dict().state.empty());

    SGD momentum({p.w, p.b}, SGDOptions(0.1).momentum(0.5));
    momentum.step();
    const auto state = momentum.state_dict();
    REQUIRE(state.state.size() == 2);
    const Tensor buf = state.state[0].second.at("momentum_buffer");
    CHECK(buf.dtype() == xg::kFloat32);
    // The first buffer is the gradient itself.
    CHECK(buf.data<float>() == p.w.grad().data<float>());
}

TEST_CASE("optim: SGD updates a float32 parameter in place in its own storage") {
    test::Problem<float> p;
    const float* storage = p.w.data<float>().data();
    const xt::xarray<float> before = p.w.data<float>();
    SGD sgd({p.w, p.b}, SGDOptions(0.5));
    p.backward();
    const xt::xarray<float> grad = p.w.grad().data<float>();
    sgd.step();
    CHECK(p.w.data<float>().data() == storage);
    // param + (-lr) * grad, rounded in float32.
    for (std::size_t i = 0; i < before.size(); ++i) {
        CHECK(p.w.data<float>().flat(i) == before.flat(i) + -0.5f * grad.flat(i));
    }
}

}  // namespace optim_test_sgd
