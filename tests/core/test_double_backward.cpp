// Higher-order gradients (core/src/double_backward.cpp and the engine's
// create_graph): autograd::grad, backward(create_graph), a gradgradcheck of
// every op whose backward records under create_graph, and the refusal for the
// ops whose backward does not.
#include <cmath>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_double_backward {

using test::Fn;
using xg::Tensor;

namespace {

// Every input requires grad; gradgradcheck works on float64 copies.
bool second_order_ok(const Fn& fn, const std::vector<Tensor>& inputs) {
    return test::gradgradcheck(fn, inputs);
}

// A gradgradcheck per unary op, named in the failure message.
void check_unary(const char* name, Tensor (*op)(const Tensor&), const Tensor& x) {
    INFO(name);
    CHECK(second_order_ok([op](const std::vector<Tensor>& in) { return op(in[0]); }, {x}));
}

Tensor cube_sum(const Tensor& x) { return xg::sum(x * x * x); }

}  // namespace

TEST_CASE("autograd::grad returns gradients and leaves .grad alone") {
    Tensor x = test::f64({1.0, -2.0, 3.0}, true);
    Tensor w = test::f64({0.5, 0.25, -1.0}, true);
    Tensor y = xg::sum(x * w);
    std::vector<Tensor> g = xg::autograd::grad({y}, {x, w});
    REQUIRE(g.size() == 2);
    CHECK_VALUES(g[0], (xt::xarray<double>{0.5, 0.25, -1.0}));
    CHECK_VALUES(g[1], (xt::xarray<double>{1.0, -2.0, 3.0}));
    CHECK_FALSE(x.grad().defined());
    CHECK_FALSE(w.grad().defined());
    CHECK_FALSE(g[0].requires_grad());  // no create_graph: plain values
}

TEST_CASE("autograd::grad with respect to an intermediate runs only the nodes it needs") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor h = x * 3.0;
    Tensor y = xg::sum(h * h);
    int reached_x = 0;
    auto handle = x.register_hook([&](const Tensor&) { ++reached_x; });
    std::vector<Tensor> g = xg::autograd::grad({y}, {h}, {}, true);
    CHECK_VALUES(g[0], (xt::xarray<double>{6.0, 12.0}));  // 2 h
    CHECK(reached_x == 0);                                // h's own node did not run
    CHECK_FALSE(x.grad().defined());
    handle.remove();
}

TEST_CASE("autograd::grad: grad_outputs, an input given twice, unused inputs") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor unused = test::f64({5.0}, true);
    Tensor y = x * x;
    std::vector<Tensor> g =
        xg::autograd::grad({y}, {x, x, unused}, {test::f64({1.0, 10.0})}, true, false, true);
    CHECK_VALUES(g[0], (xt::xarray<double>{2.0, 40.0}));
    CHECK_VALUES(g[1], (xt::xarray<double>{2.0, 40.0}));
    CHECK_FALSE(g[2].defined());
    CHECK_THROWS_WITH(xg::autograd::grad({y}, {unused}, {test::f64({1.0, 1.0})}, true),
                      doctest::Contains("appears not to have been used in the graph"));
    CHECK_THROWS_WITH(xg::autograd::grad({y}, {test::f64({1.0})}, {test::f64({1.0, 1.0})}),
                      doctest::Contains("grad: input 0 does not require grad"));
    CHECK_THROWS_WITH(xg::autograd::grad({y}, {x}),
                      doctest::Contains("grad can be implicitly created only for a one-element"));
}

TEST_CASE("a Hessian-vector product: d/dx <grad f(x), v>") {
    // f = sum(x^3): grad = 3 x^2, Hessian = diag(6 x), so H v = 6 x v.
    Tensor x = test::f64({1.0, -2.0, 0.5}, true);
    Tensor v = test::f64({1.0, 0.5, -2.0});
    Tensor g = xg::autograd::grad({cube_sum(x)}, {x}, {}, std::nullopt, true)[0];
    CHECK(g.requires_grad());
    CHECK_VALUES(g, (xt::xarray<double>{3.0, 12.0, 0.75}));
    Tensor hv = xg::autograd::grad({xg::sum(g * v)}, {x})[0];
    CHECK_VALUES(hv, (xt::xarray<double>{6.0, -6.0, -6.0}));
}

