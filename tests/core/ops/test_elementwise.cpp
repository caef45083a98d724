// Tests for the elementwise ops (core/ops/elementwise.cpp): forward values, a float64
// gradcheck for every op, broadcasting, kinks, dropout and error messages; and the
// raw-memory kernels against the unfused xtensor expressions they replaced, in
// float32 and float64 on arrays large enough to go through the buffer cache, with
// gradients written over grad_output only when nobody else can see it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "core/reference/reference_values.hpp"
#include "dropout_mask.hpp"
#include "helpers.hpp"
#include "internal.hpp"  // TensorImpl: which buffer a tensor holds

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_elementwise {

using xg::Tensor;
using In = std::vector<Tensor>;

TEST_CASE("a row broadcast along leading dims, from either side, matches loops written out") {
    // Shapes where one operand repeats along the other's leading dims (the raw
    // loop) and ones where it does not (the general path), both orders.
    const std::vector<std::pair<xg::Shape, xg::Shape>> pairs = {
        {{2, 3}, {3}},       {{3}, {2, 3}},       {{2, 3}, {1, 3}}, {{4, 2, 3}, {2, 3}},
        {{4, 2, 3}, {1, 3}}, {{2, 3}, {1, 1, 3}}, {{2, 1}, {1, 3}}, {{0, 3}, {3}},
        {{2, 3}, {1}},       {{1}, {2, 3}}};
    for (const auto& [sa, sb] : pairs) {
        const std::string a_shape = xg::shape_str(sa), b_shape = xg::shape_str(sb);
        CAPTURE(a_shape);  // CAPTURE's lambda cannot name a binding in clang 14
        CAPTURE(b_shape);
        Tensor a = xg::rand(sa, xg::kFloat64) + 0.5, b = xg::rand(sb, xg::kFloat64) + 0.5;
        xg::Shape out(std::max(sa.size(), sb.size()), 1);  // right-aligned, the larger size
        for (std::size_t d = 0; d < sa.size(); ++d) out[out.size() - sa.size() + d] = sa[d];
        for (std::size_t d = 0; d < sb.size(); ++d) {
            std::size_t& o = out[out.size() - sb.size() + d];
            o = sb[d] == 1 ? o : sb[d];
        }
        // Element (i...) of each operand under NumPy's rules: right-aligned, size-1 dims repeat.
        auto at = [&](const Tensor& t, const std::vector<std::size_t>& index) {
            const xg::Shape& shape = t.shape();
            std::size_t flat = 0;
            for (std::size_t d = 0; d < shape.size(); ++d) {
                std::size_t i = index[index.size() - shape.size() + d];
                flat = flat * shape[d] + (shape[d] == 1 ? 0 : i);
            }
            return t.data<double>().data()[flat];
        };
        xt::xarray<double> sum = xt::zeros<double>(out), diff = sum, prod = sum, quot = sum;
        std::vector<std::size_t> index(out.size(), 0);
        for (std::size_t flat = 0; flat < sum.size(); ++flat) {
            for (std::size_t d = out.size(), rest = flat; d-- > 0; rest /= out[d])
                index[d] = rest % out[d];
            double x = at(a, index), y = at(b, index);
            sum.data()[flat] = x + y;
            diff.data()[flat] = x - y;
            prod.data()[flat] = x * y;
            quot.data()[flat] = x / y;
        }
        CHECK(xg::add(a, b).shape() == out);
        CHECK(xg::mul(b, a).shape() == out);
        if (sum.size() == 0) continue;  // xt::allclose is undefined on empty arrays (UBSan)
        CHECK_VALUES(xg::add(a, b), sum);
        CHECK_VALUES(xg::sub(a, b), diff);
        CHECK_VALUES(xg::mul(a, b), prod);
        CHECK_VALUES(xg::div(a, b), quot);
    }
}

TEST_CASE("binary ops broadcast like NumPy") {
    Tensor a = test::f64({{1, 2, 3}, {4, 5, 6}});
    Tensor b = test::f64({10, 20, 30});
    CHECK_VALUES(a + b, (xt::xarray<double>{{11, 22, 33}, {14, 25, 36}}));
    CHECK_VALUES(xg::sub(a, b), (xt::xarray<double>{{-9, -18, -27}, {-6, -15, -24}}));
    CHECK_VALUES(b - a, (xt::xarray<double>{{9, 18, 27}, {6, 15, 24}}));

    Tensor col = test::f64(test::column({1, 2}));
    Tensor row = test::f64({{3, 4, 5}});
    CHECK_VALUES(col * row, (xt::xarray<double>{{3, 4, 5}, {6, 8, 10}}));  // outer product

    // [4, 1, 3] / [2, 3] -> [4, 2, 3], checked against loops written out here.
    xt::xarray<double> nv = xt::arange<double>(1, 13);
    nv.reshape({4, 1, 3});
    Tensor n = test::f64(nv);
    xt::xarray<double> d = {{1, 2, 4}, {-1, -2, -4}};
    Tensor q = n / test::f64(d);
    REQUIRE(q.shape() == xg::Shape{4, 2, 3});
    xt::xarray<double> expected = xt::zeros<double>({4, 2, 3});
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 2; ++j)
            for (std::size_t k = 0; k < 3; ++k) expected(i, j, k) = double(3 * i + k + 1) / d(j, k);
    CHECK_VALUES(q, expected);
}

