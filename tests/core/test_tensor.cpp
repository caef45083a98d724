// Tests for xg::Tensor itself (core/src/tensor.cpp, core/src/random.cpp): factories,
// randomness, inspection, storage sharing, dtype conversion and autograd metadata.
#include <cmath>
#include <cstdint>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_tensor {

using xg::Shape;
using xg::Tensor;

TEST_CASE("tensor() keeps values, shape and the dtype of its element type") {
    Tensor f = xg::tensor<float>(xt::xarray<float>{{1, 2, 3}, {4, 5, 6}});
    CHECK(f.dtype() == xg::kFloat32);
    CHECK(f.shape() == Shape{2, 3});
    CHECK(f.dim() == 2);
    CHECK(f.numel() == 6);
    CHECK_VALUES(f, (xt::xarray<double>{{1, 2, 3}, {4, 5, 6}}));
    CHECK_FALSE(f.requires_grad());

    Tensor d = xg::tensor<double>(xt::xarray<double>{0.5, -1.25}, true);
    CHECK(d.dtype() == xg::kFloat64);
    CHECK(d.requires_grad());
    CHECK(d.data<double>()(1) == -1.25);

    Tensor i = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{7, -3, 0});
    CHECK(i.dtype() == xg::kInt64);
    CHECK(i.data<std::int64_t>()(0) == 7);
}

TEST_CASE("a 0-d tensor has shape [], one element and an item") {
    Tensor s = xg::tensor<double>(xt::xarray<double>(2.5));
    CHECK(s.shape() == Shape{});
    CHECK(s.dim() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.item<double>() == 2.5);
}

TEST_CASE("zeros, ones, full and empty honour shape and dtype") {
    Tensor z = xg::zeros({2, 3});
    CHECK(z.dtype() == xg::kFloat32);  // float32 by default, like torch
    CHECK(z.shape() == Shape{2, 3});
    CHECK_VALUES(z, xt::zeros<double>({2, 3}));

    Tensor o = xg::ones({4}, xg::kFloat64);
    CHECK(o.dtype() == xg::kFloat64);
    CHECK_VALUES(o, xt::ones<double>({4}));

    Tensor f = xg::full({3, 1, 2}, -1.5, xg::kFloat64);
    CHECK(f.shape() == Shape{3, 1, 2});
    CHECK_VALUES(f, xt::xarray<double>(xt::ones<double>({3, 1, 2}) * -1.5));

    Tensor fi = xg::full({2}, 7.0, xg::kInt64);
    CHECK(fi.dtype() == xg::kInt64);
    CHECK_VALUES(fi, (xt::xarray<double>{7, 7}));

    Tensor e = xg::empty({5, 2}, xg::kFloat64);
    CHECK(e.shape() == Shape{5, 2});
    CHECK(e.dtype() == xg::kFloat64);
    CHECK(e.numel() == 10);

    CHECK(xg::zeros({}).shape() == Shape{});
    CHECK(xg::zeros({}).numel() == 1);
    CHECK(xg::zeros({0, 3}).numel() == 0);
}

TEST_CASE("arange counts from 0 to n-1 in the requested dtype") {
    Tensor a = xg::arange(5);
    CHECK(a.dtype() == xg::kInt64);  // int64 by default, like torch.arange(5)
    CHECK(a.shape() == Shape{5});
    CHECK_VALUES(a, (xt::xarray<double>{0, 1, 2, 3, 4}));
    Tensor f = xg::arange(3, xg::kFloat32);
    CHECK(f.dtype() == xg::kFloat32);
    CHECK_VALUES(f, (xt::xarray<double>{0, 1, 2}));
}

TEST_CASE("randn draws standard normals") {
    xg::manual_seed(0);
    Tensor r = xg::randn({200, 100}, xg::kFloat64);
    CHECK(r.shape() == Shape{200, 100});
    CHECK(r.dtype() == xg::kFloat64);
    auto v = test::values(r);
    double m = xt::mean(v)();
    double sd = std::sqrt(xt::mean(xt::square(v - m))());
    // 20000 draws: the standard error of the mean is 0.007.
    CHECK(std::abs(m) < 0.05);
    CHECK(std::abs(sd - 1.0) < 0.05);
    CHECK(xt::amin(v)() < -2.5);  // really normal, not uniform on a short interval
    CHECK(xg::randn({3}).dtype() == xg::kFloat32);
}

TEST_CASE("rand draws uniforms in the half-open unit interval") {
    xg::manual_seed(1);
    auto v = test::values(xg::rand({10000}, xg::kFloat64));
    CHECK(xt::amin(v)() >= 0.0);
    CHECK(xt::amax(v)() < 1.0);
    CHECK(std::abs(xt::mean(v)() - 0.5) < 0.02);
    CHECK(xt::amax(v)() > 0.99);
    CHECK(xt::amin(v)() < 0.01);
}

