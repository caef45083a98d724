// NaN, +-inf, -0.0 and overflowing inputs through the elementwise ops, the
// activations and the fused feed-forward op (core/ops/elementwise.cpp,
// core/ops/fused.cpp, core/src/elementwise_rules.hpp) against PyTorch 1.13
// (reference/gen_nonfinite.py): values, and gradients for an upstream gradient
// of ones and of NaN. A NaN PyTorch propagates must not come out finite, nor a
// finite value come out NaN.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>
#include <xtensor/xadapt.hpp>

#include "core/reference/nonfinite_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_nonfinite {

using xg::Tensor;

namespace {

template <class T>
using Values = nonfinite::Values<T>;
using Op = std::function<Tensor(const Tensor&)>;

template <class T>
const char* dtype_name() {
    return sizeof(T) == 4 ? "float32" : "float64";
}

template <class T>
Tensor tensor_of(const std::vector<T>& v, xg::Shape shape, bool requires_grad) {
    return xg::tensor<T>(xt::xarray<T>(xt::adapt(v, shape)), requires_grad);
}
template <class T>
Tensor tensor_of(const std::vector<T>& v, bool requires_grad) {
    return tensor_of(v, {v.size()}, requires_grad);
}
template <class T>
std::vector<T> values_of(const Tensor& t) {
    const auto& a = t.data<T>();
    return {a.begin(), a.end()};
}

std::string show(const auto& values) {
    std::ostringstream out;
    for (double v : values) out << (out.tellp() > 0 ? ", " : "") << v;
    return out.str();
}

// Whether got matches PyTorch's want: NaN must meet NaN, infinities and zeros
// must be equal, zeros with their sign where PyTorch's float32 and float64
// results (want and want64) agree on it (they do not for gelu(-0.0), whose
// float32 kernel is oneDNN's), other values within a relative 1e-5 in float32
// (fast_exp, fast_erf and fast_tanh are within 2 ulp of libm) and 1e-12 in float64.
template <class T>
bool matches(T got, T want, double want64) {
    const double g = got, w = want, rtol = sizeof(T) == 4 ? 1e-5 : 1e-12;
    if (std::isnan(w)) return std::isnan(g);
    if (std::isinf(w)) return g == w;
    if (w != 0) return std::abs(g - w) <= rtol * std::abs(w);
    return g == 0 &&
           (std::signbit(w) != std::signbit(want64) || std::signbit(g) == std::signbit(w));
}

// One line for each position where got does not match want; empty when all do.
// (A stream, not string +: g++ 12 warns falsely about std::string's operator+.)
template <class T>
std::string mismatches(const std::vector<T>& got, const std::vector<T>& want,
                       const std::vector<double>& want64) {
    REQUIRE(got.size() == want.size());
    std::ostringstream out;
    for (std::size_t i = 0; i < got.size(); ++i)
        if (!matches(got[i], want[i], want64[i]))
            out << "[" << i << "] got " << got[i] << ", PyTorch " << want[i] << "\n";
    return out.str();
}

// The op named as in gen_nonfinite.py.
Op single_op(const std::string& name) {
    if (name == "relu") return [](const Tensor& t) { return xg::relu(t); };
    if (name == "gelu") return [](const Tensor& t) { return xg::gelu(t, "none"); };
    if (name == "gelu_tanh") return [](const Tensor& t) { return xg::gelu(t, "tanh"); };
    if (name == "sigmoid") return [](const Tensor& t) { return xg::sigmoid(t); };
    if (name == "silu") return [](const Tensor& t) { return xg::silu(t); };
    if (name == "tanh") return [](const Tensor& t) { return xg::tanh(t); };
    if (name == "abs") return [](const Tensor& t) { return xg::abs(t); };
    if (name == "exp") return [](const Tensor& t) { return xg::exp(t); };
    if (name == "log") return [](const Tensor& t) { return xg::log(t); };
    if (name == "sqrt") return [](const Tensor& t) { return xg::sqrt(t); };
    if (name == "dropout_eval") return [](const Tensor& t) { return xg::dropout(t, 0.5, false); };
    REQUIRE(name.rfind("pow ", 0) == 0);
    const double exponent = std::stod(name.substr(4));
    return [exponent](const Tensor& t) { return xg::pow(t, exponent); };
}

xg::FusedActivation fused_kind(const std::string& name) {
    if (name == "identity") return xg::FusedActivation::Identity;
    if (name == "relu") return xg::FusedActivation::ReLU;
    if (name == "gelu") return xg::FusedActivation::GELU;
    if (name == "gelu_tanh") return xg::FusedActivation::GELUTanh;
    if (name == "sigmoid") return xg::FusedActivation::Sigmoid;
    if (name == "silu") return xg::FusedActivation::SiLU;
    REQUIRE(name == "tanh");
    return xg::FusedActivation::Tanh;
}

template <class T>
T nan() {
    return std::numeric_limits<T>::quiet_NaN();
}

// f's output, then the gradients of its inputs for upstream ones, then for upstream NaN.
template <class T>
std::vector<std::vector<T>> outputs_and_grads(
    const std::function<Tensor(const std::vector<Tensor>&)>& f,
    const std::vector<std::vector<T>>& inputs) {
    std::vector<std::vector<T>> result;
    for (T fill : {T(1), nan<T>()}) {
        std::vector<Tensor> x;
        for (const auto& v : inputs) x.push_back(tensor_of(v, true));
        Tensor y = f(x);
        if (result.empty()) result.push_back(values_of<T>(y));
        y.backward(xg::full(y.shape(), double(fill), y.dtype()));
        for (const Tensor& t : x) result.push_back(values_of<T>(t.grad()));
    }
    return result;
}

// Each named single op on Values<T>::input against PyTorch.
template <class T>
void check_single_ops(const std::vector<std::string>& names) {
    for (std::size_t k = 0; k < Values<T>::unary.size(); ++k) {
        const auto& c = Values<T>::unary[k];
        const auto& c64 = Values<double>::unary[k];
        if (std::find(names.begin(), names.end(), c.name) == names.end()) continue;
        INFO(c.name, " in ", dtype_name<T>(), " at ", show(Values<T>::input));
        Op op = single_op(c.name);
        auto got =
            outputs_and_grads<T>([&](const auto& x) { return op(x[0]); }, {Values<T>::input});
        CHECK(mismatches(got[0], c.out, c64.out) == "");
        CHECK(mismatches(got[1], c.grad, c64.grad) == "");
        CHECK(mismatches(got[2], c.grad_nan, c64.grad_nan) == "");
    }
}

template <class T>
void check_fused_ungated(const std::string& name) {
    for (std::size_t k = 0; k < Values<T>::unary.size(); ++k) {
        const auto& c = Values<T>::unary[k];
        const auto& c64 = Values<double>::unary[k];
        if (c.name != name) continue;
        for (const auto& mode : {std::pair{0.3, false}, {0.0, true}}) {
            const double p = mode.first;  // not a structured binding: lambdas use these
            const bool training = mode.second;
            INFO("activation_dropout ", c.name, " in ", dtype_name<T>(), " p=", p,
                 " training=", training);
            auto got = outputs_and_grads<T>(
                [&](const auto& x) {
                    return xg::activation_dropout(x[0], Tensor(), fused_kind(name), p, training);
                },
                {Values<T>::input});
            CHECK(mismatches(got[0], c.out, c64.out) == "");
            CHECK(mismatches(got[1], c.grad, c64.grad) == "");
            CHECK(mismatches(got[2], c.grad_nan, c64.grad_nan) == "");
        }
    }
}

}  // namespace

