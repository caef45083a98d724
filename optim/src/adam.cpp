// Adam (and AdamW's shared body): the betas builder, option checks, the fused
// update loop, and the step / exp_avg / exp_avg_sq / max_exp_avg_sq state.
#include "xgrad/optim/adam.hpp"

#include <algorithm>
#include <cmath>

#include "kernel_flags.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/error.hpp"
#include "xgrad/parallel.hpp"

namespace xg::optim {

AdamOptions& AdamOptions::betas(std::pair<double, double> v) {
    beta1_ = v.first;
    beta2_ = v.second;
    mark_set("beta1");
    mark_set("beta2");
    return *this;
}

void AdamOptions::validate(const std::string& optimizer) const {
    // Written so that NaN fails every check.
    check(lr_ >= 0.0, "{}: expected lr >= 0 (got {})", optimizer, lr_);
    check(eps_ >= 0.0, "{}: expected eps >= 0 (got {})", optimizer, eps_);
    check(beta1_ >= 0.0 && beta1_ < 1.0, "{}: expected 0 <= beta1 < 1 (got {})", optimizer, beta1_);
    check(beta2_ >= 0.0 && beta2_ < 1.0, "{}: expected 0 <= beta2 < 1 (got {})", optimizer, beta2_);
    check(weight_decay_ >= 0.0, "{}: expected weight_decay >= 0 (got {})", optimizer,
          weight_decay_);
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& defaults)
    : Adam(std::vector<OptimizerParamGroup>{OptimizerParamGroup(std::move(params))}, defaults) {}

Adam::Adam(std::vector<OptimizerParamGroup> groups, const AdamOptions& defaults)
    : Adam("Adam", std::move(groups), defaults, false) {}

Adam::Adam(std::string name, std::vector<OptimizerParamGroup> groups, const AdamOptions& defaults,
           bool decoupled)
    : Optimizer(std::move(name), std::move(groups), defaults.clone()), decoupled_(decoupled) {}

namespace {

struct AdamScalars {
    double beta1, beta2, eps, weight_decay;
    double step_size;              // lr / (1 - beta1^step)
    double bias_correction2_sqrt;  // sqrt(1 - beta2^step)
    double decay;                  // 1 - lr * weight_decay, used when decoupled
    bool coupled_decay, decoupled, amsgrad, maximize;
};

// One pass over the parameter, in PyTorch's order of operations; scalars are
// rounded to T first, as a float32 tensor op in PyTorch rounds its scalars.
// maximize multiplies by -1 and Adam's (non-)decay by 1: both exact.
template <class T, bool Amsgrad, bool CoupledDecay>
void adam_kernel(T* __restrict p, const T* __restrict grad, T* __restrict m, T* __restrict v,
                 T* __restrict vmax, std::size_t n, const AdamScalars& s) {
    const T sign = s.maximize ? T(-1) : T(1);
    const T beta1 = static_cast<T>(s.beta1), one_minus_beta1 = static_cast<T>(1.0 - s.beta1);
    const T beta2 = static_cast<T>(s.beta2), one_minus_beta2 = static_cast<T>(1.0 - s.beta2);
    const T weight_decay = static_cast<T>(s.weight_decay);
    const T decay = s.decoupled ? static_cast<T>(s.decay) : T(1);
    const T eps = static_cast<T>(s.eps), bc2_sqrt = static_cast<T>(s.bias_correction2_sqrt);
    const T neg_step_size = static_cast<T>(-s.step_size);
    for (std::size_t i = 0; i < n; ++i) {
        T g = sign * grad[i];
        if constexpr (CoupledDecay) g = g + weight_decay * p[i];
        const T decayed = p[i] * decay;
        const T m_i = m[i] * beta1 + one_minus_beta1 * g;
        const T v_i = v[i] * beta2 + one_minus_beta2 * g * g;
        m[i] = m_i;
        v[i] = v_i;
        T second = v_i;
        if constexpr (Amsgrad) second = vmax[i] = std::max(vmax[i], v_i);
        const T denom = std::sqrt(second) / bc2_sqrt + eps;
        p[i] = decayed + neg_step_size * m_i / denom;
    }
}

// The loop with its flags made compile-time, for one chunk of the parameter.
template <class T>
void adam_chunk(T* p, const T* grad, T* m, T* v, T* vmax, std::size_t n, const AdamScalars& s) {
    detail::with_flag(s.amsgrad, [&](auto amsgrad) {
        detail::with_flag(s.coupled_decay, [&](auto coupled_decay) {
            adam_kernel<T, amsgrad(), coupled_decay()>(p, grad, m, v, vmax, n, s);
        });
    });
}

// Compiled for AVX-512, AVX2 and baseline x86-64: the square root and the two
// divisions per element make this loop compute-bound on small models.
XG_CLONES_V4_V3 void adam_chunk_clone(float* p, const float* grad, float* m, float* v, float* vmax,
                                      std::size_t n, const AdamScalars& s) {
    adam_chunk(p, grad, m, v, vmax, n, s);
}
XG_CLONES_V4_V3 void adam_chunk_clone(double* p, const double* grad, double* m, double* v,
                                      double* vmax, std::size_t n, const AdamScalars& s) {
    adam_chunk(p, grad, m, v, vmax, n, s);
}

template <class T>
void adam_step(const Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax,
               const AdamScalars& s) {
    T* p = param.data<T>().data();
    const T* g = grad.data<T>().data();
    T *mp = m.data<T>().data(), *vp = v.data<T>().data();
    T* max_data = s.amsgrad ? vmax.data<T>().data() : nullptr;
    xg::detail::for_chunks(param.numel(), [&](std::size_t i, std::size_t n) {
        adam_chunk_clone(p + i, g + i, mp + i, vp + i, max_data ? max_data + i : nullptr, n, s);
    });
}

}  // namespace

const Adam::BiasCorrections& Adam::bias_corrections(double beta1, double beta2, double step) {
    BiasCorrections& c = corrections_;
    if (c.beta1 != beta1 || c.beta2 != beta2 || c.step != step)
        c = {beta1, beta2, step, 1.0 - std::pow(beta1, step), 1.0 - std::pow(beta2, step)};
    return c;
}

void Adam::update() {
    for (auto& group : param_groups()) {
        const auto& o = static_cast<const AdamOptions&>(group.options());
        const auto [beta1, beta2] = o.betas();
        for (const Tensor& param : group.params()) {
            Tensor grad = checked_grad(param);
            if (!grad.defined()) continue;
            ParamState& state = state_[param.impl()];
            if (!state.exp_avg.defined()) {
                state.exp_avg = zeros(param.shape(), param.dtype());
                state.exp_avg_sq = zeros(param.shape(), param.dtype());
            }
            if (o.amsgrad() && !state.max_exp_avg_sq.defined()) {
                state.max_exp_avg_sq = zeros(param.shape(), param.dtype());
            }
            state.step += 1.0;
            const BiasCorrections& c = bias_corrections(beta1, beta2, state.step);
            const AdamScalars s{beta1,
                                beta2,
                                o.eps(),
                                o.weight_decay(),
                                o.lr() / c.first,
                                std::sqrt(c.second),
                                1.0 - o.lr() * o.weight_decay(),
                                !decoupled_ && o.weight_decay() != 0.0,
                                decoupled_,
                                o.amsgrad(),
                                o.maximize()};
            if (param.dtype() == kFloat32) {
                adam_step<float>(param, grad, state.exp_avg, state.exp_avg_sq, state.max_exp_avg_sq,
                                 s);
            } else {
                adam_step<double>(param, grad, state.exp_avg, state.exp_avg_sq,
                                  state.max_exp_avg_sq, s);
            }
        }
    }
}

std::optional<StateDict> Adam::get_param_state(const Tensor& param) const {
    auto it = state_.find(param.impl());
    if (it == state_.end()) return std::nullopt;
    const ParamState& s = it->second;
    StateDict result;
    // A float32 0-d tensor, as PyTorch >= 1.12 keeps it.
    result.insert_or_assign("step", full({}, s.step, kFloat32));
    result.insert_or_assign("exp_avg", detail::copy_as(s.exp_avg, s.exp_avg.dtype()));
    result.insert_or_assign("exp_avg_sq", detail::copy_as(s.exp_avg_sq, s.exp_avg_sq.dtype()));
    if (s.max_exp_avg_sq.defined()) {
        result.insert_or_assign("max_exp_avg_sq",
                                detail::copy_as(s.max_exp_avg_sq, s.max_exp_avg_sq.dtype()));
    }
    return result;
}

void Adam::check_param_state(const Tensor& param, const StateDict& state,
                             const std::string& where) const {
    for (const char* required : {"step", "exp_avg", "exp_avg_sq"}) {
        if (!state.contains(required)) {
            fail("{}: expected '{}' in the state (got keys [{}])", where, required,
                 fmt::join(state.keys(), ", "));
        }
    }
    for (const auto& [key, value] : state) {
        check(key == "step" || key == "exp_avg" || key == "exp_avg_sq" || key == "max_exp_avg_sq",
              "{}: expected step, exp_avg, exp_avg_sq or max_exp_avg_sq (got '{}')", where, key);
        check(value.defined(), "{}: expected a defined {} (got an undefined tensor)", where, key);
        if (key == "step") {
            if (value.numel() != 1) {
                fail("{}: expected a one-element step (got shape {})", where,
                     shape_str(value.shape()));
            }
            const double step = value.item<double>();
            check(step >= 0.0 && step == std::floor(step),
                  "{}: expected a whole, non-negative step (got {})", where, step);
        } else {
            if (!(is_floating_point(value.dtype()) && value.shape() == param.shape())) {
                fail("{}: expected a floating-point {} of shape {} (got {} {})", where, key,
                     shape_str(param.shape()), dtype_name(value.dtype()), shape_str(value.shape()));
            }
        }
    }
}

void Adam::set_param_states(const std::vector<std::pair<Tensor, StateDict>>& state) {
    state_.clear();
    for (const auto& [param, saved] : state) {
        ParamState& s = state_[param.impl()];
        s.step = saved.at("step").item<double>();
        s.exp_avg = detail::copy_as(saved.at("exp_avg"), param.dtype());
        s.exp_avg_sq = detail::copy_as(saved.at("exp_avg_sq"), param.dtype());
        if (saved.contains("max_exp_avg_sq")) {
            s.max_exp_avg_sq = detail::copy_as(saved.at("max_exp_avg_sq"), param.dtype());
        }
    }
}

}  // namespace xg::optim