TEST_CASE("backward(create_graph) gives .grad a history to differentiate") {
    Tensor x = test::f64({2.0, 3.0}, true);
    cube_sum(x).backward(Tensor(), std::nullopt, true);
    Tensor first = x.grad();  // 3 x^2, with a history
    CHECK(first.requires_grad());
    CHECK_VALUES(first, (xt::xarray<double>{12.0, 27.0}));
    x.mutable_grad() = Tensor();
    xg::sum(first).backward();  // d/dx sum(3 x^2) = 6 x
    CHECK_VALUES(x.grad(), (xt::xarray<double>{12.0, 18.0}));
}

TEST_CASE("a gradient penalty's gradient: d/dw ||d(w x)^2 / dx||^2 by hand") {
    // L = (w . x)^2, dL/dx = 2 (w . x) w, P = ||dL/dx||^2 = 4 (w . x)^2 ||w||^2.
    // dP/dw = 8 (w . x) ||w||^2 x + 8 (w . x)^2 w.
    Tensor w = test::f64({1.0, 2.0}, true);
    Tensor x = test::f64({0.5, -1.5}, true);
    Tensor s = xg::sum(w * x);
    Tensor dx = xg::autograd::grad({s * s}, {x}, {}, std::nullopt, true)[0];
    Tensor penalty = xg::sum(dx * dx);
    const double wx = 0.5 - 3.0, ww = 5.0;
    CHECK(penalty.item<double>() == doctest::Approx(4 * wx * wx * ww));
    std::vector<Tensor> dw = xg::autograd::grad({penalty}, {w});
    CHECK_VALUES(dw[0], (xt::xarray<double>{8 * wx * ww * 0.5 + 8 * wx * wx * 1.0,
                                            8 * wx * ww * -1.5 + 8 * wx * wx * 2.0}));
}

TEST_CASE("backward through a freed graph gives PyTorch's error") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = xg::sum(xg::exp(x));
    y.backward();
    CHECK_THROWS_WITH(y.backward(),
                      doctest::Contains("trying to backward through the graph a second time"));
    // create_graph retains the graph by default, as in PyTorch.
    Tensor z = xg::sum(xg::exp(x));
    xg::autograd::grad({z}, {x}, {}, std::nullopt, true);
    CHECK_NOTHROW(xg::autograd::grad({z}, {x}));
}

TEST_CASE("an op without a recorded backward: exact first derivative, refused second") {
    // A custom op whose backward computes with raw values (no DoubleBackward::Supported).
    auto cube = [](const Tensor& x) {
        Tensor value;
        {
            xg::NoGradGuard no_grad;
            value = x * x * x;
        }
        Tensor saved = x.detach();
        return xg::autograd::make_result(value, "CubeBackward", {x}, [saved](const Tensor& g) {
            xg::NoGradGuard raw;
            return std::vector<Tensor>{g * 3.0 * saved * saved};
        });
    };
    Tensor x = test::f64({1.0, 2.0, 4.0}, true);
    Tensor plain = xg::autograd::grad({xg::sum(cube(x))}, {x})[0];
    Tensor g = xg::autograd::grad({xg::sum(cube(x))}, {x}, {}, std::nullopt, true)[0];
    CHECK(test::identical(g, plain));
    CHECK(g.requires_grad());
    CHECK(g.grad_fn_name() == "CubeBackwardBackward");
    CHECK_THROWS_WITH(xg::sum(g * g).backward(),
                      doctest::Contains("the derivative of CubeBackward is not implemented for "
                                        "double backward"));
}

TEST_CASE("gradgradcheck rejects a backward that is not differentiated correctly") {
    // x^2 whose backward claims 2 x but records 2 * x.detach(): first
    // derivatives right, second derivatives zero.
    Fn wrong = [](const std::vector<Tensor>& in) {
        Tensor value;
        {
            xg::NoGradGuard no_grad;
            value = in[0] * in[0];
        }
        Tensor saved = in[0].detach();
        return xg::autograd::make_result(
            value, "WrongBackward", {in[0]},
            [saved](const Tensor& g) { return std::vector<Tensor>{g * (2.0 * saved)}; },
            xg::autograd::DoubleBackward::Supported);
    };
    Tensor x = test::randn64({3}, 1);
    CHECK(test::gradcheck(wrong, {x}));
    CHECK_FALSE(second_order_ok(wrong, {x}));
}

