// The middle of a feed-forward block, dropout(act(h) [* v]), as one op.
//
// Separately, activation, gating and dropout each read and write a full
// [tokens, d_ff] array both ways and each saves one for backward. Here every
// element goes through the same operations in the same order as in the
// separate ops (elementwise_rules.hpp, dropout_mask.hpp), in one pass.
// Backward keeps h and v (and hashes the mask again from its key), and writes
// v's gradient over v once nothing else can read it. ReLU without a gate or
// dropout keeps nothing but the output, which the next Linear saves anyway:
// ReLU's backward reads only its output. Where dropout zeroes an element, the
// output no longer tells a positive h from a negative one, and PyTorch's
// gradient there (g * 0 passed on where h > 0 or NaN, else 0) differs between
// them in the sign of zero, or when g is NaN or inf; so with dropout ReLU keeps
// h too, and reads the mask off the output instead of hashing it again.
#include <atomic>
#include <type_traits>

#include "buffer_cache.hpp"
#include "dropout_mask.hpp"
#include "elementwise_rules.hpp"
#include "grad_buffers.hpp"
#include "internal.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// What one call does, fixed before the loops run.
template <class T>
struct Pass {
    FusedActivation activation;
    bool gated, dropout;
    T scale;  // dropout's 1 / (1 - p)
};

using detail::in_mask_slices;
using detail::Mask;

// Calls f.template operator()<Rule>() for the activation's rule.
template <class F>
void with_rule(FusedActivation activation, F&& f) {
    switch (activation) {
        case FusedActivation::Identity: return f.template operator()<detail::IdentityRule>();
        case FusedActivation::ReLU: return f.template operator()<detail::ReluRule>();
        case FusedActivation::GELU: return f.template operator()<detail::GeluRule>();
        case FusedActivation::GELUTanh: return f.template operator()<detail::GeluTanhRule>();
        case FusedActivation::Sigmoid: return f.template operator()<detail::SigmoidRule>();
        case FusedActivation::SiLU: return f.template operator()<detail::SiluRule>();
        case FusedActivation::Tanh: return f.template operator()<detail::TanhRule>();
    }
}

// out = act(h) [* v] [* (keep ? scale : 0)].
template <class Rule, bool Gated, bool Dropout, class T>
inline void forward_loop(const T* h, const T* v, const std::uint8_t* keep, T scale, T* out,
                         std::size_t n) {
    XG_IVDEP
    for (std::size_t i = 0; i < n; ++i) {
        T t = Rule::forward(h[i]);
        if constexpr (Gated) t = t * v[i];
        if constexpr (Dropout) t = t * (keep[i] ? scale : T(0));
        out[i] = t;
    }
}

template <class T>
inline void forward_kernel(const Pass<T>& pass, const T* h, const T* v, const std::uint8_t* keep,
                           T* out, std::size_t n) {
    with_rule(pass.activation, [&]<class Rule>() {
        if (pass.gated && pass.dropout)
            forward_loop<Rule, true, true>(h, v, keep, pass.scale, out, n);
        else if (pass.gated)
            forward_loop<Rule, true, false>(h, v, keep, pass.scale, out, n);
        else if (pass.dropout)
            forward_loop<Rule, false, true>(h, v, keep, pass.scale, out, n);
        else
            forward_loop<Rule, false, false>(h, v, keep, pass.scale, out, n);
    });
}

// The backward of the separate ops, in their order: dropout's g * (keep ?
// scale : 0), then the gate's product rule, then the activation's rule. gh may
// be g itself and gv may be v; gh or gv is null when that input needs no gradient.
template <class Rule, bool Gated, bool Dropout, bool NeedH, bool NeedV, class T>
inline void backward_loop(const T* g, const T* h, const T* v, const std::uint8_t* keep, T scale,
                          T* gh, T* gv, std::size_t n) {
    XG_IVDEP
    for (std::size_t i = 0; i < n; ++i) {
        T gt = g[i];
        if constexpr (Dropout) gt = gt * (keep[i] ? scale : T(0));
        T ga = gt;
        if constexpr (Gated) {
            ga = gt * v[i];  // before gv[i], which may overwrite v[i]
            if constexpr (NeedV) gv[i] = gt * Rule::forward(h[i]);
        }
        if constexpr (NeedH) {
            T saved = Rule::kSaves == detail::Saves::Output ? Rule::forward(h[i]) : h[i];
            gh[i] = Rule::grad(saved, ga);
        }
    }
}

