// The elementwise ops as a table: one row per op, its forward and its
// derivative side by side, as tinygrad's gradient table and micrograd's ops
// keep them. core/ops/elementwise.cpp runs every row through the same generic
// loops; the activation rows are shared with the fused feed-forward op
// (core/ops/fused.cpp), so both compute bit-identical values and gradients.
//
// A unary row has forward(a) and grad: grad(s, g) is g times the derivative,
// s being the value kSaves names (the output when that is cheaper to
// differentiate from, else the input), or grad(g) when nothing is saved.
// grad_op is the same derivative written with ops (for double backward);
// kPiecewiseLinear marks a row whose grad_op only selects g by masks of s.
// kGradIsG marks a row whose gradient is g itself (passed on, not computed);
// kKernel names the vectorised, CPU-dispatched loop of an activation row
// (fused.cpp). A binary row has forward(u, v), for scalars and xtensor
// expressions alike, and grad_a(x, y, g), grad_b(x, y, g), or grad_b(g) when
// kSavesInputs is false (neither reads x or y); kGradAIsG and kGradBIsG mark
// a gradient that is g itself. Rows with a parameter (pow's exponent, an op's
// constant) carry it as a member.
//
// Each row follows PyTorch's formula, so NaN and +-inf give what they give in
// PyTorch (tests/core/ops/test_nonfinite.cpp): the clamps in fast_exp, fast_erf
// and fast_tanh only keep 2^n and e^x finite, and at +-inf both sides compute
// inf * 0 in the same places.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <type_traits>
#include <utility>

#include <xtensor/xoperation.hpp>

#include "vec_math.hpp"
#include "xgrad/ops.hpp"

namespace xg::detail {

enum class Saves { Nothing, Input, Output };

// The rows keep one line per function, as a table does.
// clang-format off

// ---- activations (vectorised loops in core/ops/fused.cpp) ----

// PyTorch's relu is clamp_min(x, 0), which keeps NaN and -0.0. Its backward
// (threshold_backward) selects rather than multiplies: g where the output is
// not <= 0, NaN included, else 0 even for a NaN g; relu'(0) = 0. Both selects
// vectorise without branches (a max; a compare and a mask).
struct ReluRule {
    static constexpr const char *kName = "relu", *kNode = "ReluBackward";
    static constexpr Saves kSaves = Saves::Output;
    static constexpr FusedActivation kKernel = FusedActivation::ReLU;
    template <class T> static T forward(T a) { return a < T(0) ? T(0) : a; }
    template <class T> static T grad(T y, T g) { return y <= T(0) ? T(0) : g; }
    static constexpr bool kPiecewiseLinear = true;
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return masked_fill(g, le(y, 0.0), 0.0); }
};

struct SigmoidRule {
    static constexpr const char *kName = "sigmoid", *kNode = "SigmoidBackward";
    static constexpr Saves kSaves = Saves::Output;
    static constexpr FusedActivation kKernel = FusedActivation::Sigmoid;
    template <class T> static T forward(T a) { return T(1) / (T(1) + fast_exp(-a)); }
    template <class T> static T grad(T y, T g) { return g * y * (T(1) - y); }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return g * (y * (1.0 - y)); }
};

// x * sigmoid(x); d/dx = s (1 + x (1 - s)).
struct SiluRule {
    static constexpr const char *kName = "silu", *kNode = "SiluBackward";
    static constexpr Saves kSaves = Saves::Input;
    static constexpr FusedActivation kKernel = FusedActivation::SiLU;
    template <class T> static T forward(T a) { return a / (T(1) + fast_exp(-a)); }
    template <class T>
    static T grad(T a, T g) {
        const T s = T(1) / (T(1) + fast_exp(-a));
        return g * s * (T(1) + a * (T(1) - s));
    }
    static Tensor grad_op(const Tensor& a, const Tensor& g) {
        const Tensor s = sigmoid(a);
        return g * (s * (1.0 + a * (1.0 - s)));
    }
};