TEST_CASE("gradgradcheck: activations and unary math") {
    const Tensor x = test::away_from_kinks({2, 3}, 7);
    const Tensor pos = test::positive64({2, 3}, 0.5, 8);
    check_unary("relu", xg::relu, x);
    check_unary("sigmoid", xg::sigmoid, x);
    check_unary("silu", xg::silu, x);
    check_unary("tanh", xg::tanh, x);
    check_unary("exp", xg::exp, x);
    check_unary("log", xg::log, pos);
    check_unary("sqrt", xg::sqrt, pos);
    check_unary("abs", xg::abs, x);
    check_unary("neg", xg::neg, x);
    check_unary("rsqrt", xg::rsqrt, pos);
    check_unary("reciprocal", xg::reciprocal, pos);
    check_unary("square", xg::square, x);
    check_unary("log1p", xg::log1p, pos);
    check_unary("expm1", xg::expm1, x);
    check_unary("sin", xg::sin, x);
    check_unary("cos", xg::cos, x);
    check_unary("sign", xg::sign, x);
    check_unary("mish", xg::mish, x);
    check_unary("logsigmoid", xg::logsigmoid, x);
    check_unary("erf", xg::erf, x);
    check_unary("selu", xg::selu, x);
    auto with = [&](const char* name, const Fn& fn, const Tensor& in) {
        INFO(name);
        CHECK(second_order_ok(fn, {in}));
    };
    with(
        "gelu", [](const std::vector<Tensor>& in) { return xg::gelu(in[0]); }, x);
    with(
        "gelu tanh", [](const std::vector<Tensor>& in) { return xg::gelu(in[0], "tanh"); }, x);
    with(
        "pow 3", [](const std::vector<Tensor>& in) { return xg::pow(in[0], 3.0); }, x);
    with(
        "pow 0.5", [](const std::vector<Tensor>& in) { return xg::pow(in[0], 0.5); }, pos);
    with(
        "pow 0", [](const std::vector<Tensor>& in) { return xg::pow(in[0], 0.0); }, x);
    with(
        "elu", [](const std::vector<Tensor>& in) { return xg::elu(in[0], 0.7); }, x);
    with(
        "leaky_relu", [](const std::vector<Tensor>& in) { return xg::leaky_relu(in[0], 0.1); }, x);
    with(
        "hardtanh", [](const std::vector<Tensor>& in) { return xg::hardtanh(in[0], -1.2, 1.1); },
        x);
    with(
        "softplus", [](const std::vector<Tensor>& in) { return xg::softplus(in[0], 2.0, 3.0); }, x);
    with(
        "clamp", [](const std::vector<Tensor>& in) { return xg::clamp(in[0], -0.8, 0.9); }, x);
    with(
        "x + c", [](const std::vector<Tensor>& in) { return (in[0] + 2.0) * in[0]; }, x);
    with(
        "x - c", [](const std::vector<Tensor>& in) { return (in[0] - 2.0) * in[0]; }, x);
    with(
        "c - x", [](const std::vector<Tensor>& in) { return (2.0 - in[0]) * in[0]; }, x);
    with(
        "x * c", [](const std::vector<Tensor>& in) { return (in[0] * 3.0) * in[0]; }, x);
    with(
        "x / c", [](const std::vector<Tensor>& in) { return (in[0] / 3.0) * in[0]; }, x);
    with(
        "c / x", [](const std::vector<Tensor>& in) { return 3.0 / in[0]; }, pos);
}

