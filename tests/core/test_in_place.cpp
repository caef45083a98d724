// In-place ops and version counters (core/src/in_place.cpp, the engine's
// version check): values, gradients through in-place ops, PyTorch's errors for
// a leaf and for values a backward needed, and what stays allowed.
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_in_place {

using xg::Tensor;

TEST_CASE("in-place ops write the out-of-place result and bump the shared version") {
    Tensor x = test::f64({1.0, -2.0, 3.0});
    Tensor alias = x.detach();  // shares the values, and so their version
    CHECK(x.version() == 0);
    x.add_(1.0);
    CHECK_VALUES(alias, (xt::xarray<double>{2.0, -1.0, 4.0}));
    x.mul_(test::f64({2.0, 2.0, 0.5}));
    x.sub_(test::f64({1.0}));  // the other operand broadcasts
    CHECK_VALUES(x, (xt::xarray<double>{3.0, -3.0, 1.0}));
    x.clamp_(-2.0, 2.0);
    x.div_(2.0);
    CHECK_VALUES(x, (xt::xarray<double>{1.0, -1.0, 0.5}));
    x.relu_();
    x.masked_fill_(test::f64({1.0, 0.0, 0.0}).to(xg::kBool), 7.0);
    CHECK_VALUES(x, (xt::xarray<double>{7.0, 0.0, 0.5}));
    x.exp_().zero_();
    CHECK_VALUES(alias, (xt::xarray<double>{0.0, 0.0, 0.0}));
    x.fill_(2.5).copy_(test::f64({1.0, 2.0, 3.0}));
    CHECK_VALUES(x, (xt::xarray<double>{1.0, 2.0, 3.0}));
    CHECK(x.version() == 11);
    CHECK(alias.version() == 11);
}

TEST_CASE("gradients through in-place ops are those of the out-of-place ops") {
    const Tensor mask = test::f64({{1.0, 0.0, 0.0}, {0.0, 0.0, 1.0}}).to(xg::kBool);
    CHECK(test::gradcheck(
        [mask](const std::vector<Tensor>& in) {
            Tensor y = in[0] * 1.5;  // a non-leaf, which may change in place
            y.mul_(in[0]).sub_(0.5).clamp_(-2.0, 2.0).div_(in[1]).add_(in[1]);
            y.relu_().exp_().masked_fill_(mask, 0.0);
            return y;
        },
        {test::away_from_kinks({2, 3}, 3), test::positive64({3}, 0.5, 4)}));
    // copy_: the gradient reaches the source, broadcast and converted.
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            Tensor y = xg::zeros({2, 3}, xg::kFloat64);
            y.copy_(in[0] * 3.0);
            return y * y;
        },
        {test::randn64({3}, 5)}));
}

TEST_CASE("zero_ and fill_ cut the history of the values they replace") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * 2.0;
    y.zero_();
    CHECK_FALSE(y.requires_grad());
    xg::sum(y + x).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{1.0, 1.0}));
}

TEST_CASE("an in-place op on a leaf that requires grad is refused outside NoGradGuard") {
    Tensor w = test::f64({1.0, 2.0}, true);
    CHECK_THROWS_WITH(w.add_(1.0),
                      "add_: a leaf Variable that requires grad is being used in an "
                      "in-place operation (change its values under NoGradGuard)");
    CHECK_VALUES(w, (xt::xarray<double>{1.0, 2.0}));
    CHECK(w.version() == 0);
    {
        xg::NoGradGuard no_grad;  // how an optimizer step changes it
        w.sub_(0.5);
    }
    CHECK_VALUES(w, (xt::xarray<double>{0.5, 1.5}));
    CHECK(w.is_leaf());
    CHECK(w.requires_grad());
}