TEST_CASE("relu keeps NaN and -0.0; its gradient passes where the output is not <= 0") {
    check_single_ops<float>({"relu"});
    check_single_ops<double>({"relu"});
    check_fused_ungated<float>("relu");
    check_fused_ungated<double>("relu");
}

TEST_CASE("gelu, gelu tanh, silu, sigmoid and tanh at NaN, +-inf and overflow match PyTorch") {
    const std::vector<std::string> names{"gelu", "gelu_tanh", "silu", "sigmoid", "tanh"};
    check_single_ops<float>(names);
    check_single_ops<double>(names);
    for (const std::string& name : names) {
        check_fused_ungated<float>(name);
        check_fused_ungated<double>(name);
    }
}

TEST_CASE("abs' gradient is sgn(x) * g: 0 at NaN, an unsigned 0 at -0.0") {
    check_single_ops<float>({"abs"});
    check_single_ops<double>({"abs"});
}

TEST_CASE(
    "exp, log, sqrt and pow at NaN, +-inf and -0.0 match PyTorch, for every special exponent") {
    std::vector<std::string> names{"exp", "log", "sqrt"};
    for (const auto& c : Values<double>::unary)
        if (std::string(c.name).rfind("pow ", 0) == 0) names.push_back(c.name);
    check_single_ops<float>(names);
    check_single_ops<double>(names);
}

