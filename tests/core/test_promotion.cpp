// Type promotion (result_type / promote_types in core/src/tensor.cpp, applied by
// the elementwise ops, where and the scalar overloads) against the dtypes and
// values PyTorch gives (gen_promotion.py), and gradients across a promotion.
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/promotion_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_promotion {

using xg::Tensor;
namespace ref = reference::promotion;

namespace {

xg::Dtype dtype_named(std::string_view name) {
    if (name == "bool") return xg::kBool;
    if (name == "int64") return xg::kInt64;
    if (name == "float32") return xg::kFloat32;
    REQUIRE(name == "float64");
    return xg::kFloat64;
}

// [1, 2, 3] / [4, 0, -2] (or the bool rows) in the operand's dtype, 0-d: the first.
Tensor operand(const ref::Operand& o, bool first) {
    const double* bools = first ? ref::a_bools : ref::b_bools;
    const double* numbers = first ? ref::a_values : ref::b_values;
    const double* chosen = std::string_view(o.dtype) == "bool" ? bools : numbers;
    xt::xarray<double> values = {chosen[0], chosen[1], chosen[2]};
    Tensor t = xg::tensor<double>(values).to(dtype_named(o.dtype));
    return o.zero_d ? xg::select(t, 0, 0) : t;
}

Tensor binary(std::string_view op, const Tensor& a, const Tensor& b) {
    if (op == "add") return a + b;
    if (op == "sub") return a - b;
    if (op == "mul") return a * b;
    if (op == "div") return a / b;
    if (op == "maximum") return xg::maximum(a, b);
    REQUIRE(op == "minimum");
    return xg::minimum(a, b);
}

// With a Python int: the integer overloads; with a float: the double ones.
template <class S>
Tensor with_scalar(std::string_view op, const Tensor& a, S b) {
    if (op == "add") return a + b;
    if (op == "sub") return a - b;
    if (op == "mul") return a * b;
    REQUIRE(op == "div");
    return a / b;
}

Tensor unary(std::string_view op, const Tensor& a) {
    if (op == "neg") return -a;
    if (op == "abs") return xg::abs(a);
    if (op == "sign") return xg::sign(a);
    if (op == "relu") return xg::relu(a);
    if (op == "square") return xg::square(a);
    if (op == "exp") return xg::exp(a);
    if (op == "sigmoid") return xg::sigmoid(a);
    if (op == "sqrt") return xg::sqrt(a);
    if (op == "clamp") return xg::clamp(a, 0.0, 2.0);
    REQUIRE(op == "clamp_fractional");
    return xg::clamp(a, 0.5, 2.5);
}

Tensor compute(const ref::Case& c) {
    const Tensor a = operand(c.a, true);
    const std::string_view b = c.b.dtype;
    if (b.empty()) return unary(c.op, a);
    if (b == "int") return with_scalar(c.op, a, ref::int_scalar);
    if (b == "float") return with_scalar(c.op, a, ref::float_scalar);
    return binary(c.op, a, operand(c.b, false));
}

void check_case(const ref::Case& c) {
    CAPTURE(c.op);
    CAPTURE(c.a.dtype);
    CAPTURE(c.a.zero_d);
    CAPTURE(c.b.dtype);
    CAPTURE(c.b.zero_d);
    if (std::string_view(c.dtype) == "error") {
        CHECK_THROWS_AS(compute(c), xg::Error);
        return;
    }
    const Tensor out = compute(c);
    CHECK(xg::dtype_name(out.dtype()) == std::string(c.dtype));
    const xt::xarray<double> actual = test::values(out);
    REQUIRE(actual.size() == std::size_t(c.count));
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double got = actual.data()[i], want = c.values[i];
        CAPTURE(i);
        CHECK((std::isnan(want) ? std::isnan(got)
                                : got == want || got == doctest::Approx(want).epsilon(1e-7)));
    }
}

}  // namespace

TEST_CASE("binary ops and scalars promote as PyTorch's, for every pair of dtypes") {
    for (const ref::Case& c : ref::binary_cases) check_case(c);
}

TEST_CASE("unary ops keep or promote an integer or bool tensor's dtype as PyTorch's") {
    for (const ref::Case& c : ref::unary_cases) check_case(c);
}

