// Elementwise ops: arithmetic with NumPy broadcasting, activations, dropout.
// Each op is its forward expression next to its gradient rule.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include <xtensor/xoperation.hpp>

#include "activation_rules.hpp"
#include "buffer_cache.hpp"
#include "cpu_dispatch.hpp"
#include "dropout_mask.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// y = forward(x), one pass on raw memory: forward_loop(in, out, n). The
// gradient rule sees the saved input, or the output when SaveOutput (exp,
// sqrt, ...): grad_loop(saved, g, gx, n), gx written over g's buffer when the
// engine holds the only handle to it.
template <bool SaveOutput, class ForwardLoop, class GradLoop>
Tensor unary_loops(const Tensor& x, const char* op, const char* node, ForwardLoop forward_loop,
                   GradLoop grad_loop) {
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        auto y = detail::empty_array<T>(a.shape());
        forward_loop(a.data(), y.data(), y.size());
        Tensor result = wrap(std::move(y));
        std::shared_ptr<Storage> saved = (SaveOutput ? result : x).impl()->storage;
        return make_result(result, node, {x}, [saved, grad_loop](const Tensor& g) {
            const T* gp = g.data<T>().data();
            const T* s = std::get<xt::xarray<T>>(*saved).data();
            xt::xarray<T> d = detail::take_buffer<T>(g);
            grad_loop(s, gp, d.data(), d.size());
            return autograd::Gradients{wrap(std::move(d))};
        });
    });
}

// unary_loops with per-element rules: y[i] = forward(x[i]), gx[i] = grad(saved[i], g[i]).
template <bool SaveOutput, class Forward, class Grad>
Tensor unary(const Tensor& x, const char* op, const char* node, Forward forward, Grad grad) {
    return unary_loops<SaveOutput>(
        x, op, node,
        [forward]<class T>(const T* in, T* out, std::size_t n) {
            for (std::size_t i = 0; i < n; ++i) out[i] = forward(in[i]);
        },
        [grad]<class T>(const T* s, const T* g, T* gx, std::size_t n) {
            for (std::size_t i = 0; i < n; ++i) gx[i] = grad(s[i], g[i]);
        });
}

// The gradient of a broadcast operand: g summed back to the operand's shape.
Tensor reduce_to(const Tensor& g, const Shape& shape) {
    if (detail::same_shape(g, shape)) return g;
    return detail::visit_floating(g, "backward", [&]<class T>(xt::xarray<T>& a) {
        return wrap(detail::sum_to_shape(a, shape));
    });
}

// n when `row` repeats every n elements of `full`: row's shape, leading 1s
// aside, is full's trailing shape, and full is the broadcast shape. 0 otherwise.
template <class A, class B>
std::size_t row_period(const A& full, const B& row) {
    if (row.size() > full.size()) return 0;
    std::size_t skip = 0;
    while (skip < row.size() && row[skip] == 1) ++skip;
    const std::size_t k = row.size() - skip;
    if (!std::equal(row.begin() + skip, row.end(), full.end() - k)) return 0;
    std::size_t n = 1;
    for (std::size_t i = skip; i < row.size(); ++i) n *= row[i];
    return n;
}

// f(x, y) elementwise with NumPy broadcasting. f takes scalars or xtensor
// expressions alike. Equal shapes, and one operand repeating along the
// other's leading dims (a bias row), take one raw loop; other broadcasts go
// through xtensor.
template <class T, class F>
xt::xarray<T> broadcast_apply(const xt::xarray<T>& x, const xt::xarray<T>& y, F f) {
    const bool y_row = row_period(x.shape(), y.shape()) != 0;
    const bool x_row = !y_row && row_period(y.shape(), x.shape()) != 0;
    if (!y_row && !x_row) return xt::xarray<T>(f(x, y));
    auto out = detail::empty_array<T>(y_row ? x.shape() : y.shape());
    const T *xp = x.data(), *yp = y.data();
    T* o = out.data();
    const std::size_t size = out.size(), n = y_row ? y.size() : x.size();
    if (n == 0) return out;
    for (std::size_t r = 0; r < size; r += n) {
        if (y_row) {
            for (std::size_t j = 0; j < n; ++j) o[r + j] = f(xp[r + j], yp[j]);
        } else {
            for (std::size_t j = 0; j < n; ++j) o[r + j] = f(xp[j], yp[r + j]);
        }
    }
    return out;
}

