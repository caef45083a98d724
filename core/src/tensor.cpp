// Tensor handle methods, factories and the shared shape helpers.
#include "xgrad/tensor.hpp"

#include <algorithm>
#include <numeric>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xreducer.hpp>

#include "buffer_cache.hpp"
#include "convert.hpp"
#include "internal.hpp"
#include "object_pool.hpp"
#include "row_kernels.hpp"
#include "xgrad/ops.hpp"
#include "xgrad/parallel.hpp"

namespace xg {

std::string shape_str(const std::vector<std::size_t>& shape) {
    return fmt::format("[{}]", fmt::join(shape, ", "));
}

Tensor::Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

TensorImpl& Tensor::checked_impl(const char* what) const {
    check(impl_ != nullptr, "{}: expected a defined tensor (got an undefined one)", what);
    return *impl_;
}

Shape Tensor::shape() const {
    return std::visit([](const auto& a) { return detail::to_shape(a.shape()); },
                      *checked_impl("shape").storage);
}

namespace detail {
bool same_shape(const Tensor& a, const Tensor& b) {
    return std::visit(
        [](const auto& x, const auto& y) { return std::ranges::equal(x.shape(), y.shape()); },
        *a.impl()->storage, *b.impl()->storage);
}
bool same_shape(const Tensor& a, std::span<const std::size_t> shape) {
    return std::visit([&](const auto& x) { return std::ranges::equal(x.shape(), shape); },
                      *a.impl()->storage);
}
}  // namespace detail

std::span<const std::size_t> Tensor::sizes() const {
    return std::visit(
        [](const auto& a) { return std::span<const std::size_t>(a.shape().data(), a.dimension()); },
        *checked_impl("sizes").storage);
}

void Tensor::set_data(const Tensor& new_data) const {
    check(new_data.defined(), "set_data: expected a defined tensor (got an undefined one)");
    checked_impl("set_data").storage = new_data.impl()->storage;
}

std::size_t Tensor::dim() const {
    return std::visit([](const auto& a) { return a.dimension(); }, *checked_impl("dim").storage);
}

std::size_t Tensor::numel() const {
    return std::visit([](const auto& a) { return a.size(); }, *checked_impl("numel").storage);
}

Dtype Tensor::dtype() const { return static_cast<Dtype>(checked_impl("dtype").storage->index()); }

template <class T>
xt::xarray<T>& Tensor::data() const {
    auto* values = std::get_if<xt::xarray<T>>(checked_impl("data").storage.get());
    if (values == nullptr) {
        constexpr Dtype wanted = dtype_of<T>();
        throw Error(fmt::format("data: expected dtype {} (got {})", dtype_name(wanted),
                                dtype_name(dtype())));
    }
    return *values;
}

void* Tensor::data_ptr() const {
    checked_impl("data_ptr");
    return detail::visit_storage(*this, [](auto& a) { return static_cast<void*>(a.data()); });
}

std::size_t Tensor::nbytes() const { return numel() * element_size(dtype()); }

template <class T>
T Tensor::item() const {
    if (numel() != 1)
        fail("item: expected a tensor with one element (got shape {})", shape_str(shape()));
    return detail::visit_storage(*this, []<class E>(const xt::xarray<E>& a) {
        if constexpr (std::is_same_v<E, Half> || std::is_same_v<E, BFloat16>) {
            return static_cast<T>(static_cast<float>(a.data()[0]));
        } else {
            return static_cast<T>(a.data()[0]);
        }
    });
}

template xt::xarray<float>& Tensor::data<float>() const;
template xt::xarray<double>& Tensor::data<double>() const;
template xt::xarray<std::int64_t>& Tensor::data<std::int64_t>() const;
template xt::xarray<bool>& Tensor::data<bool>() const;
template xt::xarray<Half>& Tensor::data<Half>() const;
template xt::xarray<BFloat16>& Tensor::data<BFloat16>() const;
template xt::xarray<std::int32_t>& Tensor::data<std::int32_t>() const;
template xt::xarray<std::int16_t>& Tensor::data<std::int16_t>() const;
template xt::xarray<std::int8_t>& Tensor::data<std::int8_t>() const;
template xt::xarray<std::uint8_t>& Tensor::data<std::uint8_t>() const;
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template std::int64_t Tensor::item<std::int64_t>() const;
template int Tensor::item<int>() const;
template bool Tensor::item<bool>() const;  // nonzero is true, as Python's bool(t)

bool Tensor::requires_grad() const { return checked_impl("requires_grad").requires_grad; }

Tensor& Tensor::requires_grad_(bool requires_grad) {
    auto& impl = checked_impl("requires_grad_");
    check(is_leaf() || requires_grad,
          "requires_grad_: only leaf tensors can stop requiring grad (got one made by {}); use "
          "detach()",
          grad_fn_name());
    if (requires_grad && !is_floating_point(dtype())) {
        fail("requires_grad_: only floating-point tensors can require gradients (got {})",
             dtype_name(dtype()));
    }
    impl.requires_grad = requires_grad;
    return *this;
}

Tensor Tensor::grad() const { return checked_impl("grad").grad; }

Tensor& Tensor::mutable_grad() const { return checked_impl("mutable_grad").grad; }

bool Tensor::is_leaf() const { return checked_impl("is_leaf").grad_fn == nullptr; }

void Tensor::retain_grad() const {
    auto& impl = checked_impl("retain_grad");
    check(impl.requires_grad,
          "retain_grad: expected a tensor that requires grad (got one that does not)");
    if (impl.grad_fn) {  // leaves keep their grad anyway
        impl.retains_grad = true;
        impl.grad_fn->output_watched = true;
    }
}

bool Tensor::retains_grad() const { return checked_impl("retains_grad").retains_grad; }

namespace detail {
Tensor tensor_of(std::shared_ptr<Storage> storage) {
    auto impl = make_pooled<TensorImpl>();
    impl->storage = std::move(storage);
    return Tensor(std::move(impl));
}
}  // namespace detail

Tensor Tensor::detach() const {
    auto impl = detail::make_pooled<TensorImpl>();
    impl->storage = checked_impl("detach").storage;
    return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
    checked_impl("clone");
    Tensor copy = detail::visit_storage(*this, []<class T>(xt::xarray<T>& a) {
        auto values = detail::empty_array<T>(a.shape());
        const T* from = a.data();
        T* to = values.data();
        detail::for_chunks(a.size(), [=](std::size_t first, std::size_t count) {
            std::copy_n(from + first, count, to + first);
        });
        return detail::wrap(std::move(values));
    });
    return autograd::make_result(
        copy, "CloneBackward", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

Tensor Tensor::to(Dtype target) const {
    return detail::converted(*this, target, detail::NanRounding::Vectorised);
}

std::string Tensor::grad_fn_name() const {
    auto& impl = checked_impl("grad_fn_name");
    return impl.grad_fn ? std::string(impl.grad_fn->name) : std::string();
}

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
    return checked_impl("grad_fn").grad_fn;
}

void Tensor::backward(const Tensor& grad, std::optional<bool> retain_graph,
                      bool create_graph) const {
    autograd::run_backward(*this, grad, retain_graph, create_graph);
}

RemovableHandle Tensor::add_hook(TensorHook hook) const {
    auto& impl = checked_impl("register_hook");
    check(impl.requires_grad,
          "register_hook: expected a tensor that requires grad (got one that does not)");
    std::uint64_t id = impl.next_hook_id++;
    // The hook runs with the node that now makes the tensor: its grad_fn, or
    // for a leaf its accumulator (made now if it is not yet).
    std::shared_ptr<autograd::Node>& node = impl.grad_fn ? impl.grad_fn : impl.grad_accumulator;
    if (!node) node = autograd::make_accumulator(impl_);
    node->output_watched = true;
    impl.hooks.push_back({id, std::move(hook), node});
    // The handle holds the tensor weakly: it must not keep the graph alive.
    return RemovableHandle([weak = std::weak_ptr<TensorImpl>(impl_), id] {
        if (auto target = weak.lock()) {
            std::erase_if(target->hooks, [id](const auto& entry) { return entry.id == id; });
        }
    });
}

// ---- factories ----

template <class T>
Tensor tensor(xt::xarray<T> values, bool requires_grad) {
    auto impl = detail::make_pooled<TensorImpl>();
    impl->storage = detail::make_storage(std::move(values));
    Tensor t(std::move(impl));
    if (requires_grad) t.requires_grad_(true);
    return t;
}

template Tensor tensor<float>(xt::xarray<float>, bool);
template Tensor tensor<double>(xt::xarray<double>, bool);
template Tensor tensor<std::int64_t>(xt::xarray<std::int64_t>, bool);
template Tensor tensor<bool>(xt::xarray<bool>, bool);
template Tensor tensor<Half>(xt::xarray<Half>, bool);
template Tensor tensor<BFloat16>(xt::xarray<BFloat16>, bool);
template Tensor tensor<std::int32_t>(xt::xarray<std::int32_t>, bool);
template Tensor tensor<std::int16_t>(xt::xarray<std::int16_t>, bool);
template Tensor tensor<std::int8_t>(xt::xarray<std::int8_t>, bool);
template Tensor tensor<std::uint8_t>(xt::xarray<std::uint8_t>, bool);

Tensor full(const Shape& shape, double value, Dtype dtype) {
    Tensor out = empty(shape, dtype);
    detail::visit_storage(out, [&]<class T>(xt::xarray<T>& a) {
        const T v = detail::convert_element<T>(value);
        T* p = a.data();
        detail::for_chunks(a.size(), [=](std::size_t first, std::size_t count) {
            std::fill_n(p + first, count, v);
        });
    });
    return out;
}

Tensor zeros(const Shape& shape, Dtype dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, Dtype dtype) { return full(shape, 1.0, dtype); }

Tensor empty(const Shape& shape, Dtype dtype) {
    return detail::visit_dtype(dtype, [&]<class T>(detail::TypeTag<T>) {
        return detail::wrap(detail::empty_array<T>(shape));  // from the buffer cache
    });
}

Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }

Tensor arange(std::int64_t n, Dtype dtype) {
    check(n >= 0, "arange: expected a non-negative length (got {})", n);
    auto values = xt::xarray<std::int64_t>(xt::arange<std::int64_t>(n));
    return detail::wrap(std::move(values)).to(dtype);
}

Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype()); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype()); }
Tensor randn_like(const Tensor& t) { return randn(t.shape(), t.dtype()); }
Tensor rand_like(const Tensor& t) { return rand(t.shape(), t.dtype()); }