// x * Phi(x); d/dx = Phi(x) + x * phi(x). With t = x / sqrt(2), Phi(x) is
// (1 + erf(t)) / 2 and phi(x) is e^(-t^2) / sqrt(2 pi): one call gives both.
struct GeluRule {
    static constexpr const char *kName = "gelu", *kNode = "GeluBackward";
    static constexpr Saves kSaves = Saves::Input;
    static constexpr FusedActivation kKernel = FusedActivation::GELU;
    template <class T>
    static T forward(T a) {
        return T(0.5) * a * (T(1) + fast_erf(a * T(std::numbers::sqrt2 / 2)));
    }
    template <class T>
    static T grad(T a, T g) {
        const T inv_sqrt_2pi = T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
        const auto [erf, gauss] = fast_erf_gauss(a * T(std::numbers::sqrt2 / 2));
        return g * (T(0.5) * (T(1) + erf) + a * inv_sqrt_2pi * gauss);
    }
    static Tensor grad_op(const Tensor& a, const Tensor& g) {
        const double inv_sqrt_2pi = 0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2;
        return g * (0.5 * (1.0 + erf(a * (std::numbers::sqrt2 / 2))) +
                    a * inv_sqrt_2pi * exp(-0.5 * (a * a)));
    }
};

// 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715.
struct GeluTanhRule {
    static constexpr const char *kName = "gelu", *kNode = "GeluBackward";
    static constexpr Saves kSaves = Saves::Input;
    static constexpr FusedActivation kKernel = FusedActivation::GELUTanh;
    static constexpr double kK = std::numbers::sqrt2 * std::numbers::inv_sqrtpi, kC = 0.044715;
    template <class T>
    static T forward(T a) {
        return T(0.5) * a * (T(1) + fast_tanh(T(kK) * (a + T(kC) * a * a * a)));
    }
    template <class T>
    static T grad(T a, T g) {
        const T t = fast_tanh(T(kK) * (a + T(kC) * a * a * a));
        return g * (T(0.5) * (T(1) + t) +
                    T(0.5) * a * (T(1) - t * t) * T(kK) * (T(1) + T(3) * T(kC) * a * a));
    }
    static Tensor grad_op(const Tensor& a, const Tensor& g) {
        const Tensor t = tanh(kK * (a + kC * (a * a * a)));
        return g * (0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * kK * (1.0 + 3.0 * kC * (a * a)));
    }
};

// The output saved: d/dx = 1 - y^2.
struct TanhRule {
    static constexpr const char *kName = "tanh", *kNode = "TanhBackward";
    static constexpr Saves kSaves = Saves::Output;
    static constexpr FusedActivation kKernel = FusedActivation::Tanh;
    template <class T> static T forward(T a) { return fast_tanh(a); }
    template <class T> static T grad(T y, T g) { return g * (T(1) - y * y); }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return g * (1.0 - y * y); }
};

// The ungated block's "activation" in the bilinear variant (fused op only).
struct IdentityRule {
    static constexpr Saves kSaves = Saves::Output;
    static constexpr FusedActivation kKernel = FusedActivation::Identity;
    template <class T> static T forward(T a) { return a; }
    template <class T> static T grad(T, T g) { return g; }
    static Tensor grad_op(const Tensor&, const Tensor& g) { return g; }
};

// ---- unary math ----

struct ExpRule {
    static constexpr const char *kName = "exp", *kNode = "ExpBackward";
    static constexpr Saves kSaves = Saves::Output;
    template <class T> static T forward(T a) { return std::exp(a); }
    template <class T> static T grad(T y, T g) { return g * y; }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return g * y; }
};

struct LogRule {
    static constexpr const char *kName = "log", *kNode = "LogBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return std::log(a); }
    template <class T> static T grad(T a, T g) { return g / a; }
    static Tensor grad_op(const Tensor& a, const Tensor& g) { return g / a; }
};

struct SqrtRule {
    static constexpr const char *kName = "sqrt", *kNode = "SqrtBackward";
    static constexpr Saves kSaves = Saves::Output;
    template <class T> static T forward(T a) { return std::sqrt(a); }
    template <class T> static T grad(T y, T g) { return g / (T(2) * y); }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return g / (2.0 * y); }
};

// PyTorch's sgn(x) * g, sgn being 0 at NaN and at either zero: the gradient at
// NaN is 0 (NaN only for a NaN g), and +0 at -0.0.
struct AbsRule {
    static constexpr const char *kName = "abs", *kNode = "AbsBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return std::abs(a); }
    template <class T> static T grad(T a, T g) { return g * (T(T(0) < a) - T(a < T(0))); }
    static Tensor grad_op(const Tensor& a, const Tensor& g) { return g * sign(a); }
};