TEST_CASE("tensor-scalar and scalar-tensor arithmetic") {
    Tensor x = test::f64({1, 2, 4});
    CHECK_VALUES(x + 1.0, (xt::xarray<double>{2, 3, 5}));
    CHECK_VALUES(1.0 + x, (xt::xarray<double>{2, 3, 5}));
    CHECK_VALUES(x - 1.0, (xt::xarray<double>{0, 1, 3}));
    CHECK_VALUES(2.0 - x, (xt::xarray<double>{1, 0, -2}));
    CHECK_VALUES(xg::rsub(2.0, x), (xt::xarray<double>{1, 0, -2}));
    CHECK_VALUES(x * 3.0, (xt::xarray<double>{3, 6, 12}));
    CHECK_VALUES(3.0 * x, (xt::xarray<double>{3, 6, 12}));
    CHECK_VALUES(x / 2.0, (xt::xarray<double>{0.5, 1, 2}));
    CHECK_VALUES(2.0 / x, (xt::xarray<double>{2, 1, 0.5}));
    CHECK_VALUES(xg::rdiv(2.0, x), (xt::xarray<double>{2, 1, 0.5}));
    CHECK_VALUES(-x, (xt::xarray<double>{-1, -2, -4}));
    CHECK_VALUES(xg::neg(x), (xt::xarray<double>{-1, -2, -4}));
}

TEST_CASE("float32 stays float32, also with a double scalar") {
    Tensor x = test::f32({1.0f, 2.0f});
    CHECK((x + 1.5).dtype() == xg::kFloat32);
    CHECK((2.0 / x).dtype() == xg::kFloat32);
    CHECK((x * x).dtype() == xg::kFloat32);
    CHECK(xg::relu(x).dtype() == xg::kFloat32);
    CHECK_VALUES_TOL(xg::exp(x), (xt::xarray<double>{std::exp(1.0), std::exp(2.0)}), 1e-6, 1e-6);
}

TEST_CASE("broadcast gradients are summed back to each input's shape and dtype") {
    Tensor x = test::f32({{1, 2, 3}, {4, 5, 6}}, true);
    Tensor y = test::f32({10, 20, 30}, true);
    xg::sum(x * y).backward();
    CHECK(y.grad().dtype() == xg::kFloat32);
    CHECK(y.grad().shape() == xg::Shape{3});
    CHECK_VALUES(y.grad(), (xt::xarray<double>{5, 7, 9}));  // column sums of x
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{10, 20, 30}, {10, 20, 30}}));
}

