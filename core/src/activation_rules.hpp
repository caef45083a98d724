// The activations' per-element rules, shared by the single ops
// (core/ops/elementwise.cpp) and the fused feed-forward op (core/ops/fused.cpp),
// so both compute bit-identical values and gradients.
//
// forward(a) is the activation; grad(s, g) is g times its derivative, where s
// is the saved value: the output when kSavesOutput (cheaper to differentiate
// from), else the input. Each follows PyTorch's formula, so NaN and +-inf give
// what they give in PyTorch (tests/core/ops/test_nonfinite.cpp): the clamps in
// fast_exp, fast_erf and fast_tanh only keep 2^n and e^x finite, and at +-inf
// both sides compute inf * 0 in the same places.
#pragma once

#include <cmath>
#include <cstddef>
#include <numbers>

#include "vec_math.hpp"
#include "xgrad/ops.hpp"

namespace xg::detail {

// PyTorch's relu is clamp_min(x, 0), which keeps NaN and -0.0. Its backward
// (threshold_backward) selects rather than multiplies: g where the output is
// not <= 0, NaN included, else 0 even for a NaN g; relu'(0) = 0. Both selects
// vectorise without branches (a max; a compare and a mask).
struct ReluRule {
    static constexpr bool kSavesOutput = true;
    template <class T>
    static T forward(T a) {
        return a < T(0) ? T(0) : a;
    }
    template <class T>
    static T grad(T y, T g) {
        return y <= T(0) ? T(0) : g;
    }
};

struct SigmoidRule {
    static constexpr bool kSavesOutput = true;
    template <class T>
    static T forward(T a) {
        return T(1) / (T(1) + fast_exp(-a));
    }
    template <class T>
    static T grad(T y, T g) {
        return g * y * (T(1) - y);
    }
};

// x * sigmoid(x); d/dx = s (1 + x (1 - s)).
struct SiluRule {
    static constexpr bool kSavesOutput = false;
    template <class T>
    static T forward(T a) {
        return a / (T(1) + fast_exp(-a));
    }
    template <class T>
    static T grad(T a, T g) {
        const T s = T(1) / (T(1) + fast_exp(-a));
        return g * s * (T(1) + a * (T(1) - s));
    }
};

// x * Phi(x); d/dx = Phi(x) + x * phi(x).
struct GeluRule {
    static constexpr bool kSavesOutput = false;
    template <class T>
    static T forward(T a) {
        return T(0.5) * a * (T(1) + fast_erf(a * T(std::numbers::sqrt2 / 2)));
    }
    template <class T>
    static T grad(T a, T g) {
        const T inv_sqrt_2pi = T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
        return g * (T(0.5) * (T(1) + fast_erf(a * T(std::numbers::sqrt2 / 2))) +
                    a * inv_sqrt_2pi * fast_exp(T(-0.5) * a * a));
    }
};

// 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715.
struct GeluTanhRule {
    static constexpr bool kSavesOutput = false;
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
};

// The output saved: d/dx = 1 - y^2.
struct TanhRule {
    static constexpr bool kSavesOutput = true;
    template <class T>
    static T forward(T a) {
        return fast_tanh(a);
    }
    template <class T>
    static T grad(T y, T g) {
        return g * (T(1) - y * y);
    }
};

// The ungated block's "activation" in the bilinear variant.
struct IdentityRule {
    static constexpr bool kSavesOutput = true;
    template <class T>
    static T forward(T a) {
        return a;
    }
    template <class T>
    static T grad(T, T g) {
        return g;
    }
};

// The single activation ops' loops over raw memory, defined in
// core/ops/fused.cpp beside the fused op's, and like them compiled for AVX2 and
// AVX-512 as well (float): out[i] = act(in[i]); gx[i] = grad(saved[i], g[i]),
// saved being the rule's (output or input). gx may be g.
template <class T>
void activation_forward(FusedActivation activation, const T* in, T* out, std::size_t n);
template <class T>
void activation_grad(FusedActivation activation, const T* saved, const T* g, T* gx, std::size_t n);

}  // namespace xg::detail
