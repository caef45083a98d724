// Parametrizations, as torch.nn.utils.parametrize and torch.nn.utils.parametrizations:
// a module's tensor (say Linear's `weight`) computed from other tensors on
// every call, weight = p(original), so that training updates the originals.
//
//   auto lin = std::make_shared<xg::nn::Linear>(20, 40);
//   xg::nn::utils::parametrizations::weight_norm(*lin);  // weight = g * v / |v|
//   lin->named_parameters();  // bias, parametrizations.weight.original0 (g), ...original1 (v)
//
// The layout is PyTorch's, so state_dicts move between the two unchanged:
// `weight` stops being a parameter, and the module gains the child
// `parametrizations`, a ModuleDict holding one ParametrizationList per
// parametrized tensor. The list holds the originals (`original`, or `original0`,
// `original1`, ... when the first parametrization's right_inverse returns
// several tensors) and the parametrizations as children "0", "1", ...
//
// Where PyTorch turns `module.weight` into a property, xgrad computes the value
// in a forward pre hook on the module and hands it to the module's typed member
// (Linear::weight) the way functional_call hands over a tensor, through the
// module's on_tensor_set. So layers need no change, hooks keep working, and
// gradients reach the originals. So:
//  - the module must keep the tensor in a typed member that on_tensor_set
//    updates, as every built-in layer does (a module that reads its registry
//    with get_parameter finds the slot empty);
//  - between calls the member holds the value of the last call (or of the
//    registration), not one that follows later changes to the originals; a
//    forward called directly (module.forward(x), not module(x)) skips the hook;
//  - a parametrized module cannot be clone()d: the hook is not copied with it.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xgrad/nn/module.hpp"
#include "xgrad/nn/module_list.hpp"
#include "xgrad/removable_handle.hpp"
#include "xgrad/tensor.hpp"

namespace xg::nn::utils::parametrize {

namespace detail {
struct ListAccess;  // parametrize.cpp's access to a list's hook handle
}

// A parametrization's optional right inverse, as PyTorch's `right_inverse`
// method: a parametrization module also derives from this to have one.
// register_parametrization calls it on the tensor being parametrized to get the
// originals: one Tensor is stored as `original` (it keeps the tensor's dtype), a
// tuple of tensors (Value::List) as `original0`, `original1`, ..., which the
// parametrization's forward then takes as its arguments. Without it, the
// original is the tensor itself.
class RightInverse {
public:
    virtual ~RightInverse() = default;
    virtual Value right_inverse(const Tensor& value) = 0;
};

// module.parametrizations[tensor_name]: the originals and the parametrizations
// registered on one tensor, applied in order. Built by register_parametrization.
class ParametrizationList : public ModuleList {
public:
    // Registers `parametrization` as child "0" and the originals computed from
    // `original` (a parameter when `is_parameter`, else a buffer). `where` names
    // the tensor in error messages ("Linear.weight").
    ParametrizationList(std::shared_ptr<Module> parametrization, const Tensor& original,
                        bool is_parameter, bool unsafe, const std::string& where);

    // The parametrized value: p_n(... p_1(p_0(originals...))), every p called as
    // a module (its hooks run). Uncached, as PyTorch's ParametrizationList.forward.
    using Module::forward;
    Tensor forward();
    Value forward_args(const Args& args, const Kwargs& kwargs) override;

    // Sets the originals so that the value becomes `value` (PyTorch's assignment
    // `module.weight = value`): the right_inverses of the parametrizations, last
    // first, all of which must have one. The module's member follows at its next call.
    void right_inverse(const Tensor& value);

    bool is_tensor() const { return is_tensor_; }  // one `original`, not original0, ...
    std::size_t ntensors() const { return originals_.size(); }
    const std::vector<Tensor>& originals() const { return originals_; }
    bool unsafe = false;  // whether a parametrization may change the dtype or shape

protected:
    // Throws: see the top of this file.
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;

private:
    friend struct detail::ListAccess;
    void register_originals(const Value& inverted, const Tensor& original, bool is_parameter,
                            const std::string& where);

