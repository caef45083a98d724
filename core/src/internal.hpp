// Private helpers shared by the tensor, the engine and the op families.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <xtensor/xarray.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xtensor.hpp>

#include "object_pool.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/tensor.hpp"

namespace xg {

// In Dtype's order: a storage's index is its dtype.
using StorageValues =
    std::variant<xt::xarray<float>, xt::xarray<double>, xt::xarray<std::int64_t>, xt::xarray<bool>,
                 xt::xarray<Half>, xt::xarray<BFloat16>, xt::xarray<std::int32_t>,
                 xt::xarray<std::int16_t>, xt::xarray<std::int8_t>, xt::xarray<std::uint8_t>>;

// The dtype of an element type: its array's place in StorageValues.
template <class T, class... A>
constexpr Dtype dtype_in(const std::variant<A...>*) {
    std::size_t index = 0;
    (void)((std::is_same_v<xt::xarray<T>, A> || (++index, false)) || ...);
    return static_cast<Dtype>(index);
}
template <class T>
constexpr Dtype dtype_of() {
    return dtype_in<T>(static_cast<const StorageValues*>(nullptr));
}

// A tensor's values and their version, which every in-place op bumps. The
// version lives with the values, so every handle that shares them (detach(),
// the saved copies of backward closures) shares it too, as views share
// PyTorch's version counter; a node records the versions of what its backward
// reads and refuses to run once they changed (engine.cpp).
struct Storage : StorageValues {
    using StorageValues::StorageValues;
    std::uint64_t version = 0;
};

struct TensorImpl {
    std::shared_ptr<Storage> storage;  // shared by detach(), so saved values cost nothing
    bool requires_grad = false;
    Tensor grad;
    std::shared_ptr<autograd::Node> grad_fn;
    // A leaf's AccumulateGrad (autograd::make_accumulator), made at its first
    // use in a graph and kept with the leaf: every step's graph reuses it
    // instead of making and freeing one (it sees the leaf through a weak
    // pointer, so this makes no cycle).
    std::shared_ptr<autograd::Node> grad_accumulator;
    bool retains_grad = false;
    // A hook belongs to the node that made the tensor when it was registered
    // (a leaf's: its accumulator), as in PyTorch: after an in-place op it
    // sees the gradient of the values it was registered on. The weak pointer
    // also keeps that node's address from being reused.
    struct Hook {
        std::uint64_t id;
        TensorHook fn;
        std::weak_ptr<autograd::Node> node;
    };
    std::vector<Hook> hooks;
    std::uint64_t next_hook_id = 0;
};

namespace autograd {
// The node that hands the gradients reaching `leaf` to its .grad (graph_node.cpp).
std::shared_ptr<Node> make_accumulator(const std::shared_ptr<TensorImpl>& leaf);
}  // namespace autograd

namespace detail {

// An array's own shape type: up to rank 4 it needs no heap allocation, so the
// shapes an op works with on a training step's path are these, not Shapes.
using ArrayShape = xt::svector<std::size_t, 4>;
// One flag per dim (the dims a reduction sums over), inline as ArrayShape is.
using DimFlags = xt::svector<bool, 4>;

// A storage made in a pooled block, handed to a shared_ptr whose deleter
// returns it to the buffer cache (buffer_cache.cpp) when the last tensor that
// shares it dies.
std::shared_ptr<Storage> adopt_storage(Storage* storage);

// A shared storage for `values`, moved once, straight into its block.
template <class T>
std::shared_ptr<Storage> make_storage(xt::xarray<T>&& values) {
    void* block = pool_allocate(sizeof(Storage));
    return adopt_storage(new (block) Storage(std::in_place_type<xt::xarray<T>>, std::move(values)));
}

// A tensor over `storage` (shared, not copied), without history: a backward
// closure's saved values as a tensor (autograd::saved_input takes one).
Tensor tensor_of(std::shared_ptr<Storage> storage);

// An op's result, without history.
template <class T>
Tensor wrap(xt::xarray<T>&& values) {
    return tensor_of(make_storage(std::move(values)));
}

template <class T>
xt::xarray<T> scalar_array(T value) {
    auto a = xt::xarray<T>::from_shape({});
    a() = value;
    return a;
}

template <class A>
Shape to_shape(const A& shape) {
    return Shape(shape.begin(), shape.end());
}

// Calls f(xt::xarray<T>&) for a floating-point tensor; other dtypes are an error.
template <class F>
Tensor visit_floating(const Tensor& t, const char* op, F&& f) {
    check(t.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    switch (t.dtype()) {
        case Dtype::Float32: return f(t.data<float>());
        case Dtype::Float64: return f(t.data<double>());
        default: break;
    }
    throw Error(
        fmt::format("{}: expected a floating-point tensor (got {})", op, dtype_name(t.dtype())));
}

// Calls f(xt::xarray<T>&) for any of the four compute dtypes; a storage dtype
// (float16, int8, ...) is an error: ops convert those first (storage_dtype).
template <class F>
Tensor visit_any(const Tensor& t, const char* op, F&& f) {
    check(t.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    switch (t.dtype()) {
        case Dtype::Float32: return f(t.data<float>());
        case Dtype::Float64: return f(t.data<double>());
        case Dtype::Int64: return f(t.data<std::int64_t>());
        case Dtype::Bool: return f(t.data<bool>());
        default: break;
    }
    throw Error(
        fmt::format("{}: expected a tensor of dtype float32, float64, int64 or bool (got {})", op,
                    dtype_name(t.dtype())));
}

template <class T>
struct TypeTag {
    using type = T;
};

// Calls f(TypeTag<T>{}) with the element type of `dtype`.
template <class F>
decltype(auto) visit_dtype(Dtype dtype, F&& f) {
    switch (dtype) {
        case Dtype::Float32: return f(TypeTag<float>{});
        case Dtype::Float64: return f(TypeTag<double>{});
        case Dtype::Int64: return f(TypeTag<std::int64_t>{});
        case Dtype::Bool: return f(TypeTag<bool>{});
        case Dtype::Float16: return f(TypeTag<Half>{});
        case Dtype::BFloat16: return f(TypeTag<BFloat16>{});
        case Dtype::Int32: return f(TypeTag<std::int32_t>{});
        case Dtype::Int16: return f(TypeTag<std::int16_t>{});
        case Dtype::Int8: return f(TypeTag<std::int8_t>{});
        case Dtype::UInt8: return f(TypeTag<std::uint8_t>{});
    }
    throw Error("unknown dtype");
}

// Calls f(xt::xarray<T>&) for every dtype, storage ones included.
template <class F>
decltype(auto) visit_storage(const Tensor& t, F&& f) {
    return std::visit(std::forward<F>(f), static_cast<StorageValues&>(*t.impl()->storage));
}

// When a tensor of a storage dtype takes part in an op: the dtype the op's
// result is rounded to, having computed in compute_dtype of it. nullopt when
// every operand is of a compute dtype (or undefined), as on the usual path.
// Each public op starts with
//   if (auto to = detail::storage_dtype(a, b)) return op(a.to(c), b.to(c)).to(*to);
// through in_compute_dtype, so its rule stays in one place and its gradient
// comes through the conversions' own.
std::optional<Dtype> storage_dtype(std::initializer_list<const Tensor*> operands);
template <class... T>
std::optional<Dtype> storage_dtype(const T&... operands) {
    return storage_dtype({&operands...});
}

// t converted to compute_dtype(t.dtype()) (undefined stays undefined).
Tensor computable(const Tensor& t);
// The result of an op computed in compute_dtype(dtype), rounded to `dtype`
// with PyTorch's in-kernel rounding (a NaN becomes bfloat16's 0x7FC0), as a
// differentiable conversion; a result of another dtype comes back as it is.
Tensor rounded(const Tensor& result, Dtype dtype);

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op);

// x summed back to `shape`, which it was broadcast from, with ops (sum and
// reshape), so that the result has a history: under create_graph, the
// gradient of a broadcast operand (sum_to_shape's twin).
Tensor sum_to_op(const Tensor& x, const Shape& shape);

// `value`, also depending on `on` with a zero derivative (PyTorch's
// threshold_backward and friends): a gradient recorded by a piecewise-linear
// row (relu, clamp) selects g by masks of its saved value, which carry no
// derivative, yet PyTorch differentiates it with respect to that value too,
// to zeros. Without this edge, autograd::grad would call the value unused.
Tensor with_zero_derivative(const Tensor& value, const Tensor& on);

// a.shape() == b.shape() (or == shape) without building a Shape: hot paths
// compare shapes every step, and each Shape is a heap allocation.
bool same_shape(const Tensor& a, const Tensor& b);
bool same_shape(const Tensor& a, std::span<const std::size_t> shape);

// Maps a possibly negative dim into [0, ndim); error names the op.
// `rank` is the tensor's rank for the message (unsqueeze accepts ndim + 1 positions).
std::size_t normalize_dim(int dim, std::size_t ndim, const char* op);
std::size_t normalize_dim(int dim, std::size_t ndim, const char* op, std::size_t rank);

// NumPy broadcasting of two shapes; error names the op and both shapes.
Shape broadcast_shapes(std::span<const std::size_t> a, std::span<const std::size_t> b,
                       const char* op);
// The same test without building the shape (which would allocate).
void check_broadcastable(std::span<const std::size_t> a, std::span<const std::size_t> b,
                         const char* op);

// Sums `values` over the axes flagged in `reduced`, keeping them as size 1.
// Hand-rolled: xt::sum's immediate mode mis-sizes results on xarray in 0.24.
template <class T>
xt::xarray<T> sum_axes(const xt::xarray<T>& values, std::span<const bool> reduced);

// The strides of `shape` once the dims flagged in `reduced` are summed away
// (each kept as size 1): 0 along a reduced dim. sum_axes' output and
// spread_axes' input are laid out by these.
ArrayShape kept_strides(std::span<const std::size_t> shape, std::span<const bool> reduced);

// f(start, offset) for each row of a non-empty array of `shape` (a run along
// its last dim), in order: start is the row's first element, offset where the
// row begins in another array that advances by stride[d] along each dim d.
template <class F>
void for_each_row(std::span<const std::size_t> shape, std::span<const std::size_t> stride, F f) {
    const std::size_t rank = shape.size(), last = shape[rank - 1];
    std::size_t size = 1;
    for (auto extent : shape) size *= extent;
    ArrayShape index(rank, 0);
    std::size_t offset = 0;
    for (std::size_t start = 0; start < size; start += last) {
        f(start, offset);
        for (std::size_t d = rank - 1; d-- > 0;) {  // odometer over the leading dims
            offset += stride[d];
            if (++index[d] < shape[d]) break;
            offset -= stride[d] * index[d];
            index[d] = 0;
        }
    }
}

// The gradient of sum_axes: each element of `shape` gets the sum it went
// into (summed holds them, summed away dims of size 1), times scale.
template <class T>
xt::xarray<T> spread_axes(const xt::xarray<T>& summed, std::span<const std::size_t> shape,
                          std::span<const bool> reduced, T scale);

// x's elements rearranged so that out dim i is x's dim perm[i], as a
// contiguous array (core/ops/shape.cpp: permute and transpose).
template <class T>
xt::xarray<T> permuted(const xt::xarray<T>& x, std::span<const std::size_t> perm);

// Sums a broadcast gradient back to `shape`: the one rule every broadcasting op uses.
template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& grad, std::span<const std::size_t> shape);

// Splits `shape` around `dim` into the outer, dim and inner extents that
// dim-wise kernels (softmax, max, cat) loop over.
struct DimSplit {
    std::size_t outer = 1, size = 1, inner = 1;
};
DimSplit split_at(std::span<const std::size_t> shape, std::size_t dim);

}  // namespace detail
}  // namespace xg