TEST_CASE("unary ops with hand-computed values") {
    CHECK_VALUES(xg::relu(test::f64({-1, 0, 2})), (xt::xarray<double>{0, 0, 2}));
    CHECK_VALUES(xg::abs(test::f64({-1.5, 0, 2})), (xt::xarray<double>{1.5, 0, 2}));
    CHECK_VALUES(xg::exp(test::f64({0, 1})), (xt::xarray<double>{1, std::exp(1.0)}));
    CHECK_VALUES(xg::log(test::f64({1, std::exp(2.0)})), (xt::xarray<double>{0, 2}));
    CHECK_VALUES(xg::sqrt(test::f64({4, 9, 0.25})), (xt::xarray<double>{2, 3, 0.5}));
    CHECK_VALUES(xg::pow(test::f64({2, -3}), 3.0), (xt::xarray<double>{8, -27}));
    CHECK_VALUES(xg::pow(test::f64({4, 16}), 0.5), (xt::xarray<double>{2, 4}));
    CHECK_VALUES(xg::pow(test::f64({2, 4}), -1.0), (xt::xarray<double>{0.5, 0.25}));
    CHECK_VALUES(xg::sigmoid(test::f64({0})), (xt::xarray<double>{0.5}));
}

TEST_CASE("activations match PyTorch") {
    Tensor x = test::f64(ref::act_input);
    CHECK_VALUES(xg::gelu(x), ref::gelu_none);  // "none" is the default, as in torch
    CHECK_VALUES(xg::gelu(x, "none"), ref::gelu_none);
    CHECK_VALUES(xg::gelu(x, "tanh"), ref::gelu_tanh);
    CHECK_VALUES(xg::silu(x), ref::silu_out);
    CHECK_VALUES(xg::sigmoid(x), ref::sigmoid_out);
    CHECK_VALUES(xg::tanh(x), ref::tanh_out);
    // float32 goes through the same formulas.
    Tensor x32 = x.to(xg::kFloat32);
    CHECK_VALUES_TOL(xg::gelu(x32, "tanh"), ref::gelu_tanh, 1e-5, 1e-6);
    CHECK_VALUES_TOL(xg::silu(x32), ref::silu_out, 1e-5, 1e-6);
}

TEST_CASE("relu and abs have gradient exactly 0 at 0, as in PyTorch") {
    Tensor x = test::f64({-1.0, 0.0, 2.0}, true);
    xg::sum(xg::relu(x)).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{0, 0, 1}));
    Tensor y = test::f64({-1.0, 0.0, 2.0}, true);
    xg::sum(xg::abs(y)).backward();
    CHECK_VALUES(y.grad(), (xt::xarray<double>{-1, 0, 1}));
}

TEST_CASE("gradcheck: binary ops, broadcasting and scalars") {
    struct Row {
        const char* name;
        test::Fn fn;
        In inputs;
    };
    Tensor x23 = test::randn64({2, 3}, 1);
    Tensor y23 = test::randn64({2, 3}, 2);
    Tensor y3 = test::randn64({3}, 3);
    Tensor c21 = test::randn64({2, 1}, 4);
    Tensor r13 = test::randn64({1, 3}, 5);
    Tensor n413 = test::randn64({4, 1, 3}, 6);
    Tensor p23 = test::positive64({2, 3}, 0.5, 7);  // divisors away from 0
    Tensor p3 = test::positive64({3}, 0.5, 8);
    std::vector<Row> rows = {
        {"add", [](const In& in) { return in[0] + in[1]; }, {x23, y23}},
        {"add [2,3]+[3]", [](const In& in) { return in[0] + in[1]; }, {x23, y3}},
        {"add [3]+[2,3]", [](const In& in) { return xg::add(in[0], in[1]); }, {y3, x23}},
        {"sub", [](const In& in) { return in[0] - in[1]; }, {x23, y23}},
        {"sub [2,1]-[1,3]", [](const In& in) { return xg::sub(in[0], in[1]); }, {c21, r13}},
        {"mul", [](const In& in) { return in[0] * in[1]; }, {x23, y23}},
        {"mul [2,1]*[1,3]", [](const In& in) { return xg::mul(in[0], in[1]); }, {c21, r13}},
        {"mul x*x", [](const In& in) { return in[0] * in[0]; }, {x23}},
        {"div", [](const In& in) { return in[0] / in[1]; }, {x23, p23}},
        {"div [4,1,3]/[2,3]", [](const In& in) { return xg::div(in[0], in[1]); }, {n413, p23}},
        {"div [2,3]/[3]", [](const In& in) { return in[0] / in[1]; }, {x23, p3}},
        {"neg", [](const In& in) { return -in[0]; }, {x23}},
        {"x + 2", [](const In& in) { return in[0] + 2.0; }, {x23}},
        {"2 + x", [](const In& in) { return 2.0 + in[0]; }, {x23}},
        {"x - 2", [](const In& in) { return in[0] - 2.0; }, {x23}},
        {"2 - x", [](const In& in) { return 2.0 - in[0]; }, {x23}},
        {"x * 3", [](const In& in) { return in[0] * 3.0; }, {x23}},
        {"3 * x", [](const In& in) { return 3.0 * in[0]; }, {x23}},
        {"x / 4", [](const In& in) { return in[0] / 4.0; }, {x23}},
        {"2 / x", [](const In& in) { return 2.0 / in[0]; }, {p23}},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, row.inputs));
    }
}