TEST_CASE(
    "promote_types climbs bool < int64 < float32 < float64; result_type lets 0-d "
    "tensors decide only with a higher category") {
    CHECK(xg::promote_types(xg::kBool, xg::kInt64) == xg::kInt64);
    CHECK(xg::promote_types(xg::kFloat64, xg::kInt64) == xg::kFloat64);
    CHECK(xg::promote_types(xg::kFloat32, xg::kFloat64) == xg::kFloat64);
    CHECK(xg::promote_types(xg::kBool, xg::kBool) == xg::kBool);
    const Tensor f = xg::zeros({2}), d0 = xg::zeros({}, xg::kFloat64),
                 i = xg::zeros({2}, xg::kInt64);
    CHECK(xg::result_type(f, d0) == xg::kFloat32);  // same category: the dims win
    CHECK(xg::result_type(d0, i) == xg::kFloat64);  // higher category: the 0-d one wins
    CHECK(xg::result_type(d0, xg::zeros({}, xg::kInt64)) == xg::kFloat64);
    CHECK_THROWS_WITH_AS(xg::result_type(f, Tensor()),
                         "result_type: expected defined tensors (got an undefined one)", xg::Error);
}

TEST_CASE("gradients flow back across a promotion, in each operand's own dtype") {
    Tensor a = xg::tensor<float>(xt::xarray<float>{1.0f, 2.0f}, true);
    Tensor b = xg::tensor<double>(xt::xarray<double>{3.0, 4.0}, true);
    Tensor out = a * b;
    CHECK(out.dtype() == xg::kFloat64);
    xg::sum(out).backward();
    CHECK(a.grad().dtype() == xg::kFloat32);
    CHECK(b.grad().dtype() == xg::kFloat64);
    CHECK_VALUES(a.grad(), (xt::xarray<double>{3, 4}));
    CHECK_VALUES(b.grad(), (xt::xarray<double>{1, 2}));

    // An int64 tensor (which cannot require grad) with a float64 one: the float
    // side gets its gradient.
    Tensor w = test::f64({0.5, -1.0}, true);
    xg::sum(w * xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{2, 3})).backward();
    CHECK_VALUES(w.grad(), (xt::xarray<double>{2, 3}));
    // float32 constants (exact in float64) meet float64 inputs: the gradcheck is exact.
    const Tensor half = xg::full({3}, 0.5), three = xg::full({}, 3.0);
    CHECK(
        test::gradcheck([&](const std::vector<Tensor>& in) { return in[0] * half + in[1] * three; },
                        {test::randn64({3}), test::randn64({3}, 1)}));
}

TEST_CASE("where promotes its two value operands") {
    Tensor mask = xg::tensor<bool>(xt::xarray<bool>{true, false});
    Tensor picked = xg::where(mask, xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{1, 2}),
                              xg::full({2}, 0.5));
    CHECK(picked.dtype() == xg::kFloat32);
    CHECK_VALUES(picked, (xt::xarray<double>{1, 0.5}));
    CHECK(xg::where(mask, xg::zeros({2}), xg::ones({2}, xg::kFloat64)).dtype() == xg::kFloat64);
}

TEST_CASE("integer arithmetic stays exact beyond float precision") {
    const std::int64_t big = (std::int64_t{1} << 53) + 1;
    Tensor x = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{big});
    CHECK((x + 2).data<std::int64_t>()(0) == big + 2);
    CHECK((x * 1).data<std::int64_t>()(0) == big);
    CHECK((x - x).data<std::int64_t>()(0) == 0);
    CHECK((3 - x).data<std::int64_t>()(0) == 3 - big);
    CHECK_THROWS_WITH_AS(xg::ones({2}, xg::kBool) - 1,
                         "sub: subtraction with a bool tensor is not supported (use logical_not to "
                         "invert a mask)",
                         xg::Error);
}

TEST_CASE("sum of int64 or bool stays int64 (bools count), as PyTorch's; mean refuses them") {
    Tensor i = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{{1, 2, 3}, {4, 5, 6}});
    Tensor total = xg::sum(i);
    CHECK(total.dtype() == xg::kInt64);
    CHECK(total.item<std::int64_t>() == 21);
    Tensor rows = xg::sum(i, {1});
    CHECK(rows.dtype() == xg::kInt64);
    CHECK_VALUES(rows, (xt::xarray<double>{6, 15}));
    CHECK(xg::sum(i, {0}, true).shape() == xg::Shape{1, 3});
    Tensor flags = xg::tensor<bool>(xt::xarray<bool>{{true, false, true}, {true, true, true}});
    CHECK_VALUES(xg::sum(flags, {-1}), (xt::xarray<double>{2, 3}));
    CHECK(xg::sum(flags).dtype() == xg::kInt64);
    CHECK_THROWS_WITH_AS(
        xg::mean(i),
        "mean: expected a floating-point tensor (got int64); convert it with to() first",
        xg::Error);
}

}  // namespace core_test_promotion