TEST_CASE("gradgradcheck: binary ops with broadcasting") {
    const Tensor a = test::away_from_kinks({2, 3}, 11);
    const Tensor row = test::positive64({3}, 0.5, 12);
    const Tensor col = test::away_from_kinks({2, 1}, 13);
    for (const Tensor& b : {row, col}) {
        CHECK(second_order_ok([](const std::vector<Tensor>& in) { return in[0] + in[1]; }, {a, b}));
        CHECK(second_order_ok([](const std::vector<Tensor>& in) { return in[0] - in[1]; }, {a, b}));
        CHECK(second_order_ok([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {a, b}));
        CHECK(
            second_order_ok([](const std::vector<Tensor>& in) { return in[0] / in[1]; }, {a, row}));
        CHECK(second_order_ok(
            [](const std::vector<Tensor>& in) { return xg::maximum(in[0], in[1]) * in[0]; },
            {a, b}));
        CHECK(second_order_ok(
            [](const std::vector<Tensor>& in) { return xg::minimum(in[0], in[1]) * in[1]; },
            {a, b}));
    }
}

TEST_CASE("gradgradcheck: matmul in every promotion, linear") {
    auto mm = [](const std::vector<Tensor>& in) { return xg::matmul(in[0], in[1]); };
    CHECK(second_order_ok(mm, {test::randn64({2, 3}, 1), test::randn64({3, 4}, 2)}));
    CHECK(second_order_ok(mm, {test::randn64({2, 2, 3}, 3), test::randn64({3, 2}, 4)}));
    CHECK(second_order_ok(mm, {test::randn64({2, 1, 2, 3}, 5), test::randn64({3, 3, 2}, 6)}));
    CHECK(second_order_ok(mm, {test::randn64({3}, 7), test::randn64({3, 2}, 8)}));
    CHECK(second_order_ok(mm, {test::randn64({2, 3}, 9), test::randn64({3}, 10)}));
    CHECK(second_order_ok(mm, {test::randn64({3}, 11), test::randn64({2, 3, 2}, 12)}));
    CHECK(second_order_ok(mm, {test::randn64({3}, 13), test::randn64({3}, 14)}));
    auto lin = [](const std::vector<Tensor>& in) { return xg::linear(in[0], in[1], in[2]); };
    CHECK(second_order_ok(
        lin, {test::randn64({2, 2, 3}, 15), test::randn64({4, 3}, 16), test::randn64({4}, 17)}));
    CHECK(second_order_ok([](const std::vector<Tensor>& in) { return xg::linear(in[0], in[1]); },
                          {test::randn64({2, 3}, 18), test::randn64({4, 3}, 19)}));
}

TEST_CASE("gradgradcheck: reductions, softmax and shape ops") {
    const Tensor x = test::randn64({2, 3, 2}, 21);
    auto fns = std::vector<std::pair<const char*, Fn>>{
        {"sum", [](const std::vector<Tensor>& in) { return xg::sum(in[0] * in[0]); }},
        {"sum dims",
         [](const std::vector<Tensor>& in) {
             return xg::sum(in[0] * in[0], {0, 2});
         }},
        {"mean keepdim",
         [](const std::vector<Tensor>& in) { return xg::mean(in[0] * in[0], {1}, true); }},
        {"softmax", [](const std::vector<Tensor>& in) { return xg::softmax(in[0], 1); }},
        {"softmax last", [](const std::vector<Tensor>& in) { return xg::softmax(in[0], -1); }},
        {"log_softmax", [](const std::vector<Tensor>& in) { return xg::log_softmax(in[0], 0); }},
        {"reshape",
         [](const std::vector<Tensor>& in) {
             return xg::reshape(in[0] * in[0], {3, 4});
         }},
        {"transpose",
         [](const std::vector<Tensor>& in) { return xg::transpose(in[0] * in[0], 0, 2); }},
        {"permute",
         [](const std::vector<Tensor>& in) {
             return xg::permute(in[0] * in[0], {2, 0, 1});
         }},
        {"unsqueeze squeeze",
         [](const std::vector<Tensor>& in) {
             return xg::squeeze(xg::unsqueeze(in[0] * in[0], 1), 1);
         }},
        {"cat",
         [](const std::vector<Tensor>& in) {
             return xg::cat({in[0] * in[0], xg::exp(in[0])}, 1);
         }},
        {"clone", [](const std::vector<Tensor>& in) { return (in[0] * in[0]).clone(); }},
    };
    for (const auto& [name, fn] : fns) {
        const std::string label = name;
        INFO(label);
        CHECK(second_order_ok(fn, {x}));
    }
}

TEST_CASE("second derivatives across a dtype conversion") {
    // Finite differences cannot see through float32's rounding: by hand.
    // y = sum(x64^3) for float32 x: dy/dx = 3 x^2 (float32), d2y/dx2 = 6 x.
    Tensor x = test::f32({1.5f, -2.0f}, true);
    Tensor y = xg::sum(xg::pow(x.to(xg::kFloat64), 3.0));
    Tensor d1 = xg::autograd::grad({y}, {x}, {}, std::nullopt, true)[0];
    CHECK(d1.dtype() == xg::kFloat32);
    CHECK_VALUES(d1, (xt::xarray<double>{6.75, 12.0}));
    Tensor d2 = xg::autograd::grad({xg::sum(d1)}, {x})[0];
    CHECK_VALUES(d2, (xt::xarray<double>{9.0, -12.0}));
}

TEST_CASE("gradgradcheck: dropout, the fused feed-forward op, layer_norm, mse_loss") {
    const Tensor h = test::away_from_kinks({3, 4}, 31), v = test::randn64({3, 4}, 32);
    // Each evaluation draws the same mask: the seed is set inside fn.
    CHECK(second_order_ok(
        [](const std::vector<Tensor>& in) {
            xg::manual_seed(5);
            return xg::dropout(in[0] * in[0], 0.4, true);
        },
        {h}));
    for (auto act :
         {xg::FusedActivation::ReLU, xg::FusedActivation::GELU, xg::FusedActivation::GELUTanh,
          xg::FusedActivation::Sigmoid, xg::FusedActivation::SiLU, xg::FusedActivation::Tanh,
          xg::FusedActivation::Identity}) {
        INFO(static_cast<int>(act));
        for (double p : {0.0, 0.5}) {
            CHECK(second_order_ok(
                [act, p](const std::vector<Tensor>& in) {
                    xg::manual_seed(6);
                    return xg::activation_dropout(in[0], in[1], act, p, true);
                },
                {h, v}));
            CHECK(second_order_ok(
                [act, p](const std::vector<Tensor>& in) {
                    xg::manual_seed(6);
                    return xg::activation_dropout(in[0], Tensor(), act, p, true) * in[0];
                },
                {h}));
        }
    }
    CHECK(second_order_ok(
        [](const std::vector<Tensor>& in) { return xg::layer_norm(in[0], {4}, in[1], in[2]); },
        {test::randn64({2, 4}, 33), test::randn64({4}, 34), test::randn64({4}, 35)}));
    CHECK(second_order_ok(
        [](const std::vector<Tensor>& in) {
            return xg::layer_norm(in[0], {2, 3});
        },
        {test::randn64({2, 2, 3}, 36)}));
    for (const char* reduction : {"mean", "sum", "none"}) {
        INFO(reduction);
        CHECK(second_order_ok(
            [reduction](const std::vector<Tensor>& in) {
                return xg::mse_loss(in[0] * in[0], in[1], reduction);
            },
            {test::randn64({2, 3}, 37), test::randn64({2, 3}, 38)}));
    }
}

TEST_CASE("third order: the derivative of a recorded second derivative") {
    // f = sum(x^4 / 12): f' = x^3 / 3, f'' = x^2, f''' = 2 x.
    Tensor x = test::f64({1.0, -2.0}, true);
    Tensor f = xg::sum(xg::pow(x, 4.0) / 12.0);
    Tensor d1 = xg::autograd::grad({f}, {x}, {}, std::nullopt, true)[0];
    Tensor d2 = xg::autograd::grad({xg::sum(d1)}, {x}, {}, std::nullopt, true)[0];
    Tensor d3 = xg::autograd::grad({xg::sum(d2)}, {x})[0];
    CHECK_VALUES(d2, (xt::xarray<double>{1.0, 4.0}));
    CHECK_VALUES(d3, (xt::xarray<double>{2.0, -4.0}));
}

}  // namespace core_test_double_backward
