// Dropout and MonteCarloDropout: statistics, modes, reproducibility, gradients, printing.
#include <cmath>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_dropout {

using reference::lookup;
namespace ref = reference::layers;

TEST_CASE("Dropout keeps the mean and zeroes a fraction p of the elements") {
    xg::manual_seed(11);
    for (double p : {0.1, 0.3, 0.5, 0.9}) {
        CAPTURE(p);
        xg::nn::Dropout drop(p);
        const std::size_t n = 200000;
        xg::Tensor x = xg::ones({n}, xg::kFloat64);
        xg::Tensor y = drop(x);
        double zero_fraction = static_cast<double>(test::count_zeros(y)) / static_cast<double>(n);
        // Binomial standard deviation sqrt(p (1 - p) / n) <= 0.0012; allow 5 of them.
        CHECK(std::abs(zero_fraction - p) < 0.006);
        CHECK(std::abs(xg::mean(y).item<double>() - 1.0) < 0.006 / (1.0 - p) + 0.006);
        // Survivors are scaled by exactly 1 / (1 - p).
        for (double v : test::values(y)) {
            if (v != 0.0) {
                CHECK(v == doctest::Approx(1.0 / (1.0 - p)));
                break;
            }
        }
    }
}

TEST_CASE("Dropout averages to the input over many samples") {
    xg::manual_seed(5);
    xg::nn::Dropout drop(0.4);
    xg::Tensor x = xg::tensor<double>(xt::xarray<double>{{1.0, -2.0, 0.5}, {3.0, 0.25, -1.5}});
    xt::xarray<double> sum = xt::zeros<double>({2, 3});
    const int samples = 20000;
    for (int i = 0; i < samples; ++i) sum += test::values(drop(x));
    // Each entry's sample mean has std |x| sqrt(p / (1 - p)) / sqrt(samples) <= 0.017.
    CHECK(test::close(sum / samples, test::values(x), 0.0, 0.07));
}

TEST_CASE("Dropout is the identity in eval mode and at p = 0; p = 1 zeroes everything") {
    xg::Tensor x = test::randn64({4, 5}, 3);
    xg::nn::Dropout drop(0.5);
    drop.eval();
    CHECK_VALUES(drop(x), test::values(x));
    drop.train();
    CHECK(test::count_zeros(drop(x)) > 0);
    CHECK_VALUES(xg::nn::Dropout(0.0)(x), test::values(x));
    xg::Tensor zeroed = xg::nn::Dropout(1.0)(x);
    CHECK(test::count_zeros(zeroed) == x.numel());
}

TEST_CASE("Dropout rejects p outside [0, 1]") {
    CHECK_THROWS_WITH_AS(xg::nn::Dropout(1.5), "Dropout: expected p in [0, 1] (got 1.5)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::nn::Dropout(-0.1), "Dropout: expected p in [0, 1] (got -0.1)",
                         xg::Error);
    CHECK_THROWS_AS(xg::nn::MonteCarloDropout(2.0), xg::Error);
    CHECK_THROWS_AS(xg::nn::Dropout(std::nan("")), xg::Error);
}

TEST_CASE("Dropout masks are reproducible under manual_seed") {
    xg::Tensor x = xg::ones({64, 64});
    xg::nn::Dropout drop(0.5);
    xg::manual_seed(123);
    xg::Tensor a = drop(x);
    xg::Tensor b = drop(x);
    xg::manual_seed(123);
    xg::Tensor c = drop(x);
    CHECK_VALUES(c, test::values(a));
    CHECK_FALSE(test::close(test::values(b), test::values(a)));
}

TEST_CASE("Dropout's gradient is its mask scaled by 1 / (1 - p)") {
    xg::manual_seed(8);
    xg::nn::Dropout drop(0.25);
    xg::Tensor x = xg::ones({10, 10}, xg::kFloat64).requires_grad_(true);
    xg::Tensor y = drop(x);
    xg::sum(y).backward();
    CHECK_VALUES(x.grad(), test::values(y));  // x = 1, so y is the scaled mask
    // gradcheck with the mask fixed by reseeding before each evaluation.
    CHECK(test::gradcheck(
        [&](const std::vector<xg::Tensor>& in) {
            xg::manual_seed(9);
            return drop(in[0]);
        },
        {test::randn64({3, 4}, 1)}));
}

TEST_CASE("MonteCarloDropout samples in eval mode only while enabled") {
    xg::Tensor x = xg::ones({1000});
    xg::nn::MonteCarloDropout mc(0.5);
    CHECK_FALSE(mc.mc_dropout_enabled());
    CHECK(test::count_zeros(mc(x)) > 0);  // training: like Dropout
    mc.eval();
    CHECK(test::count_zeros(mc(x)) == 0);  // eval, not enabled: identity
    CHECK_VALUES(mc(x), test::values(x));
    mc.enable_mc_dropout(true);
    CHECK(mc.mc_dropout_enabled());
    xg::Tensor a = mc(x), b = mc(x);
    CHECK(test::count_zeros(a) > 0);
    CHECK_FALSE(test::close(test::values(a), test::values(b)));  // fresh sample each call
    mc.enable_mc_dropout(false);
    CHECK(test::count_zeros(mc(x)) == 0);
    // Plain Dropout ignores the concept: eval is always the identity.
    xg::nn::Dropout plain(0.5);
    plain.eval();
    CHECK(test::count_zeros(plain(x)) == 0);
}

TEST_CASE("Dropout and MonteCarloDropout print as PyTorch and clone with their configuration") {
    CHECK(xg::nn::Dropout(0.1).repr() == lookup(ref::reprs, "dropout"));
    CHECK(xg::nn::Dropout().repr() == lookup(ref::reprs, "dropout_default"));
    CHECK(xg::nn::Dropout(1.0).repr() == lookup(ref::reprs, "dropout_one"));
    CHECK(xg::nn::MonteCarloDropout(0.1).repr() == lookup(ref::reprs, "mc_dropout"));
    auto mc = std::make_shared<xg::nn::MonteCarloDropout>(0.2);
    mc->enable_mc_dropout(true);
    mc->eval();
    auto copy = std::dynamic_pointer_cast<xg::nn::MonteCarloDropout>(mc->clone());
    REQUIRE(copy);
    CHECK(copy->p == 0.2);
    CHECK(copy->mc_dropout_enabled());
    CHECK_FALSE(copy->is_training());
    auto plain = xg::nn::Dropout(0.3).clone();
    CHECK(plain->repr() == "Dropout(p=0.3, inplace=False)");
    CHECK(std::dynamic_pointer_cast<xg::nn::MonteCarloDropout>(plain) == nullptr);
}

}  // namespace nn_test_dropout