struct NegRule {
    static constexpr const char *kName = "neg", *kNode = "NegBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    template <class T> static T forward(T a) { return -a; }
    template <class T> static T grad(T g) { return -g; }
    static Tensor grad_op(const Tensor& g) { return -g; }
};

// a^e as PyTorch computes it: exponents 0.5, -0.5 and -1 as sqrt, 1 / sqrt and
// 1 / a, and 2, 3 and -2 as products, whose NaN, inf and -0.0 cases differ from
// std::pow's (sqrt(-inf) is NaN and sqrt(-0.0) is -0.0; std::pow gives inf and 0).
// d/dx = e x^(e - 1), 0 everywhere for e = 0 (NaN included), as in PyTorch.
struct PowRule {
    static constexpr const char *kName = "pow", *kNode = "PowBackward";
    static constexpr Saves kSaves = Saves::Input;
    double e;
    template <class T>
    static T power(T a, double exponent) {
        if (exponent == 0.5) return std::sqrt(a);
        if (exponent == -0.5) return T(1) / std::sqrt(a);
        if (exponent == -1.0) return T(1) / a;
        if (exponent == 2.0) return a * a;
        if (exponent == 3.0) return a * a * a;
        if (exponent == -2.0) return T(1) / (a * a);
        return std::pow(a, T(exponent));
    }
    template <class T> T forward(T a) const { return power(a, e); }
    template <class T>
    T grad(T a, T g) const {
        return e == 0.0 ? T(0) : g * (T(e) * power(a, e - 1.0));
    }
    Tensor grad_op(const Tensor& a, const Tensor& g) const {
        return e == 0.0 ? zeros_like(g) : g * (e * pow(a, e - 1.0));
    }
};

// ---- more unary math, each with PyTorch's forward and backward formula ----

struct RsqrtRule {
    static constexpr const char *kName = "rsqrt", *kNode = "RsqrtBackward";
    static constexpr Saves kSaves = Saves::Output;
    template <class T> static T forward(T a) { return T(1) / std::sqrt(a); }
    template <class T> static T grad(T y, T g) { return T(-0.5) * g * y * y * y; }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return -0.5 * g * (y * y * y); }
};

struct ReciprocalRule {
    static constexpr const char *kName = "reciprocal", *kNode = "ReciprocalBackward";
    static constexpr Saves kSaves = Saves::Output;
    template <class T> static T forward(T a) { return T(1) / a; }
    template <class T> static T grad(T y, T g) { return -g * (y * y); }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return -g * (y * y); }
};

// torch.square is pow(x, 2): the same node and gradient as pow's.
struct SquareRule {
    static constexpr const char *kName = "square", *kNode = "PowBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return a * a; }
    template <class T> static T grad(T a, T g) { return g * (T(2) * a); }
    static Tensor grad_op(const Tensor& a, const Tensor& g) { return g * (2.0 * a); }
};

struct Log1pRule {
    static constexpr const char *kName = "log1p", *kNode = "Log1pBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return std::log1p(a); }
    template <class T> static T grad(T a, T g) { return g / (a + T(1)); }
    static Tensor grad_op(const Tensor& a, const Tensor& g) { return g / (a + 1.0); }
};

// From the output, as PyTorch: g (y + 1), which is 0 once y rounds to -1.
struct Expm1Rule {
    static constexpr const char *kName = "expm1", *kNode = "Expm1Backward";
    static constexpr Saves kSaves = Saves::Output;
    template <class T> static T forward(T a) { return std::expm1(a); }
    template <class T> static T grad(T y, T g) { return g * (y + T(1)); }
    static Tensor grad_op(const Tensor& y, const Tensor& g) { return g * (y + 1.0); }
};

struct SinRule {
    static constexpr const char *kName = "sin", *kNode = "SinBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return std::sin(a); }
    template <class T> static T grad(T a, T g) { return g * std::cos(a); }
    static Tensor grad_op(const Tensor& a, const Tensor& g) { return g * cos(a); }
};

struct CosRule {
    static constexpr const char *kName = "cos", *kNode = "CosBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return std::cos(a); }
    template <class T> static T grad(T a, T g) { return g * -std::sin(a); }
    static Tensor grad_op(const Tensor& a, const Tensor& g) { return g * -sin(a); }
};

