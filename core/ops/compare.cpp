// Comparisons and logic: eq, ne, lt, le, gt, ge (with NumPy broadcasting),
// logical_and / or / not, isnan, isinf, isfinite, any and all. Every result is
// kBool and needs no grad, as in PyTorch: these ops have no backward.
//
// Operands of different dtypes are compared as float64 (PyTorch promotes them
// to a common dtype first; float64 holds every float32 value and every int64
// up to 2^53 exactly).
#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>

#include <xtensor/xoperation.hpp>

#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg {

namespace {

// a and b as arrays of one common type, broadcast together, handed to f.
template <class F>
Tensor on_common(const Tensor& a, const Tensor& b, const char* op, F f) {
    check(a.defined() && b.defined(), "{}: expected defined tensors (got an undefined one)", op);
    detail::check_broadcastable(a.sizes(), b.sizes(), op);  // throws, naming both shapes
    if (detail::storage_dtype(a, b))
        return on_common(detail::computable(a), detail::computable(b), op, f);
    const bool same = a.dtype() == b.dtype();
    const Tensor x = same ? a : a.to(kFloat64), y = same ? b : b.to(kFloat64);
    return detail::visit_any(x, op, [&]<class T>(xt::xarray<T>& u) {
        xt::xarray<bool> out = f(u, y.data<T>());
        return detail::wrap(std::move(out));
    });
}

template <class T>
bool truthy(T v) {
    return v != T(0);  // NaN is true, as in PyTorch
}

// A scalar operand as a 0-d tensor of x's dtype (float64 for a bool or int64 x
// given a fractional scalar, so 1 < 1.5 stays true).
Tensor scalar_for(const Tensor& x, double value) {
    const bool whole = value == std::floor(value);
    const Dtype dtype = is_floating_point(x.dtype()) || whole ? x.dtype() : kFloat64;
    return full({}, value, dtype == kBool ? kFloat64 : dtype);
}

}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "eq", [](const auto& u, const auto& v) { return xt::equal(u, v); });
}
Tensor eq(const Tensor& a, double b) { return eq(a, scalar_for(a, b)); }

Tensor ne(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "ne", [](const auto& u, const auto& v) { return xt::not_equal(u, v); });
}
Tensor ne(const Tensor& a, double b) { return ne(a, scalar_for(a, b)); }

Tensor lt(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "lt", [](const auto& u, const auto& v) { return u < v; });
}
Tensor lt(const Tensor& a, double b) { return lt(a, scalar_for(a, b)); }

Tensor le(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "le", [](const auto& u, const auto& v) { return u <= v; });
}
Tensor le(const Tensor& a, double b) { return le(a, scalar_for(a, b)); }

Tensor gt(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "gt", [](const auto& u, const auto& v) { return u > v; });
}
Tensor gt(const Tensor& a, double b) { return gt(a, scalar_for(a, b)); }

Tensor ge(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "ge", [](const auto& u, const auto& v) { return u >= v; });
}
Tensor ge(const Tensor& a, double b) { return ge(a, scalar_for(a, b)); }

Tensor logical_and(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "logical_and", [](const auto& u, const auto& v) {
        return xt::not_equal(u, 0) && xt::not_equal(v, 0);
    });
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
    return on_common(a, b, "logical_or", [](const auto& u, const auto& v) {
        return xt::not_equal(u, 0) || xt::not_equal(v, 0);
    });
}

Tensor logical_not(const Tensor& x) {
    return detail::visit_any(x, "logical_not", [](const auto& a) {
        xt::xarray<bool> out = xt::equal(a, 0);
        return detail::wrap(std::move(out));
    });
}

namespace {
// A floating test per element; integers and bools are never NaN or inf.
template <class F>
Tensor classify(const Tensor& x, const char* op, bool integer_answer, F test) {
    if (detail::storage_dtype(x)) return classify(detail::computable(x), op, integer_answer, test);
    return detail::visit_any(x, op, [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<bool> out = xt::xarray<bool>::from_shape(a.shape());
        auto o = out.begin();
        for (T v : a) {
            if constexpr (std::is_floating_point_v<T>)
                *o++ = test(v);
            else
                *o++ = integer_answer;
        }
        return detail::wrap(std::move(out));
    });
}
}  // namespace

Tensor isnan(const Tensor& x) {
    return classify(x, "isnan", false, [](auto v) { return std::isnan(v); });
}
Tensor isinf(const Tensor& x) {
    return classify(x, "isinf", false, [](auto v) { return std::isinf(v); });
}
Tensor isfinite(const Tensor& x) {
    return classify(x, "isfinite", true, [](auto v) { return std::isfinite(v); });
}

namespace {
// any / all over every element, or over one dim (keepdim as PyTorch).
Tensor reduce_truth(const Tensor& x, std::optional<int> dim, bool keepdim, bool want_all,
                    const char* op) {
    check(x.defined(), "{}: expected a defined tensor (got an undefined one)", op);
    if (detail::storage_dtype(x))
        return reduce_truth(detail::computable(x), dim, keepdim, want_all, op);
    const Shape shape = x.shape();
    const std::size_t axis =
        dim ? detail::normalize_dim(*dim, std::max<std::size_t>(shape.size(), 1), op) : 0;
    const auto split =
        dim && !shape.empty() ? detail::split_at(shape, axis) : detail::DimSplit{1, x.numel(), 1};
    Shape out_shape;
    if (dim) {
        out_shape = shape;
        if (!out_shape.empty()) {
            if (keepdim)
                out_shape[axis] = 1;
            else
                out_shape.erase(out_shape.begin() + static_cast<std::ptrdiff_t>(axis));
        }
    }
    return detail::visit_any(x, op, [&]<class T>(xt::xarray<T>& a) {
        xt::xarray<bool> out = xt::xarray<bool>::from_shape(out_shape);
        const T* p = a.data();
        for (std::size_t o = 0; o < split.outer; ++o) {
            for (std::size_t i = 0; i < split.inner; ++i) {
                bool result = want_all;
                for (std::size_t k = 0; k < split.size && result == want_all; ++k)
                    result = truthy(p[(o * split.size + k) * split.inner + i]);
                out.data()[o * split.inner + i] = result;
            }
        }
        return detail::wrap(std::move(out));
    });
}
}  // namespace

Tensor any(const Tensor& x) { return reduce_truth(x, std::nullopt, false, false, "any"); }
Tensor all(const Tensor& x) { return reduce_truth(x, std::nullopt, false, true, "all"); }
Tensor any(const Tensor& x, int dim, bool keepdim) {
    return reduce_truth(x, dim, keepdim, false, "any");
}
Tensor all(const Tensor& x, int dim, bool keepdim) {
    return reduce_truth(x, dim, keepdim, true, "all");
}

}  // namespace xg