    bool is_tensor_ = true;
    std::vector<Tensor> originals_;  // kept in step with the registry by on_tensor_set
    RemovableHandle hook_;           // the owner's forward pre hook computing this tensor
};

// Parametrizes `module`'s parameter or buffer `tensor_name` (or adds one more
// parametrization to an already parametrized one): from now on its value is
// parametrization(original). Unless `unsafe`, the parametrization is checked
// once to keep the tensor's dtype and shape. Returns `module`.
Module& register_parametrization(Module& module, const std::string& tensor_name,
                                 std::shared_ptr<Module> parametrization, bool unsafe = false);

// Whether `module` has a parametrized tensor (any, or the one named `tensor_name`).
bool is_parametrized(const Module& module, const std::string& tensor_name = "");

// Makes `tensor_name` a plain parameter (or buffer) again, holding the
// parametrized value (`leave_parametrized`) or the original, which is only
// possible with a single original. The original keeps its identity (an
// optimizer holding it keeps working) whenever there is one. Returns `module`.
Module& remove_parametrizations(Module& module, const std::string& tensor_name,
                                bool leave_parametrized = true);

// The same for a module held by a shared_ptr, returned typed for chaining.
template <class M>
std::shared_ptr<M> register_parametrization(std::shared_ptr<M> module,
                                            const std::string& tensor_name,
                                            std::shared_ptr<Module> parametrization,
                                            bool unsafe = false) {
    register_parametrization(*module, tensor_name, std::move(parametrization), unsafe);
    return module;
}

// PyTorch's `with parametrize.cached():` as an RAII guard. While one is alive,
// each parametrized tensor is computed once, at its first use, and reused
// (by every call of its module, as in a loop over an RNN cell); the values
// are dropped when the last guard goes. Guards nest, and hold for every thread.
class [[nodiscard]] CacheGuard {
public:
    CacheGuard();
    ~CacheGuard();
    CacheGuard(const CacheGuard&) = delete;
    CacheGuard& operator=(const CacheGuard&) = delete;
};

// auto guard = xg::nn::utils::parametrize::cached();
inline CacheGuard cached() { return {}; }

}  // namespace xg::nn::utils::parametrize

namespace xg::nn::utils::parametrizations {

// weight = v * (g / |v|), |v| the 2-norm over every dim but `dim` (over all of
// v when dim is -1, PyTorch's dim=None). forward(weight_g, weight_v); its
// right_inverse splits a weight into (g, v) = (|weight|, weight). PyTorch's
// _WeightNorm (a C++ name may not start with an underscore and a capital).
class WeightNorm : public Module, public parametrize::RightInverse {
public:
    explicit WeightNorm(int dim = 0) : dim(dim) {}

    using Module::forward;
    Tensor forward(const Tensor& weight_g, const Tensor& weight_v);
    Value forward_args(const Args& args, const Kwargs& kwargs) override;
    Value right_inverse(const Tensor& weight) override;

    int dim;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

// weight / sigma, sigma the largest singular value of the weight as a matrix
// (dim `dim` first, the others flattened), estimated by power iteration on the
// buffers `_u` and `_v` (members u and v): n_power_iterations steps at every
// call in training mode, none in eval mode. A 1-D weight is divided by its
// norm instead. PyTorch 1.13's _SpectralNorm: u and v start from N(0, 1) draws
// (xgrad's generator), normalised, then 15 iterations.
class SpectralNorm : public Module, public parametrize::RightInverse {
public:
    SpectralNorm(const Tensor& weight, int n_power_iterations = 1, int dim = 0, double eps = 1e-12);

    Tensor forward(const Tensor& weight) override;
    Value right_inverse(const Tensor& value) override { return value; }