// out = forward(a, b) with broadcasting; grad_a(a, b, g) and grad_b(a, b, g)
// give full-size gradients (arrays, made with broadcast_apply) that reduce_to
// sums back.
template <class Forward, class GradA, class GradB>
Tensor binary(const Tensor& a, const Tensor& b, const char* op, const char* node, Forward forward,
              GradA grad_a, GradB grad_b) {
    detail::check_same_dtype(a, b, op);
    Shape shape_a = a.shape(), shape_b = b.shape();
    detail::broadcast_shapes(shape_a, shape_b, op);
    return detail::visit_floating(a, op, [&]<class T>(xt::xarray<T>& av) {
        Tensor out = wrap(broadcast_apply(av, b.data<T>(), forward));
        bool need_a = a.requires_grad(), need_b = b.requires_grad();
        return make_result(out, node, {a, b},
                           [sa = a.detach(), sb = b.detach(), shape_a, shape_b, need_a, need_b,
                            grad_a, grad_b](const Tensor& g) {
                               auto& x = sa.data<T>();
                               auto& y = sb.data<T>();
                               auto& gv = g.data<T>();
                               Tensor ga, gb;
                               if (need_a) ga = reduce_to(wrap(grad_a(x, y, gv)), shape_a);
                               if (need_b) gb = reduce_to(wrap(grad_b(x, y, gv)), shape_b);
                               return autograd::Gradients{ga, gb};
                           });
    });
}

Tensor scalar_like(const Tensor& t, double value, const char* op) {
    return detail::visit_floating(t, op, [&]<class T>(xt::xarray<T>&) {
        return wrap(detail::scalar_array(static_cast<T>(value)));
    });
}

Tensor copy_of(const Tensor& t) {
    return detail::visit_floating(t, "backward", [&]<class T>(xt::xarray<T>& a) {
        auto copy = detail::empty_array<T>(a.shape());
        std::copy(a.begin(), a.end(), copy.begin());
        return wrap(std::move(copy));
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
        return wrap(
            subtract ? broadcast_apply(av, bv, [](const auto& u, const auto& v) { return u - v; })
                     : broadcast_apply(av, bv, [](const auto& u, const auto& v) { return u + v; }));
    });
    bool need_a = a.requires_grad(), need_b = b.requires_grad();
    return make_result(out, subtract ? "SubBackward" : "AddBackward", {a, b}, [=](const Tensor& g) {
        // The engine keeps a gradient without copying only when it is the sole
        // handle: pass g's buffer on to one input, copy it at most once.
        Shape shape_g = g.shape();
        auto through = [&](const Shape& shape) {
            return shape == shape_g ? detail::pass_through(g) : reduce_to(g, shape);
        };
        Tensor ga, gb;
        if (need_b) {
            // A copy only when b would take g's buffer that a takes too.
            const bool full = shape_b == shape_g;
            gb = subtract && full ? neg(g)
                 : subtract       ? neg(reduce_to(g, shape_b))
                 : need_a && full ? copy_of(g)
                                  : through(shape_b);
        }
        if (need_a) ga = through(shape_a);
        return autograd::Gradients{ga, gb};
    });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return add_or_sub(a, b, false); }
Tensor sub(const Tensor& a, const Tensor& b) { return add_or_sub(a, b, true); }

