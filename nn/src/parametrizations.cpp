// torch.nn.utils.parametrizations (see parametrize.hpp): WeightNorm and
// SpectralNorm, and the functions that register them and Orthogonal
// (orthogonal.cpp).
#include <xtensor/xnoalias.hpp>

#include "xgrad/autograd.hpp"
#include "xgrad/nn/parametrize.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn::utils::parametrizations {

namespace {

// torch.norm_except_dim(v, 2, dim): the 2-norm over every dim but `dim`, kept
// as size-1 dims (over all of v, as a 0-d tensor, when dim is -1).
Tensor norm_except_dim(const Tensor& v, int dim) {
    if (dim == -1) return norm(v);
    const int ndim = static_cast<int>(v.dim());
    const int kept = dim < 0 ? dim + ndim : dim;
    check(kept >= 0 && kept < ndim, "WeightNorm: expected dim in [{}, {}] or -1 (got {})", -ndim,
          ndim - 1, dim);
    std::vector<int> others;
    for (int d = 0; d < ndim; ++d) {
        if (d != kept) others.push_back(d);
    }
    // A 1-D v has nothing to reduce: the norm of each single entry. (xg::norm
    // would take an empty list of dims to mean all of them.)
    if (others.empty()) return abs(v);
    return norm(v, 2.0, others, /*keepdim=*/true);
}

// F.normalize(x, dim=0, eps): x / max(|x|, eps).
Tensor normalize(const Tensor& x, double eps) {
    return x / clamp_min(norm(x, 2.0, {0}, true), eps);
}

// Writes `source`'s values into `target`'s own storage, as PyTorch's out=
// arguments do: whoever shares the buffer (a state_dict taken earlier) sees them.
void write_values(const Tensor& target, const Tensor& source) {
    const Tensor values = source.to(target.dtype());
    if (target.dtype() == kFloat64)
        xt::noalias(target.data<double>()) = values.data<double>();
    else
        xt::noalias(target.data<float>()) = values.data<float>();
}

// The tensor `name` of `module` as it reads now: computed when it is
// parametrized, else the parameter or buffer; undefined when there is none.
Tensor current_tensor(Module& module, const std::string& name) {
    if (parametrize::is_parametrized(module, name)) {
        auto list = module.get_submodule("parametrizations." + name);
        return std::dynamic_pointer_cast<parametrize::ParametrizationList>(list)->forward();
    }
    for (const auto& [member, t] : module.named_parameters("", false, false)) {
        if (member == name) return t;
    }
    for (const auto& [member, t] : module.named_buffers("", false, false)) {
        if (member == name) return t;
    }
    return Tensor();
}

}  // namespace

// ---- WeightNorm ----

Tensor WeightNorm::forward(const Tensor& weight_g, const Tensor& weight_v) {
    return weight_v * (weight_g / norm_except_dim(weight_v, dim));
}

Value WeightNorm::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"weight_g", "weight_v"};
    return invoke_forward<WeightNorm>(*this, &WeightNorm::forward, signature, args, kwargs);
}

Value WeightNorm::right_inverse(const Tensor& weight) {
    return Value::List{norm_except_dim(weight, dim), weight};
}

std::shared_ptr<Module> WeightNorm::make_fresh() const { return std::make_shared<WeightNorm>(dim); }

// ---- SpectralNorm ----

SpectralNorm::SpectralNorm(const Tensor& weight, int n_power_iterations, int dim, double eps)
    : n_power_iterations(n_power_iterations), dim(dim), eps(eps) {
    const int ndim = static_cast<int>(weight.dim());
    check(dim >= -ndim && dim < ndim, "SpectralNorm: expected dim in [{}, {}] (got {})", -ndim,
          ndim - 1, dim);
    check(n_power_iterations > 0, "SpectralNorm: expected n_power_iterations > 0 (got {})",
          n_power_iterations);
    this->dim = dim >= 0 ? dim : dim + ndim;
    if (ndim == 1) return;  // forward normalises a vector exactly: no u, v
    NoGradGuard no_grad;
    const Tensor weight_mat = reshape_weight_to_matrix(weight);
    const Shape hw = weight_mat.shape();
    u = register_buffer("_u", normalize(normal(0.0, 1.0, {hw[0]}, weight.dtype()), eps));
    v = register_buffer("_v", normalize(normal(0.0, 1.0, {hw[1]}, weight.dtype()), eps));
    // u and v start near the top singular vectors.
    power_method(weight_mat, 15);
}

SpectralNorm::SpectralNorm(Fresh, const SpectralNorm& like)
    : n_power_iterations(like.n_power_iterations), dim(like.dim), eps(like.eps) {
    if (like.u.defined()) {
        u = register_buffer("_u", zeros_like(like.u));
        v = register_buffer("_v", zeros_like(like.v));
    }
}

