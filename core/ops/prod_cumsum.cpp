// prod and cumsum along one dim. Both take int64 and bool as well (bool counted
// as int64, as PyTorch promotes it) and give int64 without a gradient; floating
// tensors get ProdBackward (exact with zeros) and CumsumBackward, each with a
// second derivative (its gradient written with ops under create_graph).
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "buffer_cache.hpp"
#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

using autograd::make_result;
using detail::wrap;

namespace {

// Calls f(xt::xarray<T>&) for float32, float64 or int64; bool counts as int64,
// as torch.prod and torch.cumsum promote it.
template <class F>
Tensor visit_numeric(const Tensor& t, const char* op, F&& f) {
    check(t.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    switch (t.dtype()) {
        case Dtype::Float32: return f(t.data<float>());
        case Dtype::Float64: return f(t.data<double>());
        case Dtype::Int64: return f(t.data<std::int64_t>());
        case Dtype::Bool: return f(t.to(kInt64).data<std::int64_t>());
        default: break;  // storage dtypes are converted before (prod, cumsum)
    }
    throw Error(fmt::format("{}: expected a float32, float64, int64 or bool tensor (got {})", op,
                            dtype_name(t.dtype())));
}

// a * b; int64 wraps around as in PyTorch instead of overflowing (undefined in C++).
template <class T>
T times(T a, T b) {
    if constexpr (std::is_integral_v<T>)
        return static_cast<T>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
    else
        return a * b;
}

// Running sums along the middle extent of `s`, from the back when `reverse`
// (cumsum's gradient). float32 accumulates in double, as PyTorch's CPU kernel.
template <class T>
xt::xarray<T> running_sums(const xt::xarray<T>& a, const detail::DimSplit& s, bool reverse) {
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
    auto out = detail::empty_array<T>(a.shape());
    for (std::size_t o = 0; o < s.outer; ++o) {
        for (std::size_t i = 0; i < s.inner; ++i) {
            Acc acc = 0;
            for (std::size_t k = 0; k < s.size; ++k) {
                const std::size_t at = (o * s.size + (reverse ? s.size - 1 - k : k)) * s.inner + i;
                acc += a.data()[at];
                out.data()[at] = static_cast<T>(acc);
            }
        }
    }
    return out;
}

// prod's gradient: g times the product of the other entries of each slice along
// the middle extent of `s`, from prefix and suffix products. No division, so
// with one zero only that entry's gradient is nonzero, and with two none is.
template <class T>
xt::xarray<T> products_of_others(const T* x, const T* g, const detail::DimSplit& s,
                                 const Shape& shape) {
    auto d = detail::empty_array<T>(shape);
    std::vector<T> before(s.size);  // before[j]: the product of entries 0 .. j-1
    for (std::size_t o = 0; o < s.outer; ++o) {
        for (std::size_t i = 0; i < s.inner; ++i) {
            const std::size_t base = o * s.size * s.inner + i;
            T acc = 1;
            for (std::size_t j = 0; j < s.size; ++j) {
                before[j] = acc;
                acc *= x[base + j * s.inner];
            }
            T after = g[o * s.inner + i];  // g times the entries after j
            for (std::size_t j = s.size; j-- > 0;) {
                d.data()[base + j * s.inner] = before[j] * after;
                after *= x[base + j * s.inner];
            }
        }
    }
    return d;
}

// products_of_others with ops, for double backward: g times prod along a new
// dim of an [..., n, n, ...] stack whose row j is the slice with entry j
// replaced by 1. No division, so exact with zeros as the raw loop is (and as
// PyTorch's cumprod-based path for zeros); the second derivative of each
// product is prod's own gradient. The stack costs n times x's memory, only
// when a graph of the backward is recorded.
Tensor prod_grad_op(const Tensor& x, const Tensor& g, std::size_t axis) {
    const Shape shape = x.shape();
    if (shape.empty()) return g;  // a 0-d x is its own product, as PyTorch's prod_backward
    if (x.numel() == 0) return zeros(shape, g.dtype());
    std::vector<std::int64_t> kept(shape.begin(), shape.end());
    kept[axis] = 1;
    const Tensor spread = reshape(g, kept);
    const std::size_t n = shape[axis];
    if (n == 1) return spread;  // the product of no others is 1
    Shape eye_shape{n, n};      // broadcasts over the dims after axis
    eye_shape.insert(eye_shape.end(), shape.size() - axis - 1, 1);
    auto eye = xt::xarray<bool>::from_shape(eye_shape);
    std::fill(eye.begin(), eye.end(), false);
    for (std::size_t j = 0; j < n; ++j) eye.data()[j * n + j] = true;
    const auto row_dim = static_cast<int>(axis);
    const Tensor others = where(wrap(std::move(eye)), ones({}, x.dtype()), unsqueeze(x, row_dim));
    return spread * prod(others, row_dim + 1);
}

// cumsum's gradient with ops: g summed from each entry on, as PyTorch's
// cumsum_backward reverses, runs cumsum and reverses back. Linear in g.
Tensor cumsum_grad_op(const Tensor& g, std::size_t axis) {
    if (g.numel() <= 1 || g.shape()[axis] == 1) return g;
    const std::vector<int> dims{static_cast<int>(axis)};
    return flip(cumsum(flip(g, dims), dims[0]), dims);
}

}  // namespace

Tensor prod(const Tensor& x) {
    check(x.defined(), "prod: expected a defined tensor (got an undefined one)");
    return reshape(prod(reshape(x, {-1}), 0), {});
}

// Products along dim (1 for an empty slice); int64 (and bool) give int64 and no
// gradient. The gradient is exact with zeros (products_of_others).
Tensor prod(const Tensor& x, int dim, bool keepdim) {
    check(x.defined(), "prod: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x)) {  // integers multiply in int64, as PyTorch's
        Tensor product = prod(detail::computable(x), dim, keepdim);
        return is_floating_point(*to) ? detail::rounded(product, *to) : product;
    }
    const Shape shape = x.shape();
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "prod");
    const auto s = shape.empty() ? detail::DimSplit{} : detail::split_at(shape, axis);
    Shape out_shape = shape;
    if (!shape.empty()) {
        if (keepdim)
            out_shape[axis] = 1;
        else
            out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(axis));
    }
    return visit_numeric(x, "prod", [&]<class T>(xt::xarray<T>& a) {
        auto out = detail::empty_array<T>(out_shape);
        for (std::size_t o = 0; o < s.outer; ++o) {
            for (std::size_t i = 0; i < s.inner; ++i) {
                T p = 1;
                for (std::size_t j = 0; j < s.size; ++j)
                    p = times(p, a.data()[(o * s.size + j) * s.inner + i]);
                out.data()[o * s.inner + i] = p;
            }
        }
        Tensor result = wrap(std::move(out));
        if constexpr (!std::is_floating_point_v<T>) {
            return result;
        } else {
            return make_result(
                result, "ProdBackward", {x},
                [s, shape, axis, saved = x.detach()](const Tensor& g) {
                    if (autograd::creating_graph())
                        return autograd::Gradients{
                            prod_grad_op(autograd::saved_input(0, saved), g, axis)};
                    return autograd::Gradients{wrap(
                        products_of_others(saved.data<T>().data(), g.data<T>().data(), s, shape))};
                },
                autograd::DoubleBackward::Supported);
        }
    });
}