TEST_CASE("backward refuses values changed in place after they were saved") {
    Tensor w = xg::reshape(test::f64({1.0, 2.0, 3.0}), {3, 1}).requires_grad_();
    Tensor x = test::f64({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
    Tensor h = xg::matmul(x, w);  // MatmulBackward reads x to give w its gradient
    x.add_(1.0);
    CHECK_THROWS_WITH(
        xg::sum(h).backward(),
        doctest::Contains("backward: one of the variables needed for gradient computation has "
                          "been modified by an inplace operation: [float64 [2, 3]], input 0 of "
                          "MatmulBackward, is at version 1; expected version 0 instead. Hint:"));
    // An output its backward reads: exp's.
    Tensor a = test::f64({0.5, 1.0}, true) * 1.0;
    Tensor e = xg::exp(a);
    e.mul_(2.0);
    CHECK_THROWS_WITH(xg::sum(e * 1.0).backward(),
                      doctest::Contains("[float64 [2]], the output of ExpBackward, is at version "
                                        "1; expected version 0"));
}

TEST_CASE("values whose consumers do not read them may change in place") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor a = x * 2.0;
    Tensor b = a + 1.0;  // AddBackward reads neither operand
    Tensor c = xg::sum(a, {0});
    a.add_(5.0);
    xg::sum(b * 3.0 + c).backward();  // c (0-d) broadcasts: dL/da = 3 + 2 per element
    CHECK_VALUES(x.grad(), (xt::xarray<double>{10.0, 10.0}));
}

TEST_CASE("anomaly mode names where an op whose values changed ran") {
    xg::autograd::DetectAnomalyGuard anomaly;
    Tensor w = test::f64({2.0}, true);
    Tensor x = test::f64({3.0});
    Tensor y = x * w;
    x.fill_(1.0);
    CHECK_THROWS_WITH(xg::sum(y).backward(),
                      doctest::Contains("input 0 of MulBackward, is at version 1; expected "
                                        "version 0 instead. The op ran outside any module."));
}

TEST_CASE("in-place ops keep the tensor's shape and dtype") {
    Tensor i = test::i64({1, 2});
    CHECK_THROWS_WITH(i.add_(0.5),
                      "add_: result type float32 can't be cast to the desired output type int64");
    Tensor v = test::f64({1.0, 2.0, 3.0});
    CHECK_THROWS_WITH(v.add_(test::randn64({2, 3})),
                      "add_: output with shape [3] doesn't match the broadcast shape [2, 3]");
    Tensor f = test::f32({1.0f, 2.0f});
    f.add_(test::f64({0.5, 0.25}));  // float64 goes into float32, as PyTorch casts it
    CHECK(f.dtype() == xg::kFloat32);
    CHECK_VALUES(f, (xt::xarray<double>{1.5, 2.25}));
    i.add_(test::i64({3, 4}));
    CHECK_VALUES(i, (xt::xarray<double>{4.0, 6.0}));
}

TEST_CASE("optimizer steps update parameters without tripping the version checks") {
    auto lin = std::make_shared<xg::nn::Linear>(3, 2);
    xg::optim::SGD sgd(lin->parameters(), xg::optim::SGDOptions(0.1));
    const Tensor x = xg::randn({4, 3});
    for (int step = 0; step < 3; ++step) {
        sgd.zero_grad();
        Tensor loss = xg::sum((*lin)(x) * (*lin)(x));
        CHECK_NOTHROW(loss.backward());
        sgd.step();
    }
    CHECK(lin->weight.version() == 0);  // optimizers write as under NoGradGuard, unversioned
}

// A tensor hook stays with the values it was registered on, and retain_grad
// follows the tensor: PyTorch 1.13's values (tests/core/reference/gen_in_place_hooks.py).
// y = 2x, then y *= 3, loss = sum(y * [1, 10]).
TEST_CASE("hooks and retain_grad across an in-place op see the gradients PyTorch's do") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor weights = test::f64({1.0, 10.0});
    std::vector<std::vector<double>> before, after;
    auto record = [](std::vector<std::vector<double>>& into) {
        return [&into](const Tensor& g) {
            const auto& v = g.data<double>();
            into.emplace_back(v.begin(), v.end());
        };
    };
    Tensor y = x * 2.0;
    auto hb = y.register_hook(record(before));
    y.retain_grad();
    y.mul_(3.0);
    auto ha = y.register_hook(record(after));
    xg::sum(y * weights).backward();
    // Once each: the old values' gradient is 3 times the new one's.
    CHECK(before == std::vector<std::vector<double>>{{3.0, 30.0}});
    CHECK(after == std::vector<std::vector<double>>{{1.0, 10.0}});
    CHECK_VALUES(y.grad(), (xt::xarray<double>{1.0, 10.0}));
    CHECK_VALUES(x.grad(), (xt::xarray<double>{6.0, 60.0}));
}

}  // namespace core_test_in_place