// 0 at NaN and at either zero (+0.0); its gradient is 0 everywhere, NaN g included.
struct SignRule {
    static constexpr const char *kName = "sign", *kNode = "SignBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    template <class T> static T forward(T a) { return T(T(0) < a) - T(a < T(0)); }
    template <class T> static T grad(T) { return T(0); }
    static Tensor grad_op(const Tensor& g) { return zeros_like(g); }
};

// PyTorch's elu kernel: x <= 0 ? (exp(x) - 1) * alpha * scale : x * scale, with
// exp(x) - 1 rather than expm1 (PyTorch's float32 values near 0 depend on it).
// Its gradient at 0 is alpha * scale, and a NaN takes the x > 0 branch.
struct EluRule {
    static constexpr const char *kName = "elu", *kNode = "EluBackward";
    static constexpr Saves kSaves = Saves::Input;
    double alpha, scale = 1.0;
    template <class T> T forward(T a) const {
        return a <= T(0) ? (std::exp(a) - T(1)) * (T(alpha) * T(scale)) : a * T(scale);
    }
    template <class T> T grad(T a, T g) const {
        return a <= T(0) ? g * (T(alpha) * T(scale)) * std::exp(a) : g * T(scale);
    }
    Tensor grad_op(const Tensor& a, const Tensor& g) const {
        return where(le(a, 0.0), g * (alpha * scale) * exp(a), g * scale);
    }
};

struct LeakyReluRule {
    static constexpr const char *kName = "leaky_relu", *kNode = "LeakyReluBackward";
    static constexpr Saves kSaves = Saves::Input;
    double slope;
    template <class T> T forward(T a) const { return a > T(0) ? a : a * T(slope); }
    template <class T> T grad(T a, T g) const { return a > T(0) ? g : g * T(slope); }
    static constexpr bool kPiecewiseLinear = true;
    Tensor grad_op(const Tensor& a, const Tensor& g) const { return where(gt(a, 0.0), g, g * slope); }
};

// clamp(x, lo, hi), NaN passing through; the gradient is 0 at the bounds too.
struct HardtanhRule {
    static constexpr const char *kName = "hardtanh", *kNode = "HardtanhBackward";
    static constexpr Saves kSaves = Saves::Input;
    double lo, hi;
    template <class T> T forward(T a) const { return a < T(lo) ? T(lo) : (a > T(hi) ? T(hi) : a); }
    template <class T> T grad(T a, T g) const { return a <= T(lo) || a >= T(hi) ? T(0) : g; }
    static constexpr bool kPiecewiseLinear = true;
    Tensor grad_op(const Tensor& a, const Tensor& g) const { return masked_fill(g, logical_or(le(a, lo), ge(a, hi)), 0.0); }
};

// log(1 + exp(beta x)) / beta, and x itself once beta x > threshold.
struct SoftplusRule {
    static constexpr const char *kName = "softplus", *kNode = "SoftplusBackward";
    static constexpr Saves kSaves = Saves::Input;
    double beta, threshold;
    template <class T> T forward(T a) const {
        return a * T(beta) > T(threshold) ? a : std::log1p(std::exp(a * T(beta))) / T(beta);
    }
    template <class T> T grad(T a, T g) const {
        const T z = std::exp(a * T(beta));
        return a * T(beta) > T(threshold) ? g : g * z / (z + T(1));
    }
    Tensor grad_op(const Tensor& a, const Tensor& g) const {
        const Tensor z = exp(a * beta);
        return where(gt(a * beta, threshold), g, g * z / (z + 1.0));
    }
};

// x tanh(softplus(x)); d/dx = t + x sigmoid(x) (1 - t^2), t = tanh(softplus(x)).
struct MishRule {
    static constexpr const char *kName = "mish", *kNode = "MishBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return a * std::tanh(std::log1p(std::exp(a))); }
    template <class T> static T grad(T a, T g) {
        const T t = std::tanh(std::log1p(std::exp(a)));
        const T sigmoid = T(1) / (T(1) + std::exp(-a));
        return g * (t + a * sigmoid * (T(1) - t * t));
    }
    static Tensor grad_op(const Tensor& a, const Tensor& g) {
        const Tensor t = tanh(log1p(exp(a)));
        return g * (t + a * sigmoid(a) * (1.0 - t * t));
    }
};

