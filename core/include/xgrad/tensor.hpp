// xg::Tensor: a cheap-to-copy handle to shared storage plus autograd metadata,
// modelled on torch::Tensor. Ops live in ops.hpp; the engine in autograd.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <xtensor/xarray.hpp>

#include "xgrad/error.hpp"
#include "xgrad/half.hpp"
#include "xgrad/removable_handle.hpp"

namespace xg {

// Float32, Float64, Int64 and Bool are the dtypes kernels compute in. The
// others are storage dtypes, as checkpoints hold them: ops on float16 and
// bfloat16 compute in float32 and round the result once (as PyTorch's CPU
// kernels do), ops on the small integer types compute in int64 and wrap back.
enum class Dtype { Float32, Float64, Int64, Bool, Float16, BFloat16, Int32, Int16, Int8, UInt8 };
inline constexpr Dtype kFloat32 = Dtype::Float32;
inline constexpr Dtype kFloat64 = Dtype::Float64;
inline constexpr Dtype kInt64 = Dtype::Int64;
inline constexpr Dtype kBool = Dtype::Bool;  // one byte per element: masks, comparisons
inline constexpr Dtype kFloat16 = Dtype::Float16;
inline constexpr Dtype kHalf = Dtype::Float16;
inline constexpr Dtype kBFloat16 = Dtype::BFloat16;
inline constexpr Dtype kInt32 = Dtype::Int32;
inline constexpr Dtype kInt16 = Dtype::Int16;
inline constexpr Dtype kInt8 = Dtype::Int8;
inline constexpr Dtype kUInt8 = Dtype::UInt8;
inline constexpr int kNumDtypes = 10;

// "float32", "bfloat16", "uint8": torch's spelling, used in every message.
std::string dtype_name(Dtype dtype);
bool is_floating_point(Dtype dtype);
// Bytes per element (bool: 1).
std::size_t element_size(Dtype dtype);
// The dtype a storage dtype computes in: float32 for float16 and bfloat16,
// int64 for the small integers, itself for the four compute dtypes.
Dtype compute_dtype(Dtype dtype);

using Shape = std::vector<std::size_t>;

class Tensor;
struct TensorImpl;
struct Storage;  // a tensor's values and their version (internal)
namespace indexing {
class TensorIndex;
}
namespace autograd {
struct Node;
}

// A tensor hook sees the incoming gradient and returns a replacement, or an
// undefined Tensor to keep it.
using TensorHook = std::function<Tensor(const Tensor& grad)>;

class Tensor {
public:
    Tensor() = default;  // undefined
    explicit Tensor(std::shared_ptr<TensorImpl> impl);

    // Inspection.
    bool defined() const { return impl_ != nullptr; }
    Shape shape() const;  // by value: data<T>() may reshape the live array
    // The sizes as a view of the live shape, like torch's sizes(): no Shape is
    // built, so hot paths can compare shapes without allocating. Valid until
    // the storage is reshaped or replaced.
    std::span<const std::size_t> sizes() const;
    std::size_t dim() const;
    std::size_t numel() const;
    Dtype dtype() const;
    template <class T>
    xt::xarray<T>& data() const;  // the live values; throws on a dtype mismatch
    template <class T>
    T item() const;  // the single value, converted to T
    // The first byte of the live values (contiguous, row-major) and their
    // size, element_size(dtype()) * numel(), as torch's data_ptr and nbytes.
    void* data_ptr() const;
    std::size_t nbytes() const;