TEST_CASE("gradcheck: unary ops") {
    struct Row {
        const char* name;
        test::Fn fn;
        Tensor input;
    };
    Tensor x = test::randn64({2, 3}, 20);
    // Kinked ops get inputs well away from 0.
    Tensor away = test::f64({{-1.2, 0.3, 2.0}, {0.7, -0.4, -2.2}});
    Tensor pos = test::positive64({2, 3}, 0.5, 21);
    std::vector<Row> rows = {
        {"relu", [](const In& in) { return xg::relu(in[0]); }, away},
        {"abs", [](const In& in) { return xg::abs(in[0]); }, away},
        {"gelu none", [](const In& in) { return xg::gelu(in[0], "none"); }, x},
        {"gelu tanh", [](const In& in) { return xg::gelu(in[0], "tanh"); }, x},
        {"sigmoid", [](const In& in) { return xg::sigmoid(in[0]); }, x},
        {"silu", [](const In& in) { return xg::silu(in[0]); }, x},
        {"tanh", [](const In& in) { return xg::tanh(in[0]); }, x},
        {"exp", [](const In& in) { return xg::exp(in[0]); }, x},
        {"log", [](const In& in) { return xg::log(in[0]); }, pos},
        {"sqrt", [](const In& in) { return xg::sqrt(in[0]); }, pos},
        {"pow 2", [](const In& in) { return xg::pow(in[0], 2.0); }, x},
        {"pow 3", [](const In& in) { return xg::pow(in[0], 3.0); }, x},
        {"pow 0.5", [](const In& in) { return xg::pow(in[0], 0.5); }, pos},
        {"pow -1.5", [](const In& in) { return xg::pow(in[0], -1.5); }, pos},
        {"dropout eval", [](const In& in) { return xg::dropout(in[0], 0.5, false); }, x},
        // Reseeding inside fn gives the same mask on every call, so the op is a
        // fixed linear map that gradcheck can differentiate.
        {"dropout train, fixed seed",
         [](const In& in) {
             xg::manual_seed(99);
             return xg::dropout(in[0], 0.4, true);
         },
         x},
        {"composite", [](const In& in) { return xg::exp(xg::tanh(in[0]) * 2.0) / 3.0; }, x},
    };
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(row.fn, {row.input}));
    }
}

TEST_CASE("dropout: eval mode and p = 0 are the identity, p = 1 zeroes") {
    Tensor x = test::randn64({3, 4}, 30);
    xg::manual_seed(0);
    CHECK_VALUES(xg::dropout(x, 0.5, false), test::values(x));
    CHECK_VALUES(xg::dropout(x, 0.0, true), test::values(x));
    CHECK_VALUES(xg::dropout(x, 1.0, true), xt::zeros<double>({3, 4}));
}

TEST_CASE("dropout in training zeroes about p and scales the rest by 1/(1-p)") {
    const double p = 0.3;
    Tensor x = test::positive64({100, 100}, 0.5, 31);  // no zeros in the input
    x.requires_grad_();
    xg::manual_seed(7);
    Tensor out = xg::dropout(x, p, true);
    auto xv = test::values(x);
    auto ov = test::values(out);
    auto zero = xt::equal(ov, 0.0);
    auto kept = xt::isclose(ov, xv / (1 - p), 1e-12);
    CHECK(xt::all(zero || kept));  // every element is dropped or scaled, nothing else
    double frac = double(xt::sum(xt::cast<int>(zero))()) / 10000.0;
    CHECK(frac == doctest::Approx(p).epsilon(0.1));  // 10000 draws: sd of frac ~ 0.005

    // The backward uses the same mask: grad = mask / (1 - p) = out / x.
    xg::sum(out).backward();
    CHECK_VALUES(x.grad(), xt::xarray<double>(ov / xv));

    // Reseeding reproduces the mask; another seed gives a different one.
    xg::manual_seed(7);
    CHECK_VALUES(xg::dropout(x, p, true), ov);
    xg::manual_seed(8);
    CHECK_FALSE(test::close(test::values(xg::dropout(x, p, true)), ov));
}

