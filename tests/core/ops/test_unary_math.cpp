// The unary math ops of elementwise_rules.hpp's "more unary math" rows against
// PyTorch 1.13 (gen_unary_math.py): values and gradients in float64 and float32,
// the special values (+-inf, NaN, -0.0, outside the domain), float64 gradchecks.
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xadapt.hpp>

#include "core/reference/unary_math_values.hpp"
#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_unary_math {

namespace {

using Op = std::function<xg::Tensor(const xg::Tensor&, const std::vector<double>&)>;

const std::map<std::string, Op>& ops() {
    static const std::map<std::string, Op> table = {
        {"rsqrt", [](const xg::Tensor& x, const auto&) { return xg::rsqrt(x); }},
        {"reciprocal", [](const xg::Tensor& x, const auto&) { return xg::reciprocal(x); }},
        {"square", [](const xg::Tensor& x, const auto&) { return xg::square(x); }},
        {"log1p", [](const xg::Tensor& x, const auto&) { return xg::log1p(x); }},
        {"expm1", [](const xg::Tensor& x, const auto&) { return xg::expm1(x); }},
        {"sin", [](const xg::Tensor& x, const auto&) { return xg::sin(x); }},
        {"cos", [](const xg::Tensor& x, const auto&) { return xg::cos(x); }},
        {"sign", [](const xg::Tensor& x, const auto&) { return xg::sign(x); }},
        {"selu", [](const xg::Tensor& x, const auto&) { return xg::selu(x); }},
        {"mish", [](const xg::Tensor& x, const auto&) { return xg::mish(x); }},
        {"logsigmoid", [](const xg::Tensor& x, const auto&) { return xg::logsigmoid(x); }},
        {"erf", [](const xg::Tensor& x, const auto&) { return xg::erf(x); }},
        {"softplus",
         [](const xg::Tensor& x, const auto& p) { return xg::softplus(x, p[0], p[1]); }},
        {"leaky_relu", [](const xg::Tensor& x, const auto& p) { return xg::leaky_relu(x, p[0]); }},
        {"elu", [](const xg::Tensor& x, const auto& p) { return xg::elu(x, p[0]); }},
        {"hardtanh",
         [](const xg::Tensor& x, const auto& p) { return xg::hardtanh(x, p[0], p[1]); }},
    };
    return table;
}

xt::xarray<double> array(const std::vector<double>& v) {
    xt::xarray<double> a = xt::adapt(v, {v.size()});
    return a;
}

// Equal, or both NaN; a zero must carry the expected sign.
bool same(double actual, double expected) {
    if (std::isnan(expected)) return std::isnan(actual);
    return actual == expected && std::signbit(actual) == std::signbit(expected);
}

}  // namespace

TEST_CASE("unary math: values and gradients match PyTorch in float64 and float32") {
    for (const auto& c : unary_math_ref::kCases) {
        CAPTURE(c.op);
        CAPTURE(c.float32);
        const xg::Dtype dtype = c.float32 ? xg::kFloat32 : xg::kFloat64;
        xg::Tensor x = xg::tensor(array(c.input)).to(dtype).requires_grad_(true);
        xg::Tensor y = ops().at(c.op)(x, c.params);
        xg::sum(y * xg::tensor(array(c.upstream)).to(dtype)).backward();
        // A few ulps: PyTorch's own vectorised and scalar loops differ by that much.
        const double tolerance = c.float32 ? 2e-6 : 1e-14;
        CHECK(test::rel_error(test::values(y), array(c.output)) <= tolerance);
        CHECK(test::rel_error(test::values(x.grad()), array(c.grad)) <= tolerance);
    }
}

TEST_CASE("unary math: infinities, NaN, signed zeros and out-of-domain inputs as PyTorch") {
    for (const auto& s : unary_math_ref::kSpecials) {
        CAPTURE(s.op);
        xg::Tensor x = xg::tensor(array(s.input)).requires_grad_(true);
        xg::Tensor y = ops().at(s.op)(x, s.params);
        xg::sum(y).backward();
        auto out = test::values(y), grad = test::values(x.grad());
        for (std::size_t i = 0; i < s.input.size(); ++i) {
            CAPTURE(s.input[i]);
            CHECK(same(out(i), s.output[i]));
            CHECK(same(grad(i), s.grad[i]));
        }
    }
}

TEST_CASE("unary math: float64 gradchecks away from kinks, node names, defaults") {
    for (const auto& entry : ops()) {
        const std::string& name = entry.first;  // not a structured binding: lambdas capture it
        const Op& op = entry.second;
        CAPTURE(name);
        std::vector<double> params;
        if (name == "softplus") params = {2.0, 5.0};
        if (name == "leaky_relu" || name == "elu") params = {0.3};
        if (name == "hardtanh") params = {-0.7, 0.9};
        // Inside every domain and off every kink: 0.3 + |randn| (and its negative half).
        xg::Tensor x = xg::abs(test::randn64({2, 5}, 3)) + 0.3;
        if (name != "rsqrt" && name != "log1p") x = x * test::f64({{1.0, -1.0, 1.0, -1.0, 1.0}});
        if (name == "sign") continue;  // piecewise constant: its gradient is 0, checked above
        CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return op(in[0], params); },
                              {x.detach()}));
    }
    xg::Tensor x = test::f64({-2.0, 0.5}).requires_grad_(true);
    CHECK(xg::square(x).grad_fn_name() == "PowBackward");
    CHECK(xg::selu(x).grad_fn_name() == "EluBackward");
    CHECK(xg::mish(x).grad_fn_name() == "MishBackward");
    CHECK(test::values(xg::leaky_relu(x)) == xt::xarray<double>{-0.02, 0.5});
    CHECK(test::values(xg::hardtanh(x)) == xt::xarray<double>{-1.0, 0.5});
    CHECK(test::values(xg::softplus(test::f64({30.0}))) == xt::xarray<double>{30.0});
    CHECK_THROWS_WITH_AS(xg::hardtanh(x, 1.0, -1.0),
                         "hardtanh: expected min_val <= max_val (got 1 and -1)", xg::Error);
}

}  // namespace core_ops_test_unary_math
