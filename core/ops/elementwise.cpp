// Elementwise ops: arithmetic with NumPy broadcasting, activations, dropout.
// Each op is its forward expression next to its gradient rule.
#include <cmath>
#include <numbers>

#include <xtensor/xoperation.hpp>

#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// y = forward(x); the gradient rule sees the saved input: grad(x, g).
template <class Forward, class Grad>
Tensor unary_x(const Tensor& x, const char* op, const char* node, Forward forward, Grad grad) {
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        Tensor y = wrap(xt::xarray<T>(forward(a)));
        return make_result(y, node, {x}, [saved = x.detach(), grad](const Tensor& g) {
            return std::vector<Tensor>{wrap(xt::xarray<T>(grad(saved.data<T>(), g.data<T>())))};
        });
    });
}

// Like unary_x, but the rule needs only the output (tanh, exp, ...): grad(y, g).
template <class Forward, class Grad>
Tensor unary_y(const Tensor& x, const char* op, const char* node, Forward forward, Grad grad) {
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        Tensor y = wrap(xt::xarray<T>(forward(a)));
        return make_result(y, node, {x}, [saved = y.detach(), grad](const Tensor& g) {
            return std::vector<Tensor>{wrap(xt::xarray<T>(grad(saved.data<T>(), g.data<T>())))};
        });
    });
}

// The gradient of a broadcast operand: g summed back to the operand's shape.
Tensor reduce_to(const Tensor& g, const Shape& shape) {
    if (g.shape() == shape) return g;
    return detail::visit_floating(g, "backward", [&]<class T>(xt::xarray<T>& a) {
        return wrap(detail::sum_to_shape(a, shape));
    });
}

// out = forward(a, b) with broadcasting; grad_a(a, b, g) and grad_b(a, b, g)
// give full-size gradients that reduce_to sums back.
template <class Forward, class GradA, class GradB>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, const char* node, Forward forward,
              GradA grad_a, GradB grad_b) {
    detail::check_same_dtype(a, b, op);
    Shape shape_a = a.shape(), shape_b = b.shape();
    detail::broadcast_shapes(shape_a, shape_b, op);
    return detail::visit_floating(a, op, [&]<class T>(xt::xarray<T>& av) {
        Tensor out = wrap(xt::xarray<T>(forward(av, b.data<T>())));
        bool need_a = a.requires_grad(), need_b = b.requires_grad();
        return make_result(out, node, {a, b},
                           [sa = a.detach(), sb = b.detach(), shape_a, shape_b, need_a, need_b,
                            grad_a, grad_b](const Tensor& g) {
                               auto& x = sa.data<T>();
                               auto& y = sb.data<T>();
                               auto& gv = g.data<T>();
                               Tensor ga, gb;
                               if (need_a)
                                   ga = reduce_to(wrap(xt::xarray<T>(grad_a(x, y, gv))), shape_a);
                               if (need_b)
                                   gb = reduce_to(wrap(xt::xarray<T>(grad_b(x, y, gv))), shape_b);
                               return std::vector<Tensor>{ga, gb};
                           });
    });
}

Tensor scalar_like(const Tensor& t, double value, const char* op) {
    return detail::visit_floating(t, op, [&]<class T>(xt::xarray<T>&) {
        return wrap(detail::scalar_array(static_cast<T>(value)));
    });
}

// Addition and subtraction need no saved values: the gradient is g itself.
Tensor add_or_sub(const Tensor& a, const Tensor& b, bool subtract) {
    const char* op = subtract ? "sub" : "add";
    detail::check_same_dtype(a, b, op);
    Shape shape_a = a.shape(), shape_b = b.shape();
    detail::broadcast_shapes(shape_a, shape_b, op);
    Tensor out = detail::visit_floating(a, op, [&]<class T>(xt::xarray<T>& av) {
        auto& bv = b.data<T>();
        return wrap(subtract ? xt::xarray<T>(av - bv) : xt::xarray<T>(av + bv));
    });
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    return make_result(out, subtract ? "SubBackward" : "AddBackward", {a, b}, [=](const Tensor& g) {
        Tensor ga = need_a ? reduce_to(g, shape_a) : Tensor();
        Tensor gb = need_b ? reduce_to(subtract ? neg(g) : g, shape_b) : Tensor();
        return std::vector<Tensor>{ga, gb};
    });
}