TEST_CASE("elementwise error messages") {
    Tensor a = xg::zeros({2, 3});
    Tensor b = xg::zeros({4});
    CHECK_THROWS_WITH_AS(a + b, "add: shapes [2, 3] and [4] are not broadcastable", xg::Error);
    CHECK_THROWS_WITH_AS(a - b, "sub: shapes [2, 3] and [4] are not broadcastable", xg::Error);
    CHECK_THROWS_WITH_AS(a * b, "mul: shapes [2, 3] and [4] are not broadcastable", xg::Error);
    CHECK_THROWS_WITH_AS(a / b, "div: shapes [2, 3] and [4] are not broadcastable", xg::Error);
    // Mixed dtypes promote (test_promotion.cpp); bool tensors have no sign to flip.
    CHECK_THROWS_WITH_AS(xg::relu(xg::ones({2}, xg::kBool)),
                         "relu: expected a numeric tensor (got bool)", xg::Error);
    CHECK_THROWS_WITH_AS(-xg::ones({2}, xg::kBool), "neg: expected a numeric tensor (got bool)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(a + Tensor(), "add: expected defined tensors (got an undefined one)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::gelu(a, "foo"),
                         "gelu: expected approximate 'none' or 'tanh' (got 'foo')", xg::Error);
    CHECK_THROWS_WITH_AS(xg::dropout(a, 1.5, true), "dropout: expected p in [0, 1] (got 1.5)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(xg::dropout(a, -0.5, false), "dropout: expected p in [0, 1] (got -0.5)",
                         xg::Error);
}

// ---- The kernels against the xtensor expressions they replaced ----