    // Autograd.
    bool requires_grad() const;
    Tensor& requires_grad_(bool requires_grad = true);
    Tensor grad() const;           // undefined until a backward reaches this tensor
    Tensor& mutable_grad() const;  // for optimizers and zero_grad
    bool is_leaf() const;
    void retain_grad() const;
    bool retains_grad() const;
    Tensor detach() const;  // shares storage, no history
    Tensor clone() const;   // copies storage, keeps history
    Tensor to(Dtype dtype) const;
    // Points this tensor at new_data's storage (torch's set_data, Python's
    // `param.data = new_data`): every handle to this tensor, its .grad and its
    // hooks stay; only the values (and their shape and dtype) change.
    void set_data(const Tensor& new_data) const;
    // Seeds with ones for a one-element tensor; otherwise `grad` is required.
    // The graph is freed as it is walked unless `retain_graph` is true (by
    // default it is create_graph). With create_graph the backward pass is
    // recorded too: .grad then has a history and can be differentiated again.
    void backward(const Tensor& grad = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                  bool create_graph = false) const;
    // Python's x[start:end:step] along one dim (a copy: xgrad has no views).
    // Absent bounds are the dim's ends; negative ones count from the end and
    // out-of-range ones clamp, as in Python; step > 0.
    Tensor slice(int dim = 0, std::optional<std::int64_t> start = std::nullopt,
                 std::optional<std::int64_t> end = std::nullopt, std::int64_t step = 1) const;
    // Python's x[...] with libtorch's spelling (xg::indexing): integers select,
    // Slice(start, stop, step) slices, None adds a dim of size 1, Ellipsis
    // stands for the dims not named; one int64 tensor picks entries of its dim
    // (index_select), one kBool tensor the entries of the dims it covers.
    Tensor index(std::initializer_list<indexing::TensorIndex> indices) const;
    Tensor index(const std::vector<indexing::TensorIndex>& indices) const;
    // In place, without history (as under torch.no_grad): fills with draws from
    // U(from, to) or N(mean, std), keeping shape and dtype; floating tensors only.
    Tensor& uniform_(double from = 0.0, double to = 1.0);
    Tensor& normal_(double mean = 0.0, double std = 1.0);
    // In place, as PyTorch's: the op's result replaces this tensor's values
    // (every handle sharing them sees it) and, when grad mode records it, its
    // history. Each bumps the values' version. A leaf that requires grad
    // refuses outside NoGradGuard; a backward that read the old values refuses
    // to run (core/src/in_place.cpp). The tensor keeps its shape and dtype:
    // `other` broadcasts to it, and a float result cannot go into an integer tensor.
    Tensor& add_(const Tensor& other);
    Tensor& add_(double other);
    Tensor& sub_(const Tensor& other);
    Tensor& sub_(double other);
    Tensor& mul_(const Tensor& other);
    Tensor& mul_(double other);
    Tensor& div_(const Tensor& other);
    Tensor& div_(double other);
    Tensor& clamp_(std::optional<double> min, std::optional<double> max = std::nullopt);
    Tensor& relu_();
    Tensor& exp_();
    Tensor& masked_fill_(const Tensor& mask, double value);
    Tensor& zero_();
    Tensor& fill_(double value);
    Tensor& copy_(const Tensor& src);
    // How many in-place changes its values have seen (PyTorch's _version).
    std::uint64_t version() const;
    std::string grad_fn_name() const;  // "MatmulBackward", "" for leaves
    const std::shared_ptr<autograd::Node>& grad_fn() const;

    // fn(const Tensor& grad) returning void observes; returning Tensor replaces.
    template <class F>
    RemovableHandle register_hook(F fn) const {
        if constexpr (std::is_void_v<std::invoke_result_t<F, const Tensor&>>) {
            return add_hook([fn = std::move(fn)](const Tensor& g) mutable {
                fn(g);
                return Tensor();
            });
        } else {
            return add_hook(TensorHook(std::move(fn)));
        }
    }

    TensorImpl* impl() const { return impl_.get(); }
    const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

private:
    RemovableHandle add_hook(TensorHook hook) const;
    TensorImpl& checked_impl(const char* what) const;