template <class T>
inline void backward_kernel(const Pass<T>& pass, const T* g, const T* h, const T* v,
                            const std::uint8_t* keep, T* gh, T* gv, std::size_t n) {
    with_rule(pass.activation, [&]<class Rule>() {
        auto run = [&]<bool Gated, bool NeedH, bool NeedV>() {
            if (pass.dropout)
                backward_loop<Rule, Gated, true, NeedH, NeedV>(g, h, v, keep, pass.scale, gh, gv,
                                                               n);
            else
                backward_loop<Rule, Gated, false, NeedH, NeedV>(g, h, v, keep, pass.scale, gh, gv,
                                                                n);
        };
        if (!pass.gated)
            run.template operator()<false, true, false>();
        else if (gh && gv)
            run.template operator()<true, true, true>();
        else if (gh)
            run.template operator()<true, true, false>();
        else
            run.template operator()<true, false, true>();
    });
}

// The single activation op's gradient: g times the derivative, from the saved value.
template <class Rule, class T>
inline void grad_loop(const T* saved, const T* g, T* gx, std::size_t n) {
    XG_IVDEP
    for (std::size_t i = 0; i < n; ++i) gx[i] = Rule::grad(saved[i], g[i]);
}

template <class T>
inline void grad_kernel(FusedActivation activation, const T* saved, const T* g, T* gx,
                        std::size_t n) {
    with_rule(activation, [&]<class Rule>() { grad_loop<Rule>(saved, g, gx, n); });
}

// Ungated ReLU's gradient after dropout, from h and the output y: where
// relu(h) > 0, y is nonzero and not NaN exactly where the element was kept (a
// dropped inf gives inf * 0, NaN), and where relu(h) <= 0 the gradient is 0
// either way. Where h is NaN, y tells nothing: gh keeps g there for
// relu_dropout_nan, and the result says whether there is such an element.
// gh may be g.
template <class T>
inline bool relu_dropout_backward(const T* g, const T* h, const T* y, T scale, T* gh,
                                  std::size_t n) {
    using Rule = detail::ReluRule;
    // As wide as T, and every value read once into a local: GCC vectorises the flag so.
    std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t> any_nan = 0;
    XG_IVDEP
    for (std::size_t i = 0; i < n; ++i) {
        const T hi = h[i], yi = y[i], gi = g[i];
        const bool kept = (yi != T(0)) & (yi == yi);  // & rather than &&: no branch
        const bool nan = hi != hi;
        const T passed = Rule::grad(Rule::forward(hi), gi * (kept ? scale : T(0)));
        gh[i] = nan ? gi : passed;
        any_nan |= nan ? 1u : 0u;
    }
    return any_nan != 0;
}

// Where h is NaN, relu's gradient is dropout's, g * (keep ? scale : 0), with
// the mask element hashed on its own: a NaN is rare, hashing every element is not cheap.
template <class T>
void relu_dropout_nan(const Mask& mask, const T* h, T scale, T* gh, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        if (h[i] == h[i]) continue;
        std::uint8_t keep;
        detail::keep_mask(mask.key, i, 1, mask.threshold, &keep);
        gh[i] = gh[i] * (keep ? scale : T(0));
    }
}

// The float kernels again, compiled for AVX2 and AVX-512 as well: the loops
// are where the time goes, and the default x86-64 target only has 4-wide
// vectors.
XG_CLONES_V4_V3 void forward_f32(const Pass<float>& pass, const float* h, const float* v,
                                 const std::uint8_t* keep, float* out, std::size_t n) {
    forward_kernel(pass, h, v, keep, out, n);
}
XG_CLONES_V4_V3 void backward_f32(const Pass<float>& pass, const float* g, const float* h,
                                  const float* v, const std::uint8_t* keep, float* gh, float* gv,
                                  std::size_t n) {
    backward_kernel(pass, g, h, v, keep, gh, gv, n);
}
XG_CLONES_V4_V3 void grad_f32(FusedActivation activation, const float* saved, const float* g,
                              float* gx, std::size_t n) {
    grad_kernel(activation, saved, g, gx, n);
}
XG_CLONES_V4_V3 bool relu_dropout_backward_f32(const float* g, const float* h, const float* y,
                                               float scale, float* gh, std::size_t n) {
    return relu_dropout_backward(g, h, y, scale, gh, n);
}