Tensor arange(std::int64_t start, std::int64_t end, std::int64_t step, Dtype dtype) {
    check(step != 0, "arange: expected a nonzero step (got 0)");
    check((end - start) * step >= 0 || start == end,
          "arange: expected the step to move from start {} towards end {} (got {})", start, end,
          step);
    const std::int64_t n = (end - start + step + (step > 0 ? -1 : 1)) / step;
    auto values = xt::xarray<std::int64_t>::from_shape(
        {static_cast<std::size_t>(std::max<std::int64_t>(n, 0))});
    for (std::int64_t i = 0; i < n; ++i) values(static_cast<std::size_t>(i)) = start + i * step;
    return detail::wrap(std::move(values)).to(dtype);
}

Tensor linspace(double start, double end, std::int64_t steps, Dtype dtype) {
    check(steps >= 0, "linspace: expected a non-negative number of steps (got {})", steps);
    if (!is_floating_point(dtype)) {
        fail("linspace: expected a floating dtype (got {})", dtype_name(dtype));
    }
    auto values = xt::xarray<double>::from_shape({static_cast<std::size_t>(steps)});
    const double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    for (std::int64_t i = 0; i < steps; ++i) {
        values(static_cast<std::size_t>(i)) = i < steps / 2
                                                  ? start + step * static_cast<double>(i)
                                                  : end - step * static_cast<double>(steps - 1 - i);
    }
    return detail::wrap(std::move(values)).to(dtype);
}