namespace {

struct Unary {
    std::string name;
    std::function<Tensor(const Tensor&)> op;
    // The xtensor expressions the kernels replaced: forward, and dx for (x, g).
    std::function<xt::xarray<double>(const xt::xarray<double>&)> forward;
    std::function<xt::xarray<double>(const xt::xarray<double>&, const xt::xarray<double>&)> grad;
    bool positive = false;
};

std::vector<Unary> unary_ops() {
    using A = xt::xarray<double>;
    const double k = std::numbers::sqrt2 * std::numbers::inv_sqrtpi, c = 0.044715;
    const double r2 = std::numbers::sqrt2 / 2,
                 isq = 0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2;
    auto sig = [](const A& a) { return A(1.0 / (1.0 + xt::exp(-a))); };
    return {
        {"relu", [](const Tensor& t) { return xg::relu(t); },
         [](const A& a) { return A(xt::maximum(a, 0.0)); },
         [](const A& a, const A& g) { return A(xt::where(a > 0.0, g, 0.0)); }},
        {"gelu", [](const Tensor& t) { return xg::gelu(t, "none"); },
         [=](const A& a) { return A(0.5 * a * (1.0 + xt::erf(a * r2))); },
         [=](const A& a, const A& g) {
             return A(g * (0.5 * (1.0 + xt::erf(a * r2)) + a * isq * xt::exp(-0.5 * a * a)));
         }},
        {"gelu tanh", [](const Tensor& t) { return xg::gelu(t, "tanh"); },
         [=](const A& a) { return A(0.5 * a * (1.0 + xt::tanh(k * (a + c * a * a * a)))); },
         [=](const A& a, const A& g) {
             A t = xt::tanh(k * (a + c * a * a * a));
             return A(g *
                      (0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * k * (1.0 + 3.0 * c * a * a)));
         }},
        {"sigmoid", [](const Tensor& t) { return xg::sigmoid(t); }, sig,
         [=](const A& a, const A& g) {
             A y = sig(a);
             return A(g * y * (1.0 - y));
         }},
        {"silu", [](const Tensor& t) { return xg::silu(t); },
         [=](const A& a) { return A(a * sig(a)); },
         [=](const A& a, const A& g) {
             A s = sig(a);
             return A(g * s * (1.0 + a * (1.0 - s)));
         }},
        {"tanh", [](const Tensor& t) { return xg::tanh(t); },
         [](const A& a) { return A(xt::tanh(a)); },
         [](const A& a, const A& g) {
             A y = xt::tanh(a);
             return A(g * (1.0 - y * y));
         }},
        {"exp", [](const Tensor& t) { return xg::exp(t); },
         [](const A& a) { return A(xt::exp(a)); },
         [](const A& a, const A& g) { return A(g * xt::exp(a)); }},
        {"abs", [](const Tensor& t) { return xg::abs(t); },
         [](const A& a) { return A(xt::abs(a)); },
         [](const A& a, const A& g) { return A(g * xt::sign(a)); }},
        {"pow 3", [](const Tensor& t) { return xg::pow(t, 3.0); },
         [](const A& a) { return A(a * a * a); },
         [](const A& a, const A& g) { return A(g * 3.0 * a * a); }},
        {"log", [](const Tensor& t) { return xg::log(t); },
         [](const A& a) { return A(xt::log(a)); }, [](const A& a, const A& g) { return A(g / a); },
         true},
        {"sqrt", [](const Tensor& t) { return xg::sqrt(t); },
         [](const A& a) { return A(xt::sqrt(a)); },
         [](const A& a, const A& g) { return A(g / (2.0 * xt::sqrt(a))); }, true},
    };
}

// Forward and backward of op against the float64 reference, in dtype T.
template <class T>
void check_unary(const Unary& u, double tol) {
    INFO(u.name, " in ", sizeof(T) == 4 ? "float32" : "float64");
    xt::xarray<T> xv =
        u.positive ? test::large_inputs<T>(1, T(0.25), T(3)) : test::large_inputs<T>(1);
    xt::xarray<T> wv = test::large_inputs<T>(2);
    Tensor x = xg::tensor<T>(xv, true);
    Tensor y = u.op(x);
    xg::sum(y * xg::tensor<T>(wv)).backward();  // grad_output = w
    xt::xarray<double> xd = xt::cast<double>(xv), wd = xt::cast<double>(wv);
    CHECK(test::rel_error(test::values(y), u.forward(xd)) <= tol);
    CHECK(test::rel_error(test::values(x.grad()), u.grad(xd, wd)) <= tol);
}

}  // namespace

TEST_CASE("unary kernels match the xtensor expressions they replaced") {
    for (const Unary& u : unary_ops()) {
        check_unary<float>(u, 1e-5);
        check_unary<double>(u, 1e-12);
    }
}

TEST_CASE("pow with exponent 0 has gradient 0") {
    Tensor x = xg::tensor<float>(test::large_inputs<float>(3), true);
    xg::sum(xg::pow(x, 0.0)).backward();
    CHECK(xt::all(xt::equal(x.grad().data<float>(), 0.0f)));
}

TEST_CASE("dropout keeps the documented counter-based mask and reuses it in backward") {
    for (double p : {0.1, 0.5}) {
        xt::xarray<float> xv = test::large_inputs<float>(4);
        xg::manual_seed(11);
        std::uint64_t key = xg::next_random_key();
        xg::manual_seed(11);
        Tensor x = xg::tensor<float>(xv, true);
        Tensor y = xg::dropout(x, p, true);
        xg::sum(y).backward();
        // mask[i] = half i % 2 of splitmix64(key + (i / 2) * golden) >= p * 2^32.
        const float scale = float(1.0 / (1.0 - p));
        const auto threshold = static_cast<std::uint64_t>(p * 4294967296.0);
        bool forward_ok = true, backward_ok = true;
        for (std::size_t i = 0; i < xv.size(); ++i) {
            std::uint64_t z = key + (i / 2) * 0x9e3779b97f4a7c15ULL;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            z ^= z >> 31;
            const std::uint64_t bits = i % 2 == 0 ? z & 0xffffffffu : z >> 32;
            float m = bits >= threshold ? scale : 0.0f;
            forward_ok = forward_ok && y.data<float>().data()[i] == xv.data()[i] * m;
            backward_ok = backward_ok && x.grad().data<float>().data()[i] == m;
        }
        CHECK(forward_ok);
        CHECK(backward_ok);
    }
}

