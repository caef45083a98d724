// Tests for xg::autograd::gradcheck (core/src/gradcheck.cpp) and make_result: every op
// test leans on gradcheck, so it must be shown to say "no" to a wrong backward.
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_gradcheck {

using xg::Tensor;

namespace {

// forward 2 * x, with a backward of `factor` * grad: correct only for factor 2.
Tensor scaled_by_two(const Tensor& x, double factor) {
    Tensor value;
    {
        xg::NoGradGuard no_grad;  // make_result records the node; the value is plain data
        value = x * 2.0;
    }
    return xg::autograd::make_result(value, "BadBackward", {x}, [factor](const Tensor& g) {
        return std::vector<Tensor>{g * factor};
    });
}

}  // namespace

TEST_CASE("gradcheck accepts correct gradients") {
    Tensor x = test::randn64({2, 3}, 10);
    Tensor y = test::randn64({2, 3}, 11);
    CHECK(
        test::gradcheck([](const std::vector<Tensor>& in) { return xg::sum(in[0] * in[0]); }, {x}));
    // Non-scalar outputs and two inputs: the whole Jacobian is compared.
    CHECK(test::gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[1]; }, {x, y}));
}

TEST_CASE("make_result builds a custom op whose backward the engine calls") {
    Tensor x = test::f64({1.0, -2.0}, true);
    Tensor y = scaled_by_two(x, 2.0);
    CHECK(y.grad_fn_name() == "BadBackward");
    CHECK_VALUES(y, (xt::xarray<double>{2.0, -4.0}));
    xg::sum(y).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{2.0, 2.0}));
    CHECK(test::gradcheck([](const std::vector<Tensor>& in) { return scaled_by_two(in[0], 2.0); },
                          {test::randn64({3})}));
}

TEST_CASE("make_result's braced inputs may be temporaries with a history, or undefined") {
    Tensor x = test::f64({1.0, -2.0}, true);
    Tensor w = test::f64({3.0, 4.0}, true);
    Tensor value;
    {
        xg::NoGradGuard no_grad;
        value = x * w * 2.0;
    }
    // The middle input is a temporary with a history of its own; the last is undefined.
    Tensor y =
        xg::autograd::make_result(value, "TwoInputs", {x, w * 2.0, Tensor()}, [&](const Tensor& g) {
            return std::vector<Tensor>{g * (w * 2.0).detach(), g * x.detach(), Tensor()};
        });
    REQUIRE(y.grad_fn()->next.size() == 3);
    CHECK(y.grad_fn()->next[0]->is_accumulator);
    CHECK(y.grad_fn()->next[1]->name == "MulBackward");
    CHECK(y.grad_fn()->next[2] == nullptr);
    xg::sum(y).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{6.0, 8.0}));   // d/dx of x * (2w)
    CHECK_VALUES(w.grad(), (xt::xarray<double>{2.0, -4.0}));  // through 2w: 2 x
}

TEST_CASE("gradcheck rejects a wrong backward") {
    Tensor x = test::randn64({3});
    CHECK_FALSE(test::gradcheck(
        [](const std::vector<Tensor>& in) {
            Tensor value;
            {
                xg::NoGradGuard no_grad;
                value = in[0] * 2.0;
            }
            return xg::autograd::make_result(value, "BadBackward", {in[0]}, [](const Tensor& g) {
                return std::vector<Tensor>{g * 3.0};
            });
        },
        {x}));
    // Off by a little more than the tolerance is still caught.
    CHECK_FALSE(test::gradcheck(
        [](const std::vector<Tensor>& in) { return scaled_by_two(in[0], 2.01); }, {x}));
}

TEST_CASE("gradcheck rejects a backward that is wrong for one input only") {
    Tensor a = test::randn64({2}, 3);
    Tensor b = test::randn64({2}, 4);
    auto half_wrong = [](const std::vector<Tensor>& in) {
        Tensor value;
        {
            xg::NoGradGuard no_grad;
            value = in[0] + in[1];
        }
        return xg::autograd::make_result(value, "HalfWrongBackward", {in[0], in[1]},
                                         [](const Tensor& g) {
                                             return std::vector<Tensor>{g, g * 0.0};
                                         });
    };
    CHECK_FALSE(test::gradcheck(half_wrong, {a, b}));
}

TEST_CASE("make_result records nothing when no input requires grad") {
    Tensor x = test::f64({1.0, 2.0});
    Tensor y = scaled_by_two(x, 2.0);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(y.grad_fn_name() == "");
}

TEST_CASE("make_result keeps its own copy of a name the caller rewrites") {
    // Nodes keep interned names: a caller's buffer may be rewritten, or come back
    // at the same address with other text, and each node keeps the name it got.
    Tensor x = test::f64({1.0, 2.0}).requires_grad_();
    std::string name = "CallerBufferNameBackward1";
    auto record = [&] {
        return xg::autograd::make_result(x.detach(), name.c_str(), {x},
                                         [](const Tensor& g) { return std::vector<Tensor>{g}; });
    };
    Tensor first = record();
    const char* address = name.c_str();
    name.back() = '2';  // same buffer, other text
    REQUIRE(name.c_str() == address);
    Tensor second = record();
    name = "Short";
    Tensor third = record();
    CHECK(first.grad_fn_name() == "CallerBufferNameBackward1");
    CHECK(second.grad_fn_name() == "CallerBufferNameBackward2");
    CHECK(third.grad_fn_name() == "Short");
    CHECK(first.grad_fn()->name.data() != address);
}

TEST_CASE("gradcheck takes float32 inputs and skips int64 ones") {
    // It differentiates float64 copies, so float32 inputs need no preparation, and
    // integer inputs (like class targets) are held fixed.
    Tensor x = test::f32({0.5f, -1.0f, 2.0f});
    Tensor idx = test::i64({2, 0, 1});
    CHECK(test::gradcheck(
        [](const std::vector<Tensor>& in) { return xg::exp(in[0]) * in[1].to(xg::kFloat64); },
        {x, idx}));
    CHECK_FALSE(x.requires_grad());  // the caller's tensors are left alone
}

}  // namespace core_test_gradcheck