TEST_CASE("dropout in eval passes NaN and inf through, and their gradients") {
    check_single_ops<float>({"dropout_eval"});
    check_single_ops<double>({"dropout_eval"});
}

namespace {

// act(h) * v over every pair of gated_h and gated_v, fused and through the separate ops.
template <class T>
void check_gated() {
    for (std::size_t k = 0; k < Values<T>::gated.size(); ++k) {
        const auto& c = Values<T>::gated[k];
        const auto& c64 = Values<double>::gated[k];
        const xg::FusedActivation kind = fused_kind(c.name);
        const std::vector<std::function<Tensor(const std::vector<Tensor>&)>> paths{
            [&](const auto& x) { return xg::activation_dropout(x[0], x[1], kind, 0.3, false); },
            [&](const auto& x) {
                Op act = std::string(c.name) == "identity" ? [](const Tensor& t) { return t; }
                                                           : single_op(c.name);
                return xg::dropout(act(x[0]) * x[1], 0.3, false);
            }};
        for (std::size_t path = 0; path < paths.size(); ++path) {
            INFO(c.name, " gated in ", dtype_name<T>(), path == 0 ? ", fused" : ", separate");
            auto got = outputs_and_grads<T>(paths[path], {Values<T>::gated_h, Values<T>::gated_v});
            CHECK(mismatches(got[0], c.out, c64.out) == "");
            CHECK(mismatches(got[1], c.grad_h, c64.grad_h) == "");
            CHECK(mismatches(got[2], c.grad_v, c64.grad_v) == "");
            CHECK(mismatches(got[3], c.grad_h_nan, c64.grad_h_nan) == "");
            CHECK(mismatches(got[4], c.grad_v_nan, c64.grad_v_nan) == "");
        }
    }
}

}  // namespace

TEST_CASE(
    "the gated fused op (bilinear, ReGLU, GEGLU, GLU, SwiGLU) at NaN and inf matches PyTorch") {
    check_gated<float>();
    check_gated<double>();
}