TEST_CASE("a slice of the dropout mask is that part of the whole mask, at any start") {
    // Elements pair up on one hash (an even element and the odd one after it),
    // so slices that start or end inside a pair take the right half.
    const std::uint64_t key = 0x1234567890abcdefULL, threshold = xg::detail::dropout_threshold(0.3);
    std::vector<std::uint8_t> whole(4099), slice(4099);
    xg::detail::keep_mask(key, 0, whole.size(), threshold, whole.data());
    for (std::size_t first : {0, 1, 2, 3, 101, 4094}) {
        for (std::size_t n : {0, 1, 2, 3, 4, 5}) {
            CAPTURE(first);
            CAPTURE(n);
            std::fill(slice.begin(), slice.end(), std::uint8_t(7));
            xg::detail::keep_mask(key, first, n, threshold, slice.data());
            CHECK(std::equal(slice.begin(), slice.begin() + long(n), whole.begin() + long(first)));
            CHECK(slice[n] == 7);  // nothing written past the slice
        }
    }
    // About 1 - p of the elements survive (p = 0.3: 0.7 +- 0.0215 is 3 sigma at 4099).
    const double kept = double(std::count(whole.begin(), whole.end(), 1)) / double(whole.size());
    CHECK(std::abs(kept - 0.7) < 0.0215);
    // p = 0 keeps every element, p = 1 none.
    xg::detail::keep_mask(key, 0, whole.size(), xg::detail::dropout_threshold(0.0), whole.data());
    CHECK(std::count(whole.begin(), whole.end(), 1) == long(whole.size()));
    xg::detail::keep_mask(key, 0, whole.size(), xg::detail::dropout_threshold(1.0), whole.data());
    CHECK(std::count(whole.begin(), whole.end(), 0) == long(whole.size()));
}

TEST_CASE("mul of equal shapes matches the broadcasting rule, for either input alone") {
    xt::xarray<double> av = test::large_inputs<double>(5), bv = test::large_inputs<double>(6),
                       wv = test::large_inputs<double>(7);
    for (int needs = 1; needs <= 3; ++needs) {
        Tensor a = xg::tensor<double>(av, (needs & 1) != 0);
        Tensor b = xg::tensor<double>(bv, (needs & 2) != 0);
        Tensor y = a * b;
        CHECK(test::rel_error(test::values(y), av * bv) == 0.0);
        xg::sum(y * xg::tensor<double>(wv)).backward();
        if (needs & 1) CHECK(test::rel_error(test::values(a.grad()), wv * bv) == 0.0);
        if (needs & 2) CHECK(test::rel_error(test::values(b.grad()), wv * av) == 0.0);
    }
}

TEST_CASE("add and sub pass the gradient on without sharing one buffer between inputs") {
    xt::xarray<float> av = test::large_inputs<float>(8), wv = test::large_inputs<float>(9);
    Tensor a = xg::tensor<float>(av, true), b = xg::tensor<float>(av, true);
    Tensor w = xg::tensor<float>(wv);
    xg::sum((a + b) * w).backward();
    CHECK(test::rel_error(test::values(a.grad()), xt::cast<double>(wv)) == 0.0);
    CHECK(test::rel_error(test::values(b.grad()), xt::cast<double>(wv)) == 0.0);
    CHECK(a.grad().impl()->storage != b.grad().impl()->storage);

    Tensor c = xg::tensor<float>(av, true);
    xg::sum((c + c) * w).backward();  // both edges into one leaf accumulate
    CHECK(test::rel_error(test::values(c.grad()), 2.0 * xt::cast<double>(wv)) == 0.0);

    Tensor d = xg::tensor<float>(av, true), e = xg::tensor<float>(av, true);
    xg::sum((xg::tensor<float>(av) - e) * w).backward();
    xg::sum((d - xg::tensor<float>(av)) * w).backward();
    CHECK(test::rel_error(test::values(e.grad()), -xt::cast<double>(wv)) == 0.0);
    CHECK(test::rel_error(test::values(d.grad()), xt::cast<double>(wv)) == 0.0);
}