    int n_power_iterations;
    int dim;  // in [0, weight.dim())
    double eps;
    Tensor u, v;  // the buffers "_u" [rows] and "_v" [columns]; undefined for a 1-D weight

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;

private:
    struct Fresh {};  // make_fresh's constructor: configuration only, no draws
    SpectralNorm(Fresh, const SpectralNorm& like);
    Tensor reshape_weight_to_matrix(const Tensor& weight) const;
    void power_method(const Tensor& weight_mat, int iterations);
};

// PyTorch's orthogonal_map: how Orthogonal turns its original into an orthogonal matrix.
enum class OrthogonalMap { matrix_exp, cayley, householder };

// An orthogonal [n, k] matrix Q (orthonormal columns when n >= k, rows
// otherwise) computed from an original X of the same shape, PyTorch 1.13's
// _Orthogonal for real 2-D weights. X is transposed first when n < k; then
//  - matrix_exp: Q = exp(A), cayley: Q = (I - A/2)^{-1} (I + A/2), A the skew
//    part X.tril() - X.tril()^T (X padded with zero columns to [n, n]), Q its first k columns;
//  - householder: Q = H_1 ... H_k [I; 0], H_i = I - tau_i v_i v_i^T, v_i column i
//    of X.tril(-1) with a unit diagonal, tau_i = 2 / (1 + |v_i|^2); column i
//    is multiplied by X's diagonal entry i truncated to an integer (no gradient).
// With use_trivialization, Q = base @ Q, base the buffer "base" [n, n] that
// right_inverse sets (the value's Q factor, completed with random columns when
// n != k; xgrad's generator draws them) while the original becomes -I.
// Without it, right_inverse is the householder map's inverse (the reflectors
// of a QR decomposition); matrix_exp and cayley have none (the first call,
// register_parametrization's, keeps the value as the original, as PyTorch's
// caught NotImplementedError; later assignments throw).
class Orthogonal : public Module, public parametrize::RightInverse {
public:
    Orthogonal(Shape shape, OrthogonalMap orthogonal_map, bool use_trivialization = true);

    Tensor forward(const Tensor& x) override;
    Value right_inverse(const Tensor& q) override;

    Shape shape;  // the parametrized tensor's, [n, k]
    OrthogonalMap orthogonal_map;
    bool use_trivialization;
    Tensor base;  // the buffer "base"; undefined without use_trivialization

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;

private:
    bool registered_ = false;  // whether right_inverse has run once
};

// torch.nn.utils.parametrizations.weight_norm: registers WeightNorm(dim) on
// `name` (unsafe, as PyTorch), so the module gains parameters
// parametrizations.<name>.original0 (g) and original1 (v). dim = nullopt is
// PyTorch's dim=None: one norm over the whole tensor. A state_dict of the
// older torch.nn.utils.weight_norm (<name>_g, <name>_v) loads too.
Module& weight_norm(Module& module, const std::string& name = "weight", std::optional<int> dim = 0);

// torch.nn.utils.parametrizations.spectral_norm: registers SpectralNorm on
// `name`. dim = nullopt is PyTorch's default (0: xgrad has no transposed
// convolutions, for which PyTorch picks 1); a negative dim counts from the end.
Module& spectral_norm(Module& module, const std::string& name = "weight",
                      int n_power_iterations = 1, double eps = 1e-12,
                      std::optional<int> dim = std::nullopt);

// torch.nn.utils.parametrizations.orthogonal: registers Orthogonal on the 2-D
// tensor `name` (unsafe, as PyTorch). orthogonal_map is "matrix_exp", "cayley"
// or "householder"; nullopt picks matrix_exp for a square matrix, householder
// otherwise. The module gains parametrizations.<name>.original and, with
// use_trivialization, the buffer parametrizations.<name>.0.base. Batches of
// matrices (more than 2 dims) and complex tensors are not supported.
Module& orthogonal(Module& module, const std::string& name = "weight",
                   const std::optional<std::string>& orthogonal_map = std::nullopt,
                   bool use_trivialization = true);

template <class M>
std::shared_ptr<M> weight_norm(std::shared_ptr<M> module, const std::string& name = "weight",
                               std::optional<int> dim = 0) {
    weight_norm(*module, name, dim);
    return module;
}
template <class M>
std::shared_ptr<M> spectral_norm(std::shared_ptr<M> module, const std::string& name = "weight",
                                 int n_power_iterations = 1, double eps = 1e-12,
                                 std::optional<int> dim = std::nullopt) {
    spectral_norm(*module, name, n_power_iterations, eps, dim);
    return module;
}

template <class M>
std::shared_ptr<M> orthogonal(std::shared_ptr<M> module, const std::string& name = "weight",
                              const std::optional<std::string>& orthogonal_map = std::nullopt,
                              bool use_trivialization = true) {
    orthogonal(*module, name, orthogonal_map, use_trivialization);
    return module;
}

}  // namespace xg::nn::utils::parametrizations