TEST_CASE("randint draws int64 values from low up to high - 1 and reaches both ends") {
    xg::manual_seed(2);
    Tensor r = xg::randint(-2, 3, {1000});
    CHECK(r.dtype() == xg::kInt64);
    CHECK(r.shape() == Shape{1000});
    auto v = test::values(r);
    CHECK(xt::amin(v)() == -2);
    CHECK(xt::amax(v)() == 2);  // high is exclusive
}

TEST_CASE("manual_seed makes every random factory reproducible") {
    auto draw = [] {
        return std::vector<xt::xarray<double>>{test::values(xg::randn({8}, xg::kFloat64)),
                                               test::values(xg::rand({8}, xg::kFloat64)),
                                               test::values(xg::randint(0, 1000, {8}))};
    };
    xg::manual_seed(123);
    auto first = draw();
    auto second_draw = draw();  // the generator moves on without reseeding
    xg::manual_seed(123);
    auto again = draw();
    xg::manual_seed(124);
    auto other = draw();
    for (std::size_t k = 0; k < first.size(); ++k) {
        CAPTURE(k);
        CHECK(first[k] == again[k]);
        CHECK(first[k] != second_draw[k]);
        CHECK(first[k] != other[k]);
    }
}

TEST_CASE("inspection of an undefined tensor") {
    Tensor t;
    CHECK_FALSE(t.defined());
    CHECK(xg::zeros({1}).defined());
}

TEST_CASE("item converts the single element, and rejects more than one") {
    CHECK(xg::full({1, 1}, 3.0).item<float>() == 3.0f);
    CHECK(xg::full({1}, 2.5, xg::kFloat32).item<double>() == 2.5);
    CHECK(xg::full({}, 4.0, xg::kInt64).item<std::int64_t>() == 4);
    CHECK_THROWS_WITH_AS(xg::zeros({2, 3}).item<float>(),
                         "item: expected a tensor with one element (got shape [2, 3])", xg::Error);
}

TEST_CASE("data<T>() is the live storage, shared by every handle") {
    Tensor t = xg::zeros({2, 3});
    Tensor alias = t;  // a copy of the handle, not of the data
    t.data<float>()(1, 2) = 9.0f;
    CHECK(alias.data<float>()(1, 2) == 9.0f);
    CHECK(xg::sum(alias).item<float>() == 9.0f);  // ops see the write too
    CHECK_THROWS_WITH_AS(t.data<double>(), "data: expected dtype float64 (got float32)", xg::Error);
}

TEST_CASE("detach shares storage but drops history") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * 2.0;
    Tensor d = y.detach();
    CHECK_FALSE(d.requires_grad());
    CHECK(d.is_leaf());
    CHECK(d.grad_fn_name() == "");
    d.data<double>()(0) = 100.0;
    CHECK(y.data<double>()(0) == 100.0);  // same storage, as torch's detach
}

TEST_CASE("clone copies storage and keeps history") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor c = x.clone();
    c.data<double>()(0) = -7.0;
    CHECK(x.data<double>()(0) == 1.0);  // the original is untouched
    CHECK(c.requires_grad());
    CHECK_FALSE(c.is_leaf());
    xg::sum(c * c).backward();
    // d/dx sum(clone(x)^2) = 2 * clone values, which we edited to -7 and 2.
    CHECK_VALUES(x.grad(), (xt::xarray<double>{-14.0, 4.0}));
}

TEST_CASE("to(Dtype) converts values") {
    Tensor f = test::f32({1.5f, -2.25f, 3.0f});
    Tensor d = f.to(xg::kFloat64);
    CHECK(d.dtype() == xg::kFloat64);
    CHECK_VALUES(d, (xt::xarray<double>{1.5, -2.25, 3.0}));
    Tensor i = test::f64({1.7, -1.7, 2.0}).to(xg::kInt64);
    CHECK(i.dtype() == xg::kInt64);
    CHECK_VALUES(i, (xt::xarray<double>{1, -1, 2}));  // truncates toward zero, like torch
    Tensor back = xg::arange(3).to(xg::kFloat32);
    CHECK(back.dtype() == xg::kFloat32);
    CHECK_VALUES(back, (xt::xarray<double>{0, 1, 2}));
}

TEST_CASE("to(Dtype) is differentiable and the gradient comes back in the input dtype") {
    Tensor x = test::f32({1.0f, 2.0f, 3.0f}, true);
    Tensor y = x.to(xg::kFloat64);
    CHECK(y.requires_grad());
    xg::sum(y * y).backward();
    REQUIRE(x.grad().defined());
    CHECK(x.grad().dtype() == xg::kFloat32);
    CHECK_VALUES(x.grad(), (xt::xarray<double>{2.0, 4.0, 6.0}));
}

TEST_CASE("requires_grad_ switches a leaf on and off and returns the tensor") {
    Tensor x = xg::ones({2});
    CHECK_FALSE(x.requires_grad());
    Tensor& same = x.requires_grad_();
    CHECK(&same == &x);
    CHECK(x.requires_grad());
    x.requires_grad_(false);
    CHECK_FALSE(x.requires_grad());
    // Only floating-point tensors can require gradients, as in torch.
    Tensor i = xg::arange(3);
    CHECK_THROWS_AS(i.requires_grad_(true), xg::Error);
}