TEST_CASE("a gradient someone else holds is never overwritten") {
    xt::xarray<float> xv = test::large_inputs<float>(10), wv = test::large_inputs<float>(11);
    for (const Unary& u : unary_ops()) {
        if (u.positive) continue;
        INFO(u.name);
        Tensor x = xg::tensor<float>(xv, true);
        Tensor y = u.op(x);
        Tensor seen;
        auto handle = y.register_hook([&](const Tensor& g) { seen = g; });  // keeps grad_output
        y.retain_grad();
        xg::sum(y * xg::tensor<float>(wv)).backward();
        CHECK(test::rel_error(test::values(seen), xt::cast<double>(wv)) == 0.0);
        CHECK(test::rel_error(test::values(y.grad()), xt::cast<double>(wv)) == 0.0);
        handle.remove();
    }
    // Through dropout and mul as well, with retain_graph and a second backward.
    Tensor x = xg::tensor<float>(xv, true);
    Tensor y = xg::dropout(x * xg::tensor<float>(wv), 0.5, true);
    Tensor loss = xg::sum(y);
    loss.backward(Tensor(), true);
    xt::xarray<float> first = x.grad().data<float>();
    x.mutable_grad() = Tensor();
    loss.backward();
    CHECK(xt::all(xt::equal(x.grad().data<float>(), first)));
}

TEST_CASE("clamp, clamp_min, clamp_max, maximum, minimum: PyTorch's values and gradients") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    xg::Tensor x = test::f64({-2.0, -1.0, 0.5, 1.0, 3.0, nan}, true);
    xg::Tensor y = xg::clamp(x, -1.0, 1.0);
    xt::xarray<double> v = test::values(y);
    CHECK(v(0) == -1.0);
    CHECK(v(4) == 1.0);
    CHECK(std::isnan(v(5)));
    xg::sum(y).backward();
    // g flows where min <= x <= max, the bounds included; not at NaN.
    CHECK(test::values(x.grad()) == xt::xarray<double>{0, 1, 1, 1, 0, 0});
    CHECK(y.grad_fn_name() == "ClampBackward");
    CHECK(xg::clamp_min(x, 0.0).grad_fn_name() == "ClampMinBackward");
    CHECK(test::values(xg::clamp_max(test::f64({-5.0, 5.0}), 0.0)) ==
          xt::xarray<double>{-5.0, 0.0});
    CHECK(test::values(xg::clamp(test::f64({-5.0, 5.0}), 2.0, 1.0)) ==
          xt::xarray<double>{1.0, 1.0});
    CHECK_THROWS_WITH_AS(xg::clamp(x, std::nullopt, std::nullopt),
                         "clamp: expected at least one of min and max (got neither)", xg::Error);

    xg::Tensor a = test::f64({{1.0, 5.0, nan}, {2.0, 2.0, 0.0}}, true);
    xg::Tensor b = test::f64({2.0, 2.0, 1.0}, true);
    xt::xarray<double> hi = test::values(xg::maximum(a, b));
    CHECK(hi(0, 0) == 2.0);
    CHECK(hi(0, 1) == 5.0);
    CHECK(std::isnan(hi(0, 2)));
    CHECK(test::values(xg::minimum(a, b))(1, 2) == 0.0);
    xg::sum(xg::maximum(a, b)).backward();
    // Equal elements split g; a NaN takes it on both sides (PyTorch 1.13's formula).
    CHECK(test::values(a.grad()) == xt::xarray<double>{{0.0, 1.0, 1.0}, {0.5, 0.5, 0.0}});
    CHECK(test::values(b.grad()) == xt::xarray<double>{1.5, 0.5, 2.0});
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) {
            return xg::clamp(in[0], -0.5, 0.7) +
                   xg::maximum(in[0], in[1]) * xg::minimum(in[0], in[1]);
        },
        {test::randn64({3, 4}, 1), test::randn64({4}, 2)}));
}

}  // namespace core_ops_test_elementwise