template <class T>
void forward(const Pass<T>& pass, const T* h, const T* v, const std::uint8_t* keep, T* out,
             std::size_t n) {
    if constexpr (std::is_same_v<T, float>)
        forward_f32(pass, h, v, keep, out, n);
    else
        forward_kernel(pass, h, v, keep, out, n);
}
template <class T>
void backward(const Pass<T>& pass, const T* g, const T* h, const T* v, const std::uint8_t* keep,
              T* gh, T* gv, std::size_t n) {
    if constexpr (std::is_same_v<T, float>)
        backward_f32(pass, g, h, v, keep, gh, gv, n);
    else
        backward_kernel(pass, g, h, v, keep, gh, gv, n);
}

// The fused op written with the ops it fuses (activation, gate, dropout with
// the same mask): its gradients by recomputation, under create_graph.
Tensor composite(const Tensor& h, const Tensor& v, FusedActivation activation, const Mask& mask,
                 double scale) {
    Tensor a;
    switch (activation) {
        case FusedActivation::Identity: a = h; break;
        case FusedActivation::ReLU: a = relu(h); break;
        case FusedActivation::GELU: a = gelu(h); break;
        case FusedActivation::GELUTanh: a = gelu(h, "tanh"); break;
        case FusedActivation::Sigmoid: a = sigmoid(h); break;
        case FusedActivation::SiLU: a = silu(h); break;
        case FusedActivation::Tanh: a = tanh(h); break;
    }
    if (v.defined()) a = a * v;
    return mask.active ? detail::masked_scale(a, mask, scale) : a;
}

autograd::Gradients recomputed(const Tensor& g, const std::shared_ptr<Storage>& h,
                               const std::shared_ptr<Storage>& v, FusedActivation activation,
                               const Mask& mask, double scale) {
    return autograd::recomputed_gradients(
        g, {detail::tensor_of(h), v ? detail::tensor_of(v) : Tensor()},
        [=](const std::vector<Tensor>& in) {
            return composite(in[0], in[1], activation, mask, scale);
        });
}

// The result of ungated ReLU, with its backward: from the output alone without
// dropout, from h and the output with it.
template <class T>
Tensor relu_result(const Tensor& result, const Tensor& h, const Mask& mask, T scale) {
    std::shared_ptr<Storage> y = result.impl()->storage;
    if (!mask.active) {
        return make_result(
            result, "FfnActBackward", {h, Tensor()},
            [y](const Tensor& g) {
                if (autograd::creating_graph()) {
                    Tensor out = autograd::saved_output(detail::tensor_of(y));
                    return autograd::Gradients{
                        detail::with_zero_derivative(detail::ReluRule::grad_op(out, g), out),
                        Tensor()};
                }
                const T* yp = std::get<xt::xarray<T>>(*y).data();
                auto [gh] = autograd::elementwise_grads<T, 1>(
                    g, {{{true}}}, [yp](const T* gp, std::array<T*, 1> out, std::size_t n) {
                        detail::activation_grad(FusedActivation::ReLU, yp, gp, out[0], n);
                    });
                return autograd::Gradients{gh, Tensor()};
            },
            autograd::DoubleBackward::Supported, autograd::Reads::Output);
    }
    return make_result(
        result, "FfnActBackward", {h, Tensor()},
        [y, saved_h = h.impl()->storage, mask, scale](const Tensor& g) {
            if (autograd::creating_graph()) {
                return recomputed(g, saved_h, nullptr, FusedActivation::ReLU, mask, scale);
            }
            const T* hp = std::get<xt::xarray<T>>(*saved_h).data();
            const T* yp = std::get<xt::xarray<T>>(*y).data();
            auto [gh] = autograd::elementwise_grads<T, 1>(
                g, {{{true}}}, [&](const T* gp, std::array<T*, 1> out, std::size_t n) {
                    std::atomic<bool> any_nan{false};
                    detail::for_chunks(n, [&](std::size_t i, std::size_t m) {
                        bool nan;
                        if constexpr (std::is_same_v<T, float>)
                            nan = relu_dropout_backward_f32(gp + i, hp + i, yp + i, scale,
                                                            out[0] + i, m);
                        else
                            nan =
                                relu_dropout_backward(gp + i, hp + i, yp + i, scale, out[0] + i, m);
                        if (nan) any_nan.store(true, std::memory_order_relaxed);
                    });
                    if (any_nan) relu_dropout_nan(mask, hp, scale, out[0], n);
                });
            return autograd::Gradients{gh, Tensor()};
        },
        autograd::DoubleBackward::Supported);
}

}  // namespace