    std::shared_ptr<TensorImpl> impl_;
};

// The index kinds of Tensor::index, spelled as libtorch's torch::indexing.
namespace indexing {
struct EllipsisIndexType {};
inline constexpr EllipsisIndexType Ellipsis{};
inline constexpr std::nullopt_t None = std::nullopt;

// Python's start:stop:step; an absent part is Python's default.
struct Slice {
    Slice(std::optional<std::int64_t> start = std::nullopt,
          std::optional<std::int64_t> stop = std::nullopt,
          std::optional<std::int64_t> step = std::nullopt)
        : start(start), stop(stop), step(step.value_or(1)) {}
    std::optional<std::int64_t> start, stop;
    std::int64_t step;
};

class TensorIndex {
public:
    enum class Kind { None, Ellipsis, Integer, Slice, Tensor };
    TensorIndex(std::nullopt_t) : kind_(Kind::None) {}
    TensorIndex(EllipsisIndexType) : kind_(Kind::Ellipsis) {}
    TensorIndex(const char* text);  // "..." only, as libtorch
    TensorIndex(std::int64_t i) : kind_(Kind::Integer), integer_(i) {}
    TensorIndex(int i) : kind_(Kind::Integer), integer_(i) {}
    TensorIndex(Slice slice) : kind_(Kind::Slice), slice_(slice) {}
    TensorIndex(xg::Tensor tensor) : kind_(Kind::Tensor), tensor_(std::move(tensor)) {}

    Kind kind() const { return kind_; }
    std::int64_t integer() const { return integer_; }
    const Slice& slice() const { return slice_; }
    const xg::Tensor& tensor() const { return tensor_; }

private:
    Kind kind_;
    std::int64_t integer_ = 0;
    Slice slice_;
    xg::Tensor tensor_;
};
}  // namespace indexing

// PyTorch's type promotion. promote_types: the first dtype both convert to
// in bool < int64 < float32 < float64. result_type: the dtype a binary op of a
// and b computes in: tensors with dims decide, and a 0-d one only when its
// category (bool, integer, floating) is higher than theirs.
Dtype promote_types(Dtype a, Dtype b);
Dtype result_type(const Tensor& a, const Tensor& b);

// Prints like torch: tensor([[ 0.5000, -1.0000]], requires_grad=True).
std::ostream& operator<<(std::ostream& out, const Tensor& t);

// Factories. Float dtypes default to float32, like torch.
template <class T>
Tensor tensor(xt::xarray<T> values, bool requires_grad = false);
Tensor zeros(const Shape& shape, Dtype dtype = kFloat32);
Tensor ones(const Shape& shape, Dtype dtype = kFloat32);
Tensor full(const Shape& shape, double value, Dtype dtype = kFloat32);
Tensor empty(const Shape& shape, Dtype dtype = kFloat32);
Tensor randn(const Shape& shape, Dtype dtype = kFloat32);
Tensor rand(const Shape& shape, Dtype dtype = kFloat32);
Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape);
// torch.normal(mean, std, size): draws from N(mean, std^2).
Tensor normal(double mean, double std, const Shape& shape, Dtype dtype = kFloat32);
// torch.bernoulli: 1 with probability p[i] (each in [0, 1]), else 0, in p's shape and
// dtype; or with one probability p for every entry of x's shape and dtype. No history.
Tensor bernoulli(const Tensor& p);
Tensor bernoulli(const Tensor& x, double p);
Tensor arange(std::int64_t n, Dtype dtype = kInt64);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor empty_like(const Tensor& t);
Tensor randn_like(const Tensor& t);
Tensor rand_like(const Tensor& t);
// torch.arange(start, end, step): ceil((end - start) / step) values, int64 by default.
Tensor arange(std::int64_t start, std::int64_t end, std::int64_t step = 1, Dtype dtype = kInt64);
// torch.linspace: `steps` values from start to end, both included, computed as PyTorch
// does (from the start for the first half, from the end for the second).
Tensor linspace(double start, double end, std::int64_t steps, Dtype dtype = kFloat32);
// torch.eye: ones on the diagonal of an [n, m] matrix (m = n when negative).
Tensor eye(std::int64_t n, std::int64_t m = -1, Dtype dtype = kFloat32);

// Randomness: one generator per thread behind every random draw in the library.
// manual_seed seeds the calling thread's generator and sets the seed new threads
// derive theirs from (core/src/random.cpp has the rules).
void manual_seed(std::uint64_t seed);
// The calling thread's generator's full state as text, to checkpoint and restore exactly.
std::string get_rng_state();
void set_rng_state(const std::string& state);
// Draws a fresh 64-bit key from the calling thread's generator (for counter-based kernels).
std::uint64_t next_random_key();

// Threads used by BLAS and by xgrad's own kernels together.
void set_num_threads(int n);
int get_num_threads();

}  // namespace xg