Tensor mul(const Tensor& a, const Tensor& b) {
    detail::check_same_dtype(a, b, "mul");
    if (detail::same_shape(a, b)) {  // the common case (GLU gating): one pass each way
        return detail::visit_floating(a, "mul", [&]<class T>(xt::xarray<T>& av) {
            auto out = detail::empty_array<T>(av.shape());
            const T *x = av.data(), *y = b.data<T>().data();
            T* o = out.data();
            for (std::size_t i = 0, n = out.size(); i < n; ++i) o[i] = x[i] * y[i];
            bool need_a = a.requires_grad(), need_b = b.requires_grad();
            return make_result(wrap(std::move(out)), "MulBackward", {a, b},
                               [sa = a.detach(), sb = b.detach(), need_a, need_b](const Tensor& g) {
                                   const T* gp = g.data<T>().data();
                                   const T *x = sa.data<T>().data(), *y = sb.data<T>().data();
                                   Tensor ga, gb;
                                   if (need_b) {  // before ga, which may take g's buffer
                                       auto d = detail::empty_array<T>(g.data<T>().shape());
                                       T* o = d.data();
                                       for (std::size_t i = 0, n = d.size(); i < n; ++i)
                                           o[i] = gp[i] * x[i];
                                       gb = wrap(std::move(d));
                                   }
                                   if (need_a) {
                                       xt::xarray<T> d = detail::take_buffer<T>(g);
                                       T* o = d.data();
                                       for (std::size_t i = 0, n = d.size(); i < n; ++i)
                                           o[i] = gp[i] * y[i];
                                       ga = wrap(std::move(d));
                                   }
                                   return autograd::Gradients{ga, gb};
                               });
        });
    }
    auto times = [](const auto& u, const auto& v) { return u * v; };
    return binary(
        a, b, "mul", "MulBackward", times,
        [=](const auto&, const auto& y, const auto& g) { return broadcast_apply(g, y, times); },
        [=](const auto& x, const auto&, const auto& g) { return broadcast_apply(g, x, times); });
}

Tensor div(const Tensor& a, const Tensor& b) {
    auto over = [](const auto& u, const auto& v) { return u / v; };
    return binary(
        a, b, "div", "DivBackward", over,
        [=](const auto&, const auto& y, const auto& g) { return broadcast_apply(g, y, over); },
        [](const auto& x, const auto& y, const auto& g) {  // -g x / y^2
            auto gx = broadcast_apply(g, x, [](const auto& u, const auto& v) { return u * v; });
            return broadcast_apply(gx, y,
                                   [](const auto& u, const auto& v) { return -u / (v * v); });
        });
}

Tensor neg(const Tensor& x) {
    Tensor out = detail::visit_floating(
        x, "neg", []<class T>(xt::xarray<T>& a) { return wrap(xt::xarray<T>(-a)); });
    return make_result(out, "NegBackward", {x},
                       [](const Tensor& g) { return autograd::Gradients{neg(g)}; });
}

namespace {
// x with a constant, one pass each way on raw memory: y[i] = forward(x[i]).
// Nothing is saved: the gradient is grad(g[i]), written over g's buffer when
// the engine holds the only handle to it, or g itself when Grad is nullptr_t
// (add, sub). The constant is converted to x's dtype first, as for a tensor.
template <class Forward, class Grad>
Tensor with_constant(const Tensor& x, const char* op, const char* node, Forward forward,
                     Grad grad) {
    return detail::visit_floating(x, op, [&]<class T>(xt::xarray<T>& a) {
        auto y = detail::empty_array<T>(a.shape());
        const T* in = a.data();
        T* out = y.data();
        for (std::size_t i = 0, n = y.size(); i < n; ++i) out[i] = forward(in[i]);
        return make_result(wrap(std::move(y)), node, {x}, [grad](const Tensor& g) {
            if constexpr (std::is_same_v<Grad, std::nullptr_t>) {
                static_cast<void>(grad);  // nothing to apply: g passes through
                return autograd::Gradients{detail::pass_through(g)};
            } else {
                const T* gp = g.data<T>().data();
                xt::xarray<T> d = detail::take_buffer<T>(g);
                T* o = d.data();
                for (std::size_t i = 0, n = d.size(); i < n; ++i) o[i] = grad(gp[i]);
                return autograd::Gradients{wrap(std::move(d))};
            }
        });
    });
}
}  // namespace

