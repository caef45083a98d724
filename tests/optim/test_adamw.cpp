// AdamW: Adam's implementation with decoupled decay and weight_decay 1e-2 by default.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "optim/problem.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace optim_test_adamw {

using namespace xg::optim;
using xg::Tensor;

namespace {
double weight_decay(const Optimizer& o, std::size_t group) {
    return static_cast<const AdamOptions&>(o.param_groups()[group].options()).weight_decay();
}
}  // namespace

TEST_CASE("optim: AdamW's weight_decay defaults to 1e-2, also for groups and plain AdamOptions") {
    test::Problem<double> p;
    CHECK(AdamWOptions().weight_decay() == 1e-2);
    CHECK(AdamWOptions(0.1).weight_decay() == 1e-2);
    AdamW adamw({p.w});
    CHECK(weight_decay(adamw, 0) == 1e-2);
    CHECK(adamw.param_groups()[0].options().get_lr() == 1e-3);
    adamw.add_param_group({p.b}, AdamOptions(0.1));
    CHECK(weight_decay(adamw, 1) == 1e-2);

    AdamW from_adam_options({test::copy_param(p.w)}, AdamOptions(0.1));
    CHECK(weight_decay(from_adam_options, 0) == 1e-2);
    AdamW explicit_zero({test::copy_param(p.w)}, AdamOptions(0.1).weight_decay(0.0));
    CHECK(weight_decay(explicit_zero, 0) == 0.0);
    Adam adam({test::copy_param(p.w)}, AdamOptions(0.1));
    CHECK(weight_decay(adam, 0) == 0.0);
}

TEST_CASE("optim: AdamW names itself in errors") {
    test::Problem<double> p;
    CHECK_THROWS_WITH_AS(AdamW({p.w}, AdamWOptions(0.1).betas({0.9, 1.5})),
                         "AdamW: expected 0 <= beta2 < 1 (got 1.5)", xg::Error);
    CHECK_THROWS_WITH_AS(AdamW({p.w}, AdamWOptions(0.1).weight_decay(-1)),
                         "AdamW: expected weight_decay >= 0 (got -1)", xg::Error);
}

TEST_CASE("optim: AdamW decays decoupled: a zero gradient still shrinks the parameter") {
    Tensor w = xg::tensor(xt::xarray<double>{1.0, -2.0}, true);
    AdamW adamw({w}, AdamWOptions(0.1).weight_decay(0.5));
    w.mutable_grad() = xg::zeros({2}, xg::kFloat64);
    adamw.step();
    // param *= 1 - lr * wd; the Adam part is 0 / (0 + eps) = 0.
    CHECK(w.data<double>()(0) == 1.0 * (1.0 - 0.1 * 0.5));
    CHECK(w.data<double>()(1) == -2.0 * (1.0 - 0.1 * 0.5));

    Tensor v = xg::tensor(xt::xarray<double>{1.0, -2.0}, true);
    Adam adam({v},
              AdamOptions(0.1).weight_decay(0.5));  // coupled: the decay goes through m / sqrt(v)
    v.mutable_grad() = xg::zeros({2}, xg::kFloat64);
    adam.step();
    CHECK(v.data<double>()(0) == doctest::Approx(0.9));
    CHECK(v.data<double>()(1) == doctest::Approx(-1.9));
}

}  // namespace optim_test_adamw