// min(x, 0) - log1p(exp(-|x|)): no overflow for large |x|, as PyTorch computes it.
struct LogSigmoidRule {
    static constexpr const char *kName = "logsigmoid", *kNode = "LogSigmoidBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) {
        return std::min(a, T(0)) - std::log1p(std::exp(-std::abs(a)));
    }
    template <class T> static T grad(T a, T g) {
        const bool negative = a < T(0);
        const T z = std::exp(-std::abs(a));
        return g * (T(negative ? 1 : 0) - T(negative ? 1 : -1) * (z / (T(1) + z)));
    }
    static Tensor grad_op(const Tensor& a, const Tensor& g) {
        return g * sigmoid(-a);  // d/dx log(sigmoid(x)) = 1 - sigmoid(x)
    }
};

struct ErfRule {
    static constexpr const char *kName = "erf", *kNode = "ErfBackward";
    static constexpr Saves kSaves = Saves::Input;
    template <class T> static T forward(T a) { return std::erf(a); }
    template <class T> static T grad(T a, T g) {
        return T(2.0 * std::numbers::inv_sqrtpi) * std::exp(-(a * a)) * g;
    }
    static Tensor grad_op(const Tensor& a, const Tensor& g) {
        return 2.0 * std::numbers::inv_sqrtpi * exp(-(a * a)) * g;
    }
};

// min(max(x, lo), hi); the gradient flows where lo <= x <= hi (not at NaN).
struct ClampRule {
    const char* kName;
    const char* kNode;
    static constexpr Saves kSaves = Saves::Input;
    double lo, hi;
    template <class T> T forward(T a) const { return std::min(std::max(a, T(lo)), T(hi)); }
    // & rather than &&: no branch, so the loop vectorises (a random mask mispredicts)
    template <class T> T grad(T a, T g) const { return ((a >= T(lo)) & (a <= T(hi))) ? g : T(0); }
    static constexpr bool kPiecewiseLinear = true;
    Tensor grad_op(const Tensor& a, const Tensor& g) const { return masked_fill(g, logical_or(lt(a, lo), gt(a, hi)), 0.0); }
};

// ---- a tensor with a constant c, converted to the tensor's dtype first ----

struct AddConstantRule {
    static constexpr const char *kName = "add", *kNode = "AddBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    static constexpr bool kGradIsG = true;
    double c;
    template <class T> T forward(T a) const { return a + T(c); }
};

struct SubConstantRule {
    static constexpr const char *kName = "sub", *kNode = "SubBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    static constexpr bool kGradIsG = true;
    double c;
    template <class T> T forward(T a) const { return a - T(c); }
};

// c - a.
struct ConstantSubRule {
    static constexpr const char *kName = "sub", *kNode = "SubBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    double c;
    template <class T> T forward(T a) const { return T(c) - a; }
    template <class T> T grad(T g) const { return -g; }
    Tensor grad_op(const Tensor& g) const { return -g; }
};

struct MulConstantRule {
    static constexpr const char *kName = "mul", *kNode = "MulBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    double c;
    template <class T> T forward(T a) const { return a * T(c); }
    template <class T> T grad(T g) const { return g * T(c); }
    Tensor grad_op(const Tensor& g) const { return g * c; }
};

struct DivConstantRule {
    static constexpr const char *kName = "div", *kNode = "DivBackward";
    static constexpr Saves kSaves = Saves::Nothing;
    double c;
    template <class T> T forward(T a) const { return a / T(c); }
    template <class T> T grad(T g) const { return g / T(c); }
    Tensor grad_op(const Tensor& g) const { return g / c; }
};

// ---- binary, with NumPy broadcasting (gradients summed back to each shape) ----

struct AddRule {
    static constexpr const char *kName = "add", *kNode = "AddBackward";
    static constexpr bool kSavesInputs = false, kGradAIsG = true, kGradBIsG = true;
    static auto forward(const auto& u, const auto& v) { return u + v; }
    static std::pair<Tensor, Tensor> grad_op(const Tensor&, const Tensor&, const Tensor& g) { return {g, g}; }
};

struct SubRule {
    static constexpr const char *kName = "sub", *kNode = "SubBackward";
    static constexpr bool kSavesInputs = false, kGradAIsG = true, kGradBIsG = false;
    static auto forward(const auto& u, const auto& v) { return u - v; }
    template <class T> static T grad_b(T g) { return -g; }
    static std::pair<Tensor, Tensor> grad_op(const Tensor&, const Tensor&, const Tensor& g) { return {g, -g}; }
};