Tensor add(const Tensor& a, double b) {
    return with_constant(
        a, "add", "AddBackward", [b]<class T>(T x) { return x + T(b); }, nullptr);
}
Tensor sub(const Tensor& a, double b) {
    return with_constant(
        a, "sub", "SubBackward", [b]<class T>(T x) { return x - T(b); }, nullptr);
}
Tensor rsub(double a, const Tensor& b) {
    return with_constant(
        b, "sub", "SubBackward", [a]<class T>(T x) { return T(a) - x; },
        []<class T>(T g) { return -g; });
}
Tensor mul(const Tensor& a, double b) {
    return with_constant(
        a, "mul", "MulBackward", [b]<class T>(T x) { return x * T(b); },
        [b]<class T>(T g) { return g * T(b); });
}
Tensor div(const Tensor& a, double b) {
    return with_constant(
        a, "div", "DivBackward", [b]<class T>(T x) { return x / T(b); },
        [b]<class T>(T g) { return g / T(b); });
}
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

// Every rule below keeps the operation order of the xtensor expression it
// replaced (tests/core/ops/test_fused.cpp compares them); the activations'
// rules live in activation_rules.hpp, shared with the fused FFN op.
namespace {

// Through the vectorised loops the fused op uses (activation_rules.hpp).
template <class Rule>
Tensor activation(const Tensor& x, FusedActivation kind, const char* op, const char* node) {
    return unary_loops<Rule::kSavesOutput>(
        x, op, node,
        [kind]<class T>(const T* in, T* out, std::size_t n) {
            detail::activation_forward(kind, in, out, n);
        },
        [kind]<class T>(const T* s, const T* g, T* gx, std::size_t n) {
            detail::activation_grad(kind, s, g, gx, n);
        });
}

}  // namespace

Tensor relu(const Tensor& x) {
    return activation<detail::ReluRule>(x, FusedActivation::ReLU, "relu", "ReluBackward");
}

Tensor gelu(const Tensor& x, const std::string& approximate) {
    check(approximate == "none" || approximate == "tanh",
          "gelu: expected approximate 'none' or 'tanh' (got '{}')", approximate);
    if (approximate == "none")
        return activation<detail::GeluRule>(x, FusedActivation::GELU, "gelu", "GeluBackward");
    return activation<detail::GeluTanhRule>(x, FusedActivation::GELUTanh, "gelu", "GeluBackward");
}

Tensor sigmoid(const Tensor& x) {
    return activation<detail::SigmoidRule>(x, FusedActivation::Sigmoid, "sigmoid",
                                           "SigmoidBackward");
}

Tensor silu(const Tensor& x) {
    return activation<detail::SiluRule>(x, FusedActivation::SiLU, "silu", "SiluBackward");
}

Tensor tanh(const Tensor& x) {
    return activation<detail::TanhRule>(x, FusedActivation::Tanh, "tanh", "TanhBackward");
}

Tensor exp(const Tensor& x) {
    return unary<true>(
        x, "exp", "ExpBackward", []<class T>(T a) { return std::exp(a); },
        []<class T>(T y, T g) { return g * y; });
}

Tensor log(const Tensor& x) {
    return unary<false>(
        x, "log", "LogBackward", []<class T>(T a) { return std::log(a); },
        []<class T>(T a, T g) { return g / a; });
}

Tensor sqrt(const Tensor& x) {
    return unary<true>(
        x, "sqrt", "SqrtBackward", []<class T>(T a) { return std::sqrt(a); },
        []<class T>(T y, T g) { return g / (T(2) * y); });
}

namespace {
// a^e as PyTorch computes it: exponents 0.5, -0.5 and -1 as sqrt, 1 / sqrt and
// 1 / a, and 2, 3 and -2 as products, whose NaN, inf and -0.0 cases differ from
// std::pow's (sqrt(-inf) is NaN and sqrt(-0.0) is -0.0; std::pow gives inf and 0).
template <class T>
T pow_like_torch(T a, double e) {
    if (e == 0.5) return std::sqrt(a);
    if (e == -0.5) return T(1) / std::sqrt(a);
    if (e == -1.0) return T(1) / a;
    if (e == 2.0) return a * a;
    if (e == 3.0) return a * a * a;
    if (e == -2.0) return T(1) / (a * a);
    return std::pow(a, T(e));
}
}  // namespace