// Running sums along dim; the gradient of entry j sums g over the entries from j on.
Tensor cumsum(const Tensor& x, int dim) {
    check(x.defined(), "cumsum: expected a defined tensor (got an undefined one)");
    if (auto to = detail::storage_dtype(x)) {  // integers sum to int64, as PyTorch's
        Tensor sums = cumsum(detail::computable(x), dim);
        return is_floating_point(*to) ? detail::rounded(sums, *to) : sums;
    }
    const Shape shape = x.shape();
    const std::size_t axis = detail::normalize_dim(dim, shape.size(), "cumsum");
    const auto s = shape.empty() ? detail::DimSplit{} : detail::split_at(shape, axis);
    return visit_numeric(x, "cumsum", [&]<class T>(xt::xarray<T>& a) {
        Tensor result = wrap(running_sums(a, s, false));
        if constexpr (!std::is_floating_point_v<T>) {
            return result;
        } else {
            return make_result(
                result, "CumsumBackward", {x},
                [s, axis](const Tensor& g) {
                    if (autograd::creating_graph())
                        return autograd::Gradients{cumsum_grad_op(g, axis)};
                    return autograd::Gradients{wrap(running_sums(g.data<T>(), s, true))};
                },
                autograd::DoubleBackward::Supported);
        }
    });
}

}  // namespace xg