struct MulRule {
    static constexpr const char *kName = "mul", *kNode = "MulBackward";
    static constexpr bool kSavesInputs = true, kGradAIsG = false, kGradBIsG = false;
    static auto forward(const auto& u, const auto& v) { return u * v; }
    template <class T> static T grad_a(T, T y, T g) { return g * y; }
    template <class T> static T grad_b(T x, T, T g) { return g * x; }
    static std::pair<Tensor, Tensor> grad_op(const Tensor& x, const Tensor& y, const Tensor& g) { return {g * y, g * x}; }
};

// d/dy (x / y) = -x / y^2, computed as -(g x) / (y y).
struct DivRule {
    static constexpr const char *kName = "div", *kNode = "DivBackward";
    static constexpr bool kSavesInputs = true, kGradAIsG = false, kGradBIsG = false;
    static auto forward(const auto& u, const auto& v) { return u / v; }
    template <class T> static T grad_a(T, T y, T g) { return g / y; }
    template <class T> static T grad_b(T x, T y, T g) { return -(g * x) / (y * y); }
    static std::pair<Tensor, Tensor> grad_op(const Tensor& x, const Tensor& y, const Tensor& g) { return {g / y, -(g * x) / (y * y)}; }
};

// maximum's and minimum's gradients as ops: g / 2 to each side where x == y,
// else g, but 0 where the side's mask (where it lost) is set.
inline std::pair<Tensor, Tensor> tie_split(const Tensor& x, const Tensor& y, const Tensor& g, const Tensor& a_lost, const Tensor& b_lost) {
    const Tensor tie = eq(x, y), half = g / 2.0;
    return {where(tie, half, masked_fill(g, a_lost, 0.0)), where(tie, half, masked_fill(g, b_lost, 0.0))};
}

// A NaN operand wins (PyTorch's rule); where x == y each side gets g / 2.
struct MaximumRule {
    static constexpr const char *kName = "maximum", *kNode = "MaximumBackward";
    static constexpr bool kSavesInputs = true, kGradAIsG = false, kGradBIsG = false;
    static auto forward(const auto& u, const auto& v) {
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(u)>>) return std::isnan(u) || u > v ? u : v;
        else return xt::where(xt::isnan(u) || u > v, u, v);
    }
    template <class T> static T grad_a(T x, T y, T g) { return x == y ? g / T(2) : (x < y ? T(0) : g); }
    template <class T> static T grad_b(T x, T y, T g) { return x == y ? g / T(2) : (x > y ? T(0) : g); }
    static std::pair<Tensor, Tensor> grad_op(const Tensor& x, const Tensor& y, const Tensor& g) { return tie_split(x, y, g, lt(x, y), gt(x, y)); }
};

struct MinimumRule {
    static constexpr const char *kName = "minimum", *kNode = "MinimumBackward";
    static constexpr bool kSavesInputs = true, kGradAIsG = false, kGradBIsG = false;
    static auto forward(const auto& u, const auto& v) {
        if constexpr (std::is_arithmetic_v<std::decay_t<decltype(u)>>) return std::isnan(u) || u < v ? u : v;
        else return xt::where(xt::isnan(u) || u < v, u, v);
    }
    template <class T> static T grad_a(T x, T y, T g) { return x == y ? g / T(2) : (x > y ? T(0) : g); }
    template <class T> static T grad_b(T x, T y, T g) { return x == y ? g / T(2) : (x < y ? T(0) : g); }
    static std::pair<Tensor, Tensor> grad_op(const Tensor& x, const Tensor& y, const Tensor& g) { return tie_split(x, y, g, gt(x, y), lt(x, y)); }
};

// clang-format on

// The activation rows' loops over raw memory, defined in core/ops/fused.cpp
// beside the fused op's, and like them compiled for AVX2 and AVX-512 as well
// (float): out[i] = act(in[i]); gx[i] = grad(saved[i], g[i]), saved being the
// row's (output or input). gx may be g.
template <class T>
void activation_forward(FusedActivation activation, const T* in, T* out, std::size_t n);
template <class T>
void activation_grad(FusedActivation activation, const T* saved, const T* g, T* gx, std::size_t n);

}  // namespace xg::detail