// splitmix64: a counter-based hash, so mask element i depends only on (key, i).
inline std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return add_or_sub(a, b, false); }
Tensor sub(const Tensor& a, const Tensor& b) { return add_or_sub(a, b, true); }

Tensor mul(const Tensor& a, const Tensor& b) {
    return binary(
        a, b, "mul", "MulBackward", [](const auto& x, const auto& y) { return x * y; },
        [](const auto&, const auto& y, const auto& g) { return g * y; },
        [](const auto& x, const auto&, const auto& g) { return g * x; });
}

Tensor div(const Tensor& a, const Tensor& b) {
    return binary(
        a, b, "div", "DivBackward", [](const auto& x, const auto& y) { return x / y; },
        [](const auto&, const auto& y, const auto& g) { return g / y; },
        [](const auto& x, const auto& y, const auto& g) { return -g * x / (y * y); });
}

Tensor neg(const Tensor& x) {
    Tensor out = detail::visit_floating(
        x, "neg", []<class T>(xt::xarray<T>& a) { return wrap(xt::xarray<T>(-a)); });
    return make_result(out, "NegBackward", {x},
                       [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b, "add")); }
Tensor sub(const Tensor& a, double b) { return sub(a, scalar_like(a, b, "sub")); }
Tensor rsub(double a, const Tensor& b) { return sub(scalar_like(b, a, "sub"), b); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b, "mul")); }
Tensor div(const Tensor& a, double b) { return div(a, scalar_like(a, b, "div")); }
Tensor rdiv(double a, const Tensor& b) { return div(scalar_like(b, a, "div"), b); }

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator-(double a, const Tensor& b) { return rsub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator/(double a, const Tensor& b) { return rdiv(a, b); }

// PyTorch's convention at the kink: relu'(0) = 0.
Tensor relu(const Tensor& x) {
    return unary_y(
        x, "relu", "ReluBackward",
        []<class T>(const xt::xarray<T>& a) { return xt::maximum(a, T(0)); },
        []<class T>(const xt::xarray<T>& y, const xt::xarray<T>& g) {
            return xt::where(y > T(0), g, T(0));
        });
}

Tensor gelu(const Tensor& x, const std::string& approximate) {
    check(approximate == "none" || approximate == "tanh",
          "gelu: expected approximate 'none' or 'tanh' (got '{}')", approximate);
    if (approximate == "none") {
        // x * Phi(x); d/dx = Phi(x) + x * phi(x).
        return unary_x(
            x, "gelu", "GeluBackward",
            []<class T>(const xt::xarray<T>& a) {
                return T(0.5) * a * (T(1) + xt::erf(a * T(std::numbers::sqrt2 / 2)));
            },
            []<class T>(const xt::xarray<T>& a, const xt::xarray<T>& g) {
                const T inv_sqrt_2pi = T(0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2);
                return g * (T(0.5) * (T(1) + xt::erf(a * T(std::numbers::sqrt2 / 2))) +
                            a * inv_sqrt_2pi * xt::exp(T(-0.5) * a * a));
            });
    }
    // 0.5 x (1 + tanh(k (x + c x^3))), k = sqrt(2 / pi), c = 0.044715.
    return unary_x(
        x, "gelu", "GeluBackward",
        []<class T>(const xt::xarray<T>& a) {
            const T k = T(std::numbers::sqrt2 * std::numbers::inv_sqrtpi), c = T(0.044715);
            return T(0.5) * a * (T(1) + xt::tanh(k * (a + c * a * a * a)));
        },
        []<class T>(const xt::xarray<T>& a, const xt::xarray<T>& g) {
            const T k = T(std::numbers::sqrt2 * std::numbers::inv_sqrtpi), c = T(0.044715);
            xt::xarray<T> t = xt::tanh(k * (a + c * a * a * a));
            return xt::xarray<T>(g * (T(0.5) * (T(1) + t) +
                                      T(0.5) * a * (T(1) - t * t) * k * (T(1) + T(3) * c * a * a)));
        });
}

Tensor sigmoid(const Tensor& x) {
    return unary_y(
        x, "sigmoid", "SigmoidBackward",
        []<class T>(const xt::xarray<T>& a) { return T(1) / (T(1) + xt::exp(-a)); },
        []<class T>(const xt::xarray<T>& y, const xt::xarray<T>& g) { return g * y * (T(1) - y); });
}

// x * sigmoid(x); d/dx = s (1 + x (1 - s)).
Tensor silu(const Tensor& x) {
    return unary_x(
        x, "silu", "SiluBackward",
        []<class T>(const xt::xarray<T>& a) { return a / (T(1) + xt::exp(-a)); },
        []<class T>(const xt::xarray<T>& a, const xt::xarray<T>& g) {
            xt::xarray<T> s = T(1) / (T(1) + xt::exp(-a));
            return xt::xarray<T>(g * s * (T(1) + a * (T(1) - s)));
        });
}

Tensor tanh(const Tensor& x) {
    return unary_y(
        x, "tanh", "TanhBackward", []<class T>(const xt::xarray<T>& a) { return xt::tanh(a); },
        []<class T>(const xt::xarray<T>& y, const xt::xarray<T>& g) { return g * (T(1) - y * y); });
}

Tensor exp(const Tensor& x) {
    return unary_y(
        x, "exp", "ExpBackward", []<class T>(const xt::xarray<T>& a) { return xt::exp(a); },
        []<class T>(const xt::xarray<T>& y, const xt::xarray<T>& g) { return g * y; });
}

Tensor log(const Tensor& x) {
    return unary_x(
        x, "log", "LogBackward", []<class T>(const xt::xarray<T>& a) { return xt::log(a); },
        []<class T>(const xt::xarray<T>& a, const xt::xarray<T>& g) { return g / a; });
}

Tensor sqrt(const Tensor& x) {
    return unary_y(
        x, "sqrt", "SqrtBackward", []<class T>(const xt::xarray<T>& a) { return xt::sqrt(a); },
        []<class T>(const xt::xarray<T>& y, const xt::xarray<T>& g) { return g / (T(2) * y); });
}

Tensor pow(const Tensor& x, double exponent) {
    return unary_x(
        x, "pow", "PowBackward",
        [exponent]<class T>(const xt::xarray<T>& a) { return xt::pow(a, T(exponent)); },
        [exponent]<class T>(const xt::xarray<T>& a, const xt::xarray<T>& g) {
            if (exponent == 0.0) return xt::xarray<T>(xt::zeros_like(a));
            return xt::xarray<T>(g * T(exponent) * xt::pow(a, T(exponent - 1.0)));
        });
}

// abs'(0) = 0, as in PyTorch.
Tensor abs(const Tensor& x) {
    return unary_x(
        x, "abs", "AbsBackward", []<class T>(const xt::xarray<T>& a) { return xt::abs(a); },
        []<class T>(const xt::xarray<T>& a, const xt::xarray<T>& g) { return g * xt::sign(a); });
}

// Inverted dropout: zero each element with probability p, scale the rest by
// 1 / (1 - p). The mask comes from a counter-based hash of one key drawn from
// the global generator, so manual_seed makes it reproducible.
Tensor dropout(const Tensor& x, double p, bool training) {
    check(p >= 0.0 && p <= 1.0, "dropout: expected p in [0, 1] (got {})", p);
    if (!training || p == 0.0) return x;
    std::uint64_t key = next_random_key();
    return detail::visit_floating(x, "dropout", [&]<class T>(xt::xarray<T>& a) {
        const T scale = p == 1.0 ? T(0) : T(1.0 / (1.0 - p));
        // Keep when a 53-bit uniform draw is >= p.
        const auto threshold = static_cast<std::uint64_t>(p * 9007199254740992.0);
        auto mask = xt::xarray<T>::from_shape(a.shape());
        T* m = mask.data();
        for (std::size_t i = 0; i < mask.size(); ++i) {
            m[i] = (mix(key + i * 0x9e3779b97f4a7c15ULL) >> 11) >= threshold ? scale : T(0);
        }
        Tensor out = wrap(xt::xarray<T>(a * mask));
        return make_result(out, "DropoutBackward", {x},
                           [saved = wrap(std::move(mask))](const Tensor& g) {
                               return std::vector<Tensor>{
                                   wrap(xt::xarray<T>(g.data<T>() * saved.template data<T>()))};
                           });
    });
}

}  // namespace xg