// d/dx = e x^(e - 1), 0 everywhere for e = 0 (NaN included), as in PyTorch.
Tensor pow(const Tensor& x, double exponent) {
    return unary<false>(
        x, "pow", "PowBackward", [exponent]<class T>(T a) { return pow_like_torch(a, exponent); },
        [exponent]<class T>(T a, T g) {
            if (exponent == 0.0) return T(0);
            return g * (T(exponent) * pow_like_torch(a, exponent - 1.0));
        });
}

// PyTorch's sgn(x) * g, sgn being 0 at NaN and at either zero: the gradient at
// NaN is 0 (NaN only for a NaN g), and +0 at -0.0.
Tensor abs(const Tensor& x) {
    return unary<false>(
        x, "abs", "AbsBackward", []<class T>(T a) { return std::abs(a); },
        []<class T>(T a, T g) { return g * (T(T(0) < a) - T(a < T(0))); });
}

// Inverted dropout: zero each element with probability p, scale the rest by
// 1 / (1 - p). The mask comes from a counter-based hash of one key drawn from
// the global generator, so manual_seed makes it reproducible. Backward keeps
// only the key and hashes the mask again, slice by slice: no byte per element
// lives from forward to backward.
namespace {
// out = in * mask * scale, the mask made slice by slice from its key: forward
// applies it to x, backward the same to the gradient. in may be out.
template <class T>
void apply_dropout(const detail::Mask& mask, T scale, const T* in, T* out, std::size_t n) {
    detail::in_mask_slices(
        mask, n, [=](std::size_t first, std::size_t m, const std::uint8_t* keep) {
            const T s = scale;  // a local: GCC does not vectorise if the stores may alias it
            const T* src = in + first;
            T* dst = out + first;
            XG_IVDEP
            for (std::size_t j = 0; j < m; ++j) dst[j] = src[j] * (keep[j] ? s : T(0));
        });
}
}  // namespace

Tensor dropout(const Tensor& x, double p, bool training) {
    check(p >= 0.0 && p <= 1.0, "dropout: expected p in [0, 1] (got {})", p);
    if (!training || p == 0.0) return x;
    const detail::Mask mask{true, next_random_key(), detail::dropout_threshold(p)};
    return detail::visit_floating(x, "dropout", [&]<class T>(xt::xarray<T>& a) {
        const T scale = p == 1.0 ? T(0) : T(1.0 / (1.0 - p));
        auto y = detail::empty_array<T>(a.shape());
        apply_dropout(mask, scale, a.data(), y.data(), y.size());
        return make_result(wrap(std::move(y)), "DropoutBackward", {x},
                           [mask, scale](const Tensor& g) {
                               const T* gp = g.data<T>().data();
                               xt::xarray<T> d = detail::take_buffer<T>(g);  // may be g's own
                               apply_dropout(mask, scale, gp, d.data(), d.size());
                               return autograd::Gradients{wrap(std::move(d))};
                           });
    });
}

namespace detail {

namespace {
// splitmix64: a counter-based hash, so mask element i depends only on (key, i).
inline std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
}  // namespace

std::uint64_t dropout_threshold(double p) {
    return static_cast<std::uint64_t>(p * 9007199254740992.0);  // p * 2^53
}

// The hash needs 64-bit multiplies, which only AVX-512 does in vector
// registers; on such CPUs the x86-64-v4 clone runs.
XG_CLONES_V4 void keep_mask(std::uint64_t key, std::size_t first, std::size_t n,
                            std::uint64_t threshold, std::uint8_t* keep) {
    for (std::size_t i = 0; i < n; ++i)
        keep[i] = (mix(key + (first + i) * 0x9e3779b97f4a7c15ULL) >> 11) >= threshold;
}

}  // namespace detail
}  // namespace xg