namespace {

// Values<T>::input along rows of kWidth: each value at kept and dropped positions.
constexpr std::size_t kWidth = 64;

// One line for each kept (or dropped) position of got whose value does not
// match its row's want; empty when all do.
template <class T>
std::string at_positions(const std::vector<T>& got, const std::vector<std::uint8_t>& keep,
                         bool kept, const std::vector<T>& want, const std::vector<double>& want64) {
    std::ostringstream out;
    for (std::size_t r = 0; r < want.size(); ++r) {
        for (std::size_t j = 0; j < kWidth; ++j) {
            const T g = got[r * kWidth + j];
            if (bool(keep[r * kWidth + j]) == kept && !matches(g, want[r], want64[r]))
                out << "row " << r << ", col " << j << ": got " << g << ", PyTorch " << want[r]
                    << "\n";
        }
    }
    return out.str();
}

// dropout(act(x)) in training, p = 0.5, through op(x, p), at kept and dropped
// positions; the mask read off a run on ones with the same seed.
template <class T>
void check_dropout(const char* path, const std::function<Tensor(const Tensor&, double)>& op,
                   std::size_t k) {
    const auto& c = Values<T>::dropout[k];
    const auto& c64 = Values<double>::dropout[k];
    INFO(c.name, " with dropout in ", dtype_name<T>(), ", ", path);
    const std::size_t rows = Values<T>::input.size();
    std::vector<T> x;
    for (T v : Values<T>::input) x.insert(x.end(), kWidth, v);
    xg::manual_seed(5);
    std::vector<T> ones = values_of<T>(
        op(xg::ones({rows, kWidth}, sizeof(T) == 4 ? xg::kFloat32 : xg::kFloat64), 0.5));
    std::vector<std::uint8_t> keep;
    for (T y : ones) keep.push_back(y != T(0));
    std::vector<std::vector<T>> got;
    for (T fill : {T(1), nan<T>()}) {
        Tensor xt = tensor_of(x, {rows, kWidth}, true);
        xg::manual_seed(5);
        Tensor y = op(xt, 0.5);
        if (got.empty()) got.push_back(values_of<T>(y));
        y.backward(xg::full(y.shape(), double(fill), y.dtype()));
        got.push_back(values_of<T>(xt.grad()));
    }
    CHECK(at_positions(got[0], keep, true, c.kept_out, c64.kept_out) == "");
    CHECK(at_positions(got[1], keep, true, c.kept_grad, c64.kept_grad) == "");
    CHECK(at_positions(got[2], keep, true, c.kept_grad_nan, c64.kept_grad_nan) == "");
    CHECK(at_positions(got[0], keep, false, c.dropped_out, c64.dropped_out) == "");
    CHECK(at_positions(got[1], keep, false, c.dropped_grad, c64.dropped_grad) == "");
    CHECK(at_positions(got[2], keep, false, c.dropped_grad_nan, c64.dropped_grad_nan) == "");
}

template <class T>
void check_dropout_paths() {
    for (std::size_t k = 0; k < Values<T>::dropout.size(); ++k) {
        const std::string name = Values<T>::dropout[k].name;
        const xg::FusedActivation kind = fused_kind(name);
        Op act = name == "identity" ? [](const Tensor& t) { return t; } : single_op(name);
        check_dropout<T>(
            "fused",
            [&](const Tensor& x, double p) {
                return xg::activation_dropout(x, Tensor(), kind, p, true);
            },
            k);
        // A gate of ones leaves act(x) and its gradient as they are.
        check_dropout<T>(
            "fused, gate of ones",
            [&](const Tensor& x, double p) {
                return xg::activation_dropout(x, xg::ones(x.shape(), x.dtype()), kind, p, true);
            },
            k);
        check_dropout<T>(
            "separate", [&](const Tensor& x, double p) { return xg::dropout(act(x), p, true); }, k);
    }
}

}  // namespace

TEST_CASE("dropout in training keeps NaN and inf NaN where dropped, and NaN gradients there") {
    check_dropout_paths<float>();
    check_dropout_paths<double>();
}

TEST_CASE("a FeedForward fed a NaN in one row returns NaN in that row only") {
    for (bool gated : {false, true}) {
        for (bool training : {true, false}) {
            INFO((gated ? "swiglu" : "relu"), (training ? ", training" : ", eval"));
            xg::manual_seed(1);
            auto ffn = gated ? xg::nn::FeedForward::swiglu(6, 16, 0.1)
                             : std::make_shared<xg::nn::FeedForward>(6, 16, 0.1);
            ffn->train(training);
            xt::xarray<float> xv = xg::randn({4, 6}).data<float>();
            xv(2, 3) = std::numeric_limits<float>::quiet_NaN();
            Tensor y = (*ffn)(xg::tensor<float>(xv));
            for (std::size_t r = 0; r < 4; ++r) {
                for (std::size_t c = 0; c < 6; ++c) {
                    CAPTURE(r);
                    CAPTURE(c);
                    CHECK(std::isnan(y.data<float>()(r, c)) == (r == 2));
                }
            }
        }
    }
}

}  // namespace core_ops_test_nonfinite
