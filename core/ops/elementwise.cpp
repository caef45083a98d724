// Elementwise ops: every row of the table in elementwise_rules.hpp run through
// the same generic loops (binary rows with NumPy broadcasting), and dropout.
// Where a gradient may be written over a buffer is grad_buffers.hpp's to decide.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xoperation.hpp>

#include "buffer_cache.hpp"
#include "dropout_mask.hpp"
#include "elementwise_rules.hpp"
#include "grad_buffers.hpp"
#include "integer_ops.hpp"
#include "internal.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

using autograd::make_result;
using detail::check_not_bool;
using detail::expanded;
using detail::map_integers;
using detail::Saves;
using detail::wrap;

namespace {

// ---- unary rows ----

template <class Rule>
constexpr bool grad_is_g() {
    if constexpr (requires { Rule::kGradIsG; })
        return Rule::kGradIsG;
    else
        return false;
}

// out[i] = forward(in[i]), through the vectorised kernels for an activation row.
// Both split across threads (for_chunks; the activation kernels split themselves).
template <class Rule, class T>
void forward_loop(const Rule& rule, const T* in, T* out, std::size_t n) {
    if constexpr (requires { Rule::kKernel; }) {
        detail::activation_forward(Rule::kKernel, in, out, n);
    } else {
        detail::for_chunks(n, [&](std::size_t first, std::size_t count) {
            for (std::size_t i = first; i < first + count; ++i) out[i] = rule.forward(in[i]);
        });
    }
}

// gx[i] = grad(s[i], g[i]), or grad(g[i]) for a row that saves nothing.
template <class Rule, class T>
void grad_loop(const Rule& rule, const T* s, const T* g, T* gx, std::size_t n) {
    if constexpr (requires { Rule::kKernel; }) {
        detail::activation_grad(Rule::kKernel, s, g, gx, n);
    } else {
        detail::for_chunks(n, [&](std::size_t first, std::size_t count) {
            for (std::size_t i = first; i < first + count; ++i) {
                if constexpr (Rule::kSaves == Saves::Nothing)
                    gx[i] = rule.grad(g[i]);
                else
                    gx[i] = rule.grad(s[i], g[i]);
            }
        });
    }
}

// What the row's backward reads, for the in-place checks (autograd::Reads).
template <class Rule>
constexpr autograd::Reads kReads = Rule::kSaves == Saves::Input    ? autograd::Reads::Inputs
                                   : Rule::kSaves == Saves::Output ? autograd::Reads::Output
                                                                   : autograd::Reads::Nothing;

// A row with its derivative also written with ops (grad_op), so that its
// backward can be recorded for double backward.
template <class Rule>
constexpr bool kHasGradOp = requires(const Rule& rule, const Tensor& t) {
    rule.grad_op(t, t);
}
|| requires(const Rule& rule, const Tensor& t) { rule.grad_op(t); };

// The row's gradient with ops, its saved value back in the graph: the input
// with the input's history, the output as this node's own.
template <class Rule>
Tensor grad_with_ops(const Rule& rule, const std::shared_ptr<Storage>& saved, const Tensor& g) {
    if constexpr (Rule::kSaves == Saves::Nothing) {
        return rule.grad_op(g);
    } else {
        const Tensor s = Rule::kSaves == Saves::Input
                             ? autograd::saved_input(0, detail::tensor_of(saved))
                             : autograd::saved_output(detail::tensor_of(saved));
        if constexpr (requires { Rule::kPiecewiseLinear; })
            return detail::with_zero_derivative(rule.grad_op(s, g), s);
        return rule.grad_op(s, g);
    }
}

// ---- integer and bool tensors (no gradients: they cannot require one) ----

// A binary row on two int64 tensors, or two bool ones (computed as int64 and
// turned back: add is logical or, mul logical and, as PyTorch's).
template <class Rule>
Tensor integer_binary(const Tensor& a, const Tensor& b) {
    const bool logical = a.dtype() == kBool;
    const Shape shape = detail::broadcast_shapes(a.shape(), b.shape(), Rule::kName);
    const auto x = expanded(a.to(kInt64).data<std::int64_t>(), shape);
    const auto y = expanded(b.to(kInt64).data<std::int64_t>(), shape);
    auto out = xt::xarray<std::int64_t>::from_shape(shape);
    for (std::size_t i = 0; i < x.size(); ++i) out.data()[i] = Rule::forward(x[i], y[i]);
    Tensor result = wrap(std::move(out));
    return logical ? result.to(kBool) : result;
}

// PyTorch keeps an integer tensor's dtype through these rows; every other row
// computes in float32, the default dtype (exp of an int64 tensor is float32).
template <class Rule>
constexpr bool kKeepsIntegers =
    std::is_same_v<Rule, detail::NegRule> || std::is_same_v<Rule, detail::AbsRule> ||
    std::is_same_v<Rule, detail::SignRule> || std::is_same_v<Rule, detail::ReluRule> ||
    std::is_same_v<Rule, detail::SquareRule>;

template <class Rule>
Tensor unary(const Tensor& x, const Rule& rule);

template <class Rule>
Tensor integer_unary(const Tensor& x, const Rule& rule) {
    if constexpr (kKeepsIntegers<Rule>) {
        if (x.dtype() == kBool) {  // PyTorch: sign(b) is b, square(b) is int64, the rest refuse
            if constexpr (std::is_same_v<Rule, detail::SignRule>) return x.clone();
            check(std::is_same_v<Rule, detail::SquareRule>,
                  "{}: expected a numeric tensor (got bool)", rule.kName);
            return integer_unary(x.to(kInt64), rule);
        }
        return map_integers(x, [&](std::int64_t v) { return rule.forward(v); });
    } else {
        return unary(x.to(kFloat32), rule);
    }
}

// y = rule(x), saving for backward only the value the row's gradient reads.
template <class Rule>
Tensor unary(const Tensor& x, const Rule& rule) {
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(unary(detail::computable(x), rule), *to);
    if (x.defined() && !is_floating_point(x.dtype())) return integer_unary(x, rule);
    return detail::visit_floating(x, rule.kName, [&]<class T>(xt::xarray<T>& a) {
        Tensor result = detail::empty_tensor<T>(a.shape());
        forward_loop(rule, a.data(), result.data<T>().data(), a.size());
        if constexpr (grad_is_g<Rule>()) {
            return make_result(
                std::move(result), rule.kNode, {x},
                [](const Tensor& g) {
                    if (autograd::creating_graph()) return autograd::Gradients{g};
                    return autograd::Gradients{autograd::pass_on(g)};
                },
                autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
        } else {
            std::shared_ptr<Storage> saved;
            if constexpr (Rule::kSaves != Saves::Nothing)
                saved = (Rule::kSaves == Saves::Output ? result : x).impl()->storage;
            return make_result(
                std::move(result), rule.kNode, {x},
                [rule, saved = std::move(saved)](const Tensor& g) {
                    if constexpr (kHasGradOp<Rule>) {
                        if (autograd::creating_graph())
                            return autograd::Gradients{grad_with_ops(rule, saved, g)};
                    }
                    const T* s = saved ? std::get<xt::xarray<T>>(*saved).data() : nullptr;
                    auto [gx] = autograd::elementwise_grads<T, 1>(
                        g, {{{true}}}, [&](const T* gp, std::array<T*, 1> out, std::size_t n) {
                            grad_loop(rule, s, gp, out[0], n);
                        });
                    return autograd::Gradients{gx};
                },
                kHasGradOp<Rule> ? autograd::DoubleBackward::Supported
                                 : autograd::DoubleBackward::Unsupported,
                kReads<Rule>);
        }
    });
}

// ---- binary rows ----

// The gradient of a broadcast operand: g summed back to the operand's shape.
Tensor reduce_to(const Tensor& g, std::span<const std::size_t> shape) {
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

// f(x, y) elementwise with NumPy broadcasting, as a tensor without history. f
// takes scalars or xtensor expressions alike. Equal shapes, and one operand
// repeating along the other's leading dims (a bias row), take one raw loop;
// other broadcasts go through xtensor.
template <class T, class F>
Tensor broadcast_apply(const xt::xarray<T>& x, const xt::xarray<T>& y, F f) {
    const bool y_row = row_period(x.shape(), y.shape()) != 0;
    const bool x_row = !y_row && row_period(y.shape(), x.shape()) != 0;
    if (!y_row && !x_row) return wrap(xt::xarray<T>(f(x, y)));
    Tensor out = detail::empty_tensor<T>(y_row ? x.shape() : y.shape());
    const T *xp = x.data(), *yp = y.data();
    T* o = out.data<T>().data();
    const std::size_t size = y_row ? x.size() : y.size(), n = y_row ? y.size() : x.size();
    if (n == 0) return out;
    if (size == n) {  // equal shapes
        detail::for_chunks(n, [&](std::size_t first, std::size_t count) {
            for (std::size_t j = first; j < first + count; ++j) o[j] = f(xp[j], yp[j]);
        });
        return out;
    }
    // Rows across threads, each one loop over the repeated operand.
    detail::parallel_rows(size / n, n, [&](std::size_t row) {
        const std::size_t r = row * n;
        if (y_row) {
            for (std::size_t j = 0; j < n; ++j) o[r + j] = f(xp[r + j], yp[j]);
        } else {
            for (std::size_t j = 0; j < n; ++j) o[r + j] = f(xp[j], yp[r + j]);
        }
    });
    return out;
}

// The computed gradients of a binary row, at g's shape: each element's
// operands are read before its outputs are written (ga or gb may be g's
// buffer). x and y are null for a row that saves no inputs.
template <class Rule, class T>
void binary_grad_chunk(const T* x, const T* y, const T* g, T* ga, T* gb, std::size_t n) {
    if constexpr (!Rule::kSavesInputs) {  // add passes g to both, sub negates it for b
        if constexpr (!Rule::kGradBIsG) {
            for (std::size_t i = 0; gb && i < n; ++i) gb[i] = Rule::grad_b(g[i]);
        }
    } else if (ga && gb) {
        for (std::size_t i = 0; i < n; ++i) {
            const T xi = x[i], yi = y[i], gi = g[i];
            ga[i] = Rule::grad_a(xi, yi, gi);
            gb[i] = Rule::grad_b(xi, yi, gi);
        }
    } else if (ga) {
        for (std::size_t i = 0; i < n; ++i) ga[i] = Rule::grad_a(x[i], y[i], g[i]);
    } else if (gb) {
        for (std::size_t i = 0; i < n; ++i) gb[i] = Rule::grad_b(x[i], y[i], g[i]);
    }
}

// binary_grad_chunk across threads (for_chunks).
template <class Rule, class T>
void binary_grad_loop(const T* x, const T* y, const T* g, T* ga, T* gb, std::size_t n) {
    detail::for_chunks(n, [=](std::size_t i, std::size_t m) {
        binary_grad_chunk<Rule>(x ? x + i : x, y ? y + i : y, g + i, ga ? ga + i : ga,
                                gb ? gb + i : gb, m);
    });
}

// A saved operand's values at g's shape: its own array, or a broadcast copy.
// A row repeated along g's leading dims (a bias) is copied row by row across
// threads; other broadcasts go through xtensor.
template <class T>
const T* at_shape_of(const Tensor& g, const std::shared_ptr<Storage>& operand,
                     std::optional<xt::xarray<T>>& copy) {
    if (!operand) return nullptr;
    const auto& values = std::get<xt::xarray<T>>(*operand);
    const auto& shape = g.data<T>().shape();
    if (std::ranges::equal(values.shape(), shape)) return values.data();
    if (const std::size_t n = row_period(shape, values.shape())) {
        copy = detail::empty_array<T>(shape);
        const T* row = values.data();
        T* out = copy->data();
        detail::parallel_rows(copy->size() / n, n,
                              [=](std::size_t r) { std::copy(row, row + n, out + r * n); });
    } else {
        copy = xt::xarray<T>(xt::broadcast(values, shape));
    }
    return copy->data();
}

// A binary row's backward: gradients at g's shape, summed back to the shape
// of a broadcast operand (one that is g itself straight from g, uncopied).
template <class Rule, class T>
autograd::Gradients binary_grads(const Tensor& g, const std::shared_ptr<Storage>& x,
                                 const std::shared_ptr<Storage>& y,
                                 std::span<const std::size_t> shape_a,
                                 std::span<const std::size_t> shape_b, bool need_a, bool need_b) {
    const bool full_a = detail::same_shape(g, shape_a), full_b = detail::same_shape(g, shape_b);
    Tensor ga, gb;
    if (Rule::kGradAIsG && need_a && !full_a) ga = reduce_to(g, shape_a);
    if (Rule::kGradBIsG && need_b && !full_b) gb = reduce_to(g, shape_b);
    std::optional<xt::xarray<T>> x_copy, y_copy;
    const T* xp = at_shape_of<T>(g, x, x_copy);
    const T* yp = at_shape_of<T>(g, y, y_copy);
    auto [full_ga, full_gb] = autograd::elementwise_grads<T, 2>(
        g,
        {{{need_a && !ga.defined(), Rule::kGradAIsG}, {need_b && !gb.defined(), Rule::kGradBIsG}}},
        [&](const T* gp, std::array<T*, 2> out, std::size_t n) {
            binary_grad_loop<Rule>(xp, yp, gp, out[0], out[1], n);
        });
    if (full_ga.defined()) ga = reduce_to(full_ga, shape_a);
    if (full_gb.defined()) gb = reduce_to(full_gb, shape_b);
    return {ga, gb};
}

// binary_grads with ops, for double backward: the row's grad_op on the saved
// operands back in the graph, each summed back to its operand's shape.
template <class Rule>
autograd::Gradients binary_grads_with_ops(const Tensor& g, const std::shared_ptr<Storage>& sa,
                                          const std::shared_ptr<Storage>& sb,
                                          std::span<const std::size_t> shape_a,
                                          std::span<const std::size_t> shape_b) {
    Tensor x, y;
    if constexpr (Rule::kSavesInputs) {
        x = autograd::saved_input(0, detail::tensor_of(sa));
        y = autograd::saved_input(1, detail::tensor_of(sb));
    }
    auto [ga, gb] = Rule::grad_op(x, y, g);
    return {detail::sum_to_op(ga, Shape(shape_a.begin(), shape_a.end())),
            detail::sum_to_op(gb, Shape(shape_b.begin(), shape_b.end()))};
}

// out = Rule::forward(a, b) with broadcasting.
template <class Rule>
Tensor binary(const Tensor& a, const Tensor& b) {
    check(a.defined() && b.defined(), "{}: expected defined tensors (got an undefined one)",
          Rule::kName);
    const Dtype dtype = result_type(a, b);
    if (compute_dtype(dtype) != dtype) {  // float16, int8, ...: computed wider, rounded once
        const Dtype wide = compute_dtype(dtype);
        return detail::rounded(binary<Rule>(a.to(wide), b.to(wide)), dtype);
    }
    if (a.dtype() != dtype || b.dtype() != dtype) return binary<Rule>(a.to(dtype), b.to(dtype));
    if (!is_floating_point(dtype)) return integer_binary<Rule>(a, b);
    const auto sizes_a = a.sizes(), sizes_b = b.sizes();
    if (!std::ranges::equal(sizes_a, sizes_b))
        detail::check_broadcastable(sizes_a, sizes_b, Rule::kName);
    detail::ArrayShape shape_a(sizes_a.begin(), sizes_a.end()),
        shape_b(sizes_b.begin(), sizes_b.end());
    return detail::visit_floating(a, Rule::kName, [&]<class T>(xt::xarray<T>& av) {
        Tensor out = broadcast_apply(
            av, b.data<T>(), [](const auto& u, const auto& v) { return Rule::forward(u, v); });
        std::shared_ptr<Storage> sa, sb;  // what backward reads, if anything
        if constexpr (Rule::kSavesInputs) sa = a.impl()->storage, sb = b.impl()->storage;
        return make_result(
            std::move(out), Rule::kNode, {a, b},
            [sa = std::move(sa), sb = std::move(sb), shape_a = std::move(shape_a),
             shape_b = std::move(shape_b), need_a = a.requires_grad(),
             need_b = b.requires_grad()](const Tensor& g) {
                if (autograd::creating_graph())
                    return binary_grads_with_ops<Rule>(g, sa, sb, shape_a, shape_b);
                return binary_grads<Rule, T>(g, sa, sb, shape_a, shape_b, need_a, need_b);
            },
            autograd::DoubleBackward::Supported,
            Rule::kSavesInputs ? autograd::Reads::Inputs : autograd::Reads::Nothing);
    });
}

Tensor scalar_like(const Tensor& t, double value, const char* op) {
    return detail::visit_floating(t, op, [&]<class T>(xt::xarray<T>&) {
        return wrap(detail::scalar_array(static_cast<T>(value)));
    });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary<detail::AddRule>(a, b); }
Tensor sub(const Tensor& a, const Tensor& b) {
    check_not_bool(a);
    check_not_bool(b);
    return binary<detail::SubRule>(a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) { return binary<detail::MulRule>(a, b); }
// Integers divide truly, in float32 (PyTorch's `/`).
Tensor div(const Tensor& a, const Tensor& b) {
    check(a.defined() && b.defined(), "div: expected defined tensors (got an undefined one)");
    if (!is_floating_point(result_type(a, b)))
        return binary<detail::DivRule>(a.to(kFloat32), b.to(kFloat32));
    return binary<detail::DivRule>(a, b);
}
Tensor neg(const Tensor& x) { return unary(x, detail::NegRule{}); }

Tensor add(const Tensor& a, double b) { return unary(a, detail::AddConstantRule{b}); }
Tensor sub(const Tensor& a, double b) {
    check_not_bool(a);
    return unary(a, detail::SubConstantRule{b});
}
Tensor rsub(double a, const Tensor& b) {
    check_not_bool(b);
    return unary(b, detail::ConstantSubRule{a});
}
Tensor mul(const Tensor& a, double b) { return unary(a, detail::MulConstantRule{b}); }
Tensor div(const Tensor& a, double b) { return unary(a, detail::DivConstantRule{b}); }
Tensor rdiv(double a, const Tensor& b) {
    check(b.defined(), "div: expected a defined tensor (got an undefined one)");
    if (!is_floating_point(b.dtype())) return rdiv(a, b.to(kFloat32));
    return div(scalar_like(b, a, "div"), b);
}

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

Tensor relu(const Tensor& x) { return unary(x, detail::ReluRule{}); }
Tensor sigmoid(const Tensor& x) { return unary(x, detail::SigmoidRule{}); }
Tensor silu(const Tensor& x) { return unary(x, detail::SiluRule{}); }
Tensor tanh(const Tensor& x) { return unary(x, detail::TanhRule{}); }
Tensor exp(const Tensor& x) { return unary(x, detail::ExpRule{}); }
Tensor log(const Tensor& x) { return unary(x, detail::LogRule{}); }
Tensor sqrt(const Tensor& x) { return unary(x, detail::SqrtRule{}); }
Tensor abs(const Tensor& x) { return unary(x, detail::AbsRule{}); }
Tensor pow(const Tensor& x, double exponent) { return unary(x, detail::PowRule{exponent}); }
Tensor rsqrt(const Tensor& x) { return unary(x, detail::RsqrtRule{}); }
Tensor reciprocal(const Tensor& x) { return unary(x, detail::ReciprocalRule{}); }
Tensor square(const Tensor& x) { return unary(x, detail::SquareRule{}); }
Tensor log1p(const Tensor& x) { return unary(x, detail::Log1pRule{}); }
Tensor expm1(const Tensor& x) { return unary(x, detail::Expm1Rule{}); }
Tensor sin(const Tensor& x) { return unary(x, detail::SinRule{}); }
Tensor cos(const Tensor& x) { return unary(x, detail::CosRule{}); }
Tensor sign(const Tensor& x) { return unary(x, detail::SignRule{}); }
Tensor elu(const Tensor& x, double alpha) { return unary(x, detail::EluRule{alpha}); }
// SELU's constants (Klambauer et al. 2017), as PyTorch spells them.
Tensor selu(const Tensor& x) {
    return unary(
        x, detail::EluRule{1.6732632423543772848170429916717, 1.0507009873554804934193349852946});
}
Tensor leaky_relu(const Tensor& x, double negative_slope) {
    return unary(x, detail::LeakyReluRule{negative_slope});
}
Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
    check(min_val <= max_val, "hardtanh: expected min_val <= max_val (got {} and {})", min_val,
          max_val);
    return unary(x, detail::HardtanhRule{min_val, max_val});
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
    return unary(x, detail::SoftplusRule{beta, threshold});
}
Tensor mish(const Tensor& x) { return unary(x, detail::MishRule{}); }
Tensor logsigmoid(const Tensor& x) { return unary(x, detail::LogSigmoidRule{}); }
Tensor erf(const Tensor& x) { return unary(x, detail::ErfRule{}); }
namespace {
// An integer tensor clamped by whole-number bounds stays int64, as PyTorch's
// clamp with int bounds (a double 2.0 counts as whole here: C++ cannot tell).
bool whole(std::optional<double> bound) {
    return !bound || (std::trunc(*bound) == *bound && std::abs(*bound) < 9.2e18);
}
}  // namespace

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
    check(min || max, "clamp: expected at least one of min and max (got neither)");
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(clamp(detail::computable(x), min, max), *to);
    if (x.defined() && x.dtype() == kBool && whole(min) && whole(max))
        return clamp(x.to(kInt64), min, max);  // bool meets int bounds at int64
    if (x.defined() && x.dtype() == kInt64 && whole(min) && whole(max)) {
        const auto lo =
            min ? static_cast<std::int64_t>(*min) : std::numeric_limits<std::int64_t>::min();
        const auto hi =
            max ? static_cast<std::int64_t>(*max) : std::numeric_limits<std::int64_t>::max();
        return map_integers(x, [lo, hi](std::int64_t v) { return std::min(std::max(v, lo), hi); });
    }
    constexpr double inf = std::numeric_limits<double>::infinity();
    const char* node = min && max ? "ClampBackward" : min ? "ClampMinBackward" : "ClampMaxBackward";
    return unary(x, detail::ClampRule{"clamp", node, min.value_or(-inf), max.value_or(inf)});
}
Tensor clamp_min(const Tensor& x, double min) { return clamp(x, min, std::nullopt); }
Tensor clamp_max(const Tensor& x, double max) { return clamp(x, std::nullopt, max); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary<detail::MaximumRule>(a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary<detail::MinimumRule>(a, b); }

Tensor gelu(const Tensor& x, const std::string& approximate) {
    check(approximate == "none" || approximate == "tanh",
          "gelu: expected approximate 'none' or 'tanh' (got '{}')", approximate);
    if (approximate == "none") return unary(x, detail::GeluRule{});
    return unary(x, detail::GeluTanhRule{});
}

// Inverted dropout: zero each element with probability p, scale the rest by
// 1 / (1 - p). The mask comes from a counter-based hash of one key drawn from
// the global generator, so manual_seed makes it reproducible. Backward keeps
// only the key and hashes the mask again, slice by slice: no byte per element
// lives from forward to backward.
Tensor dropout(const Tensor& x, double p, bool training) {
    check(p >= 0.0 && p <= 1.0, "dropout: expected p in [0, 1] (got {})", p);
    if (!training || p == 0.0) return x;
    if (auto to = detail::storage_dtype(x))
        return detail::rounded(dropout(detail::computable(x), p, training), *to);
    const detail::Mask mask{true, next_random_key(), detail::dropout_threshold(p)};
    return detail::masked_scale(x, mask, p == 1.0 ? 0.0 : 1.0 / (1.0 - p));
}

// Linear in x, so its backward is itself on g: recorded as such under create_graph.
Tensor detail::masked_scale(const Tensor& x, const Mask& mask, double scale) {
    return detail::visit_floating(x, "dropout", [&]<class T>(xt::xarray<T>& a) {
        auto y = detail::empty_array<T>(a.shape());
        detail::apply_dropout(mask, T(scale), 0, a.data(), y.data(), y.size());
        return make_result(
            wrap(std::move(y)), "DropoutBackward", {x},
            [mask, scale](const Tensor& g) {
                if (autograd::creating_graph())
                    return autograd::Gradients{masked_scale(g, mask, scale)};
                auto [gx] = autograd::elementwise_grads<T, 1>(
                    g, {{{true}}}, [&](const T* gp, std::array<T*, 1> out, std::size_t n) {
                        detail::apply_dropout(mask, T(scale), 0, gp, out[0], n);
                    });
                return autograd::Gradients{gx};
            },
            autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
    });
}

}  // namespace xg