Tensor eye(std::int64_t n, std::int64_t m, Dtype dtype) {
    if (m < 0) m = n;
    check(n >= 0, "eye: expected n >= 0 (got {})", n);
    Tensor out = zeros({static_cast<std::size_t>(n), static_cast<std::size_t>(m)}, kFloat64);
    auto& values = out.data<double>();
    for (std::int64_t i = 0; i < std::min(n, m); ++i)
        values(static_cast<std::size_t>(i), static_cast<std::size_t>(i)) = 1.0;
    return out.to(dtype);
}

// ---- shared helpers ----

namespace detail {

void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
    check(a.defined() && b.defined(), "{}: expected defined tensors (got an undefined one)", op);
    if (a.dtype() != b.dtype()) {
        fail("{}: expected operands of the same dtype (got {} and {})", op, dtype_name(a.dtype()),
             dtype_name(b.dtype()));
    }
}

std::size_t normalize_dim(int dim, std::size_t ndim, const char* op) {
    return normalize_dim(dim, ndim, op, ndim);
}

std::size_t normalize_dim(int dim, std::size_t ndim, const char* op, std::size_t rank) {
    auto n = static_cast<int>(ndim);
    int low = n == 0 ? -1 : -n, high = n == 0 ? 0 : n - 1;  // a 0-d tensor accepts 0 and -1
    check(dim >= low && dim <= high, "{}: expected dim in [{}, {}] for a {}-d tensor (got {})", op,
          low, high, rank, dim);
    return static_cast<std::size_t>(dim < 0 ? dim + std::max(n, 1)
                                            : dim);  // -1 of a 0-d tensor is 0
}

