// SGD: option checks, the fused update loop, and the momentum_buffer state.
#include "xgrad/optim/sgd.hpp"

#include "kernel_flags.hpp"
#include "xgrad/error.hpp"
#include "xgrad/parallel.hpp"

namespace xg::optim {

void SGDOptions::validate(const std::string& optimizer) const {
    // Negated comparisons so that NaN is rejected too.
    check(lr_ >= 0.0, "{}: expected lr >= 0 (got {})", optimizer, lr_);
    check(momentum_ >= 0.0, "{}: expected momentum >= 0 (got {})", optimizer, momentum_);
    check(weight_decay_ >= 0.0, "{}: expected weight_decay >= 0 (got {})", optimizer,
          weight_decay_);
    check(!nesterov_ || (momentum_ > 0.0 && dampening_ == 0.0),
          "{}: nesterov momentum requires a momentum and zero dampening (got momentum {}, "
          "dampening {})",
          optimizer, momentum_, dampening_);
}

SGD::SGD(std::vector<Tensor> params, const SGDOptions& defaults)
    : SGD(std::vector<OptimizerParamGroup>{OptimizerParamGroup(std::move(params))}, defaults) {}

SGD::SGD(std::vector<OptimizerParamGroup> groups, const SGDOptions& defaults)
    : Optimizer("SGD", std::move(groups), defaults.clone()) {}

namespace {

// One pass over the parameter; `buf` is only read with Momentum. Scalars are
// rounded to T first, as PyTorch does for a float32 tensor op; maximize
// multiplies by -1, which is exact.
template <class T, bool Decay, bool Momentum, bool FreshBuf, bool Nesterov>
void sgd_kernel(T* __restrict p, const T* __restrict g, T* __restrict buf, std::size_t n,
                const SGDOptions& o) {
    const T sign = o.maximize() ? T(-1) : T(1);
    const T weight_decay = static_cast<T>(o.weight_decay());
    const T momentum = static_cast<T>(o.momentum());
    const T one_minus_dampening = static_cast<T>(1.0 - o.dampening());
    const T neg_lr = static_cast<T>(-o.lr());
    for (std::size_t i = 0; i < n; ++i) {
        T d = sign * g[i];
        if constexpr (Decay) d = d + weight_decay * p[i];
        if constexpr (Momentum) {
            const T b = FreshBuf ? d : buf[i] * momentum + one_minus_dampening * d;
            buf[i] = b;
            d = Nesterov ? d + momentum * b : b;
        }
        p[i] = p[i] + neg_lr * d;
    }
}

template <class T>
void sgd_step(const Tensor& param, const Tensor& grad, Tensor* buf, bool fresh_buf,
              const SGDOptions& o) {
    auto& p = param.data<T>();
    T* b = buf != nullptr ? buf->data<T>().data() : nullptr;
    detail::with_flag(o.weight_decay() != 0.0, [&](auto decay) {
        detail::with_flag(b != nullptr, [&](auto momentum) {
            detail::with_flag(fresh_buf, [&](auto fresh) {
                detail::with_flag(o.nesterov(), [&](auto nesterov) {
                    T* pp = p.data();
                    const T* gp = grad.data<T>().data();
                    xg::detail::for_chunks(p.size(), [&](std::size_t i, std::size_t n) {
                        sgd_kernel<T, decay(), momentum(), fresh(), nesterov()>(
                            pp + i, gp + i, b ? b + i : nullptr, n, o);
                    });
                });
            });
        });
    });
}

}  // namespace

void SGD::update() {
    for (auto& group : param_groups()) {
        const auto& options = static_cast<const SGDOptions&>(group.options());
        for (const Tensor& param : group.params()) {
            Tensor grad = checked_grad(param);
            if (!grad.defined()) continue;
            Tensor* buf = nullptr;
            bool fresh = false;
            if (options.momentum() != 0.0) {
                auto [it, inserted] = momentum_buffers_.try_emplace(param.impl());
                if (inserted || !it->second.defined()) {
                    it->second = empty(param.shape(), param.dtype());
                    fresh = true;
                }
                buf = &it->second;
            }
            if (param.dtype() == kFloat32)
                sgd_step<float>(param, grad, buf, fresh, options);
            else
                sgd_step<double>(param, grad, buf, fresh, options);
        }
    }
}

std::optional<StateDict> SGD::get_param_state(const Tensor& param) const {
    auto it = momentum_buffers_.find(param.impl());
    if (it == momentum_buffers_.end()) return std::nullopt;
    StateDict state;
    state.insert_or_assign("momentum_buffer", detail::copy_as(it->second, it->second.dtype()));
    return state;
}

void SGD::check_param_state(const Tensor& param, const StateDict& state,
                            const std::string& where) const {
    for (const auto& [key, value] : state) {
        check(key == "momentum_buffer", "{}: expected only momentum_buffer (got '{}')", where, key);
        if (!(value.defined() && value.shape() == param.shape() &&
              is_floating_point(value.dtype()))) {
            fail("{}: expected a floating-point momentum_buffer of shape {} (got {})", where,
                 shape_str(param.shape()),
                 value.defined() ? shape_str(value.shape()) + " " + dtype_name(value.dtype())
                                 : std::string("an undefined tensor"));
        }
    }
}

void SGD::set_param_states(const std::vector<std::pair<Tensor, StateDict>>& state) {
    momentum_buffers_.clear();
    for (const auto& [param, param_state] : state) {
        if (!param_state.contains("momentum_buffer")) continue;
        momentum_buffers_[param.impl()] =
            detail::copy_as(param_state.at("momentum_buffer"), param.dtype());
    }
}

}  // namespace xg::optim