namespace detail {

template <class T>
void activation_forward(FusedActivation activation, const T* in, T* out, std::size_t n) {
    for_chunks(n, [&](std::size_t i, std::size_t m) {
        forward(Pass<T>{activation, false, false, T(1)}, in + i, static_cast<const T*>(nullptr),
                static_cast<const std::uint8_t*>(nullptr), out + i, m);
    });
}
template <class T>
void activation_grad(FusedActivation activation, const T* saved, const T* g, T* gx, std::size_t n) {
    for_chunks(n, [&](std::size_t i, std::size_t m) {
        if constexpr (std::is_same_v<T, float>)
            grad_f32(activation, saved + i, g + i, gx + i, m);
        else
            grad_kernel(activation, saved + i, g + i, gx + i, m);
    });
}
template void activation_forward(FusedActivation, const float*, float*, std::size_t);
template void activation_forward(FusedActivation, const double*, double*, std::size_t);
template void activation_grad(FusedActivation, const float*, const float*, float*, std::size_t);
template void activation_grad(FusedActivation, const double*, const double*, double*, std::size_t);

}  // namespace detail

Tensor activation_dropout(const Tensor& h, const Tensor& v, FusedActivation activation, double p,
                          bool training) {
    const char* op = "activation_dropout";
    check(p >= 0.0 && p <= 1.0, "{}: expected p in [0, 1] (got {})", op, p);
    if (auto to = detail::storage_dtype(h, v)) {
        return detail::rounded(activation_dropout(detail::computable(h), detail::computable(v),
                                                  activation, p, training),
                               *to);
    }
    const bool gated = v.defined();
    if (gated) {
        detail::check_same_dtype(h, v, op);
        if (!detail::same_shape(h, v)) {
            fail("{}: expected the gate to have h's shape {} (got {})", op, shape_str(h.shape()),
                 shape_str(v.shape()));
        }
    }
    const bool dropout = training && p != 0.0;
    // Drawn exactly when dropout() would draw it, so the stream is the same.
    const Mask mask{dropout, dropout ? next_random_key() : 0, detail::dropout_threshold(p)};
    const bool need_h = h.requires_grad(), need_v = gated && v.requires_grad();
    const bool record = GradMode::is_enabled() && (need_h || need_v);
    const bool ungated_relu = !gated && activation == FusedActivation::ReLU;

    return detail::visit_floating(h, op, [&]<class T>(xt::xarray<T>& hv) {
        const Pass<T> pass{activation, gated, dropout, p == 1.0 ? T(0) : T(1.0 / (1.0 - p))};
        const std::size_t n = hv.size();
        const T* hp = hv.data();
        const T* vp = gated ? v.data<T>().data() : nullptr;
        Tensor result = detail::empty_tensor<T>(hv.shape());
        T* out = result.data<T>().data();
        in_mask_slices(mask, n, [&](std::size_t first, std::size_t m, const std::uint8_t* keep) {
            forward(pass, hp + first, vp ? vp + first : nullptr, keep, out + first, m);
        });
        if (!record) return result;

        if (ungated_relu) return relu_result(result, h, mask, pass.scale);
        std::shared_ptr<Storage> saved_v = gated ? v.impl()->storage : nullptr;
        return make_result(
            result, "FfnActBackward", {h, v},
            [pass, mask, saved_h = h.impl()->storage, saved_v, need_h, need_v](const Tensor& g) {
                if (autograd::creating_graph())
                    return recomputed(g, saved_h, saved_v, pass.activation, mask, pass.scale);
                const T* hp = std::get<xt::xarray<T>>(*saved_h).data();
                const T* vp = saved_v ? std::get<xt::xarray<T>>(*saved_v).data() : nullptr;
                // gv may be written over v (grad_buffers.hpp).
                auto [gh, gv] = autograd::elementwise_grads<T, 2>(
                    g, {{{need_h}, {need_v, false, &saved_v}}},
                    [&](const T* gp, std::array<T*, 2> out, std::size_t n) {
                        // The mask again, a slice at a time: hashing it costs less
                        // than keeping a byte per element alive from forward to backward.
                        in_mask_slices(mask, n,
                                       [&](std::size_t i, std::size_t m, const std::uint8_t* keep) {
                                           backward(pass, gp + i, hp + i, vp ? vp + i : nullptr,
                                                    keep, out[0] ? out[0] + i : nullptr,
                                                    out[1] ? out[1] + i : nullptr, m);
                                       });
                    });
                return autograd::Gradients{gh, gv};
            },
            autograd::DoubleBackward::Supported);
    });
}

}  // namespace xg