namespace {
// Dim i of `shape` aligned right to rank n: 1 where shape has no such leading dim.
std::size_t aligned_dim(std::span<const std::size_t> shape, std::size_t n, std::size_t i) {
    return i < n - shape.size() ? 1 : shape[i - (n - shape.size())];
}
}  // namespace

void check_broadcastable(std::span<const std::size_t> a, std::span<const std::size_t> b,
                         const char* op) {
    const std::size_t n = std::max(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t da = aligned_dim(a, n, i), db = aligned_dim(b, n, i);
        if (da != db && da != 1 && db != 1)
            fail("{}: shapes {} and {} are not broadcastable", op, shape_str(to_shape(a)),
                 shape_str(to_shape(b)));
    }
}

Shape broadcast_shapes(std::span<const std::size_t> a, std::span<const std::size_t> b,
                       const char* op) {
    check_broadcastable(a, b, op);
    const std::size_t n = std::max(a.size(), b.size());
    Shape out(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t da = aligned_dim(a, n, i);
        out[i] = da == 1 ? aligned_dim(b, n, i) : da;
    }
    return out;
}

template <class T>
xt::xarray<T> sum_to_shape(const xt::xarray<T>& grad, std::span<const std::size_t> shape) {
    if (std::equal(grad.shape().begin(), grad.shape().end(), shape.begin(), shape.end())) {
        return grad;
    }
    std::size_t lead = grad.dimension() - shape.size();
    DimFlags reduced(grad.dimension(), false);
    for (std::size_t i = 0; i < grad.dimension(); ++i) {
        reduced[i] = i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1);
    }
    xt::xarray<T> out = sum_axes(grad, reduced);
    out.reshape(ArrayShape(shape.begin(), shape.end()));
    return out;
}

template xt::xarray<float> sum_to_shape(const xt::xarray<float>&, std::span<const std::size_t>);
template xt::xarray<double> sum_to_shape(const xt::xarray<double>&, std::span<const std::size_t>);

DimSplit split_at(std::span<const std::size_t> shape, std::size_t dim) {
    DimSplit s;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i < dim)
            s.outer *= shape[i];
        else if (i == dim)
            s.size = shape[i];
        else
            s.inner *= shape[i];
    }
    return s;
}

}  // namespace detail
}  // namespace xg