// `dim` first, the other dims flattened: [rows, columns].
Tensor SpectralNorm::reshape_weight_to_matrix(const Tensor& weight) const {
    Tensor w = weight;
    if (dim != 0) {
        std::vector<int> order{dim};
        for (int d = 0; d < static_cast<int>(weight.dim()); ++d) {
            if (d != dim) order.push_back(d);
        }
        w = permute(w, order);
    }
    return flatten(w, 1);
}

// u <- normalize(W v), v <- normalize(W^T u), without history and into the
// buffers' own storage, as PyTorch's in-place updates.
void SpectralNorm::power_method(const Tensor& weight_mat, int iterations) {
    NoGradGuard no_grad;
    const Tensor transposed = transpose(weight_mat, 0, 1);
    for (int i = 0; i < iterations; ++i) {
        write_values(u, normalize(matmul(weight_mat, v), eps));
        write_values(v, normalize(matmul(transposed, u), eps));
    }
}

Tensor SpectralNorm::forward(const Tensor& weight) {
    if (weight.dim() == 1) return normalize(weight, eps);
    const Tensor weight_mat = reshape_weight_to_matrix(weight);
    if (is_training()) power_method(weight_mat, n_power_iterations);
    // Copies, so that the next call's in-place update cannot reach this call's
    // graph (two forwards, one backward: a GAN's D(real) - D(fake)).
    const Tensor sigma = matmul(u.clone(), matmul(weight_mat, v.clone()));
    return weight / sigma;
}

std::shared_ptr<Module> SpectralNorm::make_fresh() const {
    return std::shared_ptr<SpectralNorm>(new SpectralNorm(Fresh{}, *this));
}

// Keeps u and v in step with the registry (functional_call, load with assign).
void SpectralNorm::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "_u")
        u = value;
    else if (member == "_v")
        v = value;
}

// ---- the functions ----

Module& weight_norm(Module& module, const std::string& name, std::optional<int> dim) {
    parametrize::register_parametrization(module, name,
                                          std::make_shared<WeightNorm>(dim.value_or(-1)),
                                          /*unsafe=*/true);
    // A state_dict of torch.nn.utils.weight_norm names g and v <name>_g and <name>_v.
    module.register_load_state_dict_pre_hook(
        [name](Module&, StateDict& state_dict, const std::string& prefix) {
            const std::string g_key = prefix + name + "_g", v_key = prefix + name + "_v";
            if (!state_dict.contains(g_key) || !state_dict.contains(v_key)) return;
            const Tensor g = state_dict.at(g_key), v = state_dict.at(v_key);
            state_dict.erase(g_key);
            state_dict.erase(v_key);
            state_dict.insert_or_assign(prefix + "parametrizations." + name + ".original0", g);
            state_dict.insert_or_assign(prefix + "parametrizations." + name + ".original1", v);
        });
    return module;
}

Module& spectral_norm(Module& module, const std::string& name, int n_power_iterations, double eps,
                      std::optional<int> dim) {
    const Tensor weight = current_tensor(module, name);
    check(weight.defined(),
          "spectral_norm: expected a parameter or buffer named '{}' in {} (got none)", name,
          module.name());
    parametrize::register_parametrization(
        module, name,
        std::make_shared<SpectralNorm>(weight, n_power_iterations, dim.value_or(0), eps));
    return module;
}

Module& orthogonal(Module& module, const std::string& name,
                   const std::optional<std::string>& orthogonal_map, bool use_trivialization) {
    const Tensor weight = current_tensor(module, name);
    check(weight.defined(),
          "orthogonal: expected a parameter or buffer named '{}' in {} (got none)", name,
          module.name());
    if (weight.dim() != 2) {
        fail("orthogonal: expected a matrix (got a tensor of shape {})", shape_str(weight.shape()));
    }
    // Appended to other parametrizations, right_inverse never runs to set the
    // base (PyTorch then fails at the first use of the tensor).
    check(!use_trivialization || !parametrize::is_parametrized(module, name),
          "orthogonal: expected use_trivialization=false for the already parametrized {}.{} "
          "(got true)",
          module.name(), name);
    const Shape shape = weight.shape();
    const std::string map =
        orthogonal_map.value_or(shape[0] == shape[1] ? "matrix_exp" : "householder");
    OrthogonalMap kind = OrthogonalMap::matrix_exp;
    if (map == "cayley")
        kind = OrthogonalMap::cayley;
    else if (map == "householder")
        kind = OrthogonalMap::householder;
    else
        check(map == "matrix_exp",
              "orthogonal: expected orthogonal_map \"matrix_exp\", \"cayley\" or "
              "\"householder\" (got \"{}\")",
              map);
    parametrize::register_parametrization(
        module, name, std::make_shared<Orthogonal>(shape, kind, use_trivialization),
        /*unsafe=*/true);
    return module;
}

}  // namespace xg::nn::utils::parametrizations