TEST_CASE("is_leaf: user tensors and results without grad are leaves") {
    Tensor x = xg::ones({2}, xg::kFloat64);
    x.requires_grad_();
    Tensor c = xg::ones({2}, xg::kFloat64);
    CHECK(x.is_leaf());
    CHECK(c.is_leaf());
    CHECK_FALSE((x * c).is_leaf());
    CHECK((c * c).is_leaf());  // no input requires grad: nothing recorded
    CHECK_FALSE((c * c).requires_grad());
}

TEST_CASE("grad_fn_name names the op that made a tensor") {
    Tensor a = test::f64({{1, 2}, {3, 4}}, true);
    Tensor b = test::f64({{5, 6}, {7, 8}});
    CHECK(a.grad_fn_name() == "");
    CHECK((a * b).grad_fn_name() == "MulBackward");
    CHECK((a + b).grad_fn_name() == "AddBackward");
    CHECK(xg::matmul(a, b).grad_fn_name() == "MatmulBackward");
    CHECK(xg::sum(a).grad_fn_name() == "SumBackward");
    CHECK((b * b).grad_fn_name() == "");
}

TEST_CASE("grad is undefined until a backward reaches the tensor") {
    Tensor x = test::f64({1.0, 2.0}, true);
    CHECK_FALSE(x.grad().defined());
    xg::sum(x).backward();
    CHECK(x.grad().defined());
    CHECK(x.grad().shape() == x.shape());
}

TEST_CASE("set_num_threads / get_num_threads round-trip") {
    int original = xg::get_num_threads();
    CHECK(original >= 1);
    xg::set_num_threads(2);
    CHECK(xg::get_num_threads() == 2);
    xg::set_num_threads(1);
    CHECK(xg::get_num_threads() == 1);
    xg::set_num_threads(original);
    CHECK(xg::get_num_threads() == original);
}

TEST_CASE("sizes() views the live shape; set_data swaps the values under every handle") {
    Tensor a = xg::zeros({2, 3});
    auto sizes = a.sizes();
    CHECK(std::vector<std::size_t>(sizes.begin(), sizes.end()) == std::vector<std::size_t>{2, 3});
    CHECK(xg::zeros({}).sizes().empty());

    Tensor param = xg::ones({2}).requires_grad_();
    Tensor alias = param;  // another handle, as a layer's member and the registry hold
    xg::sum(param * 3.0).backward();
    param.set_data(xg::full({4}, 2.0, xg::kFloat64));
    CHECK(alias.shape() == xg::Shape{4});
    CHECK(alias.dtype() == xg::kFloat64);
    CHECK(alias.data<double>()(3) == 2.0);
    CHECK(alias.requires_grad());
    CHECK(alias.grad().defined());  // the gradient is the tensor's, not the data's
    CHECK_THROWS_WITH_AS(param.set_data(Tensor()),
                         "set_data: expected a defined tensor (got an undefined one)", xg::Error);
}

TEST_CASE("creation: arange with a step, linspace, eye and the *_like factories") {
    CHECK(test::values(xg::arange(2, 11, 3)) == xt::xarray<double>{2, 5, 8});
    CHECK(test::values(xg::arange(5, 0, -2)) == xt::xarray<double>{5, 3, 1});
    CHECK(xg::arange(3, 3).numel() == 0);
    CHECK(xg::arange(0, 4, 1, xg::kFloat32).dtype() == xg::kFloat32);
    CHECK_THROWS_WITH_AS(xg::arange(0, 4, 0), "arange: expected a nonzero step (got 0)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::arange(0, 4, -1), doctest::Contains("arange: expected the step"),
                         xg::Error);
    CHECK(test::values(xg::linspace(0.0, 1.0, 5, xg::kFloat64)) ==
          xt::xarray<double>{0.0, 0.25, 0.5, 0.75, 1.0});
    // The second half counts back from the end, so the last value is exactly `end`.
    xt::xarray<double> tenths = test::values(xg::linspace(-1.0, 0.3, 14, xg::kFloat64));
    CHECK(tenths(13) == 0.3);
    CHECK(tenths(0) == -1.0);
    CHECK(xg::linspace(0.0, 1.0, 1).numel() == 1);
    CHECK(test::values(xg::eye(2, 3)) == xt::xarray<double>{{1, 0, 0}, {0, 1, 0}});
    CHECK(xg::eye(3).shape() == xg::Shape{3, 3});
    xg::Tensor like = test::f64({{1.0, 2.0}});
    CHECK(test::values(xg::full_like(like, 7.0)) == xt::xarray<double>{{7.0, 7.0}});
    CHECK(xg::empty_like(like).shape() == like.shape());
    CHECK(xg::randn_like(like).dtype() == xg::kFloat64);
    xt::xarray<double> u = test::values(xg::rand_like(xg::zeros({100})));
    CHECK(xt::amin(u)() >= 0.0);
    CHECK(xt::amax(u)() < 1.0);
}

}  // namespace core_test_tensor
