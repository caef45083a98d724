// Dtypes: their names, sizes and promotion; tensor conversions between them;
// and how ops reach the storage dtypes (float16, bfloat16, int32, int16, int8,
// uint8): they compute in float32 or int64 and round their result once, as
// PyTorch's CPU kernels do.
#include "convert.hpp"

#include <algorithm>

#include "buffer_cache.hpp"

namespace xg {

std::string dtype_name(Dtype dtype) {
    switch (dtype) {
        case Dtype::Float32: return "float32";
        case Dtype::Float64: return "float64";
        case Dtype::Int64: return "int64";
        case Dtype::Bool: return "bool";
        case Dtype::Float16: return "float16";
        case Dtype::BFloat16: return "bfloat16";
        case Dtype::Int32: return "int32";
        case Dtype::Int16: return "int16";
        case Dtype::Int8: return "int8";
        case Dtype::UInt8: return "uint8";
    }
    return "unknown";
}

bool is_floating_point(Dtype dtype) {
    return dtype == Dtype::Float32 || dtype == Dtype::Float64 || dtype == Dtype::Float16 ||
           dtype == Dtype::BFloat16;
}

std::size_t element_size(Dtype dtype) {
    switch (dtype) {
        case Dtype::Float64:
        case Dtype::Int64: return 8;
        case Dtype::Float32:
        case Dtype::Int32: return 4;
        case Dtype::Float16:
        case Dtype::BFloat16:
        case Dtype::Int16: return 2;
        default: return 1;
    }
}

Dtype compute_dtype(Dtype dtype) {
    if (dtype == Dtype::Float16 || dtype == Dtype::BFloat16) return kFloat32;
    if (dtype == Dtype::Int32 || dtype == Dtype::Int16 || dtype == Dtype::Int8 ||
        dtype == Dtype::UInt8)
        return kInt64;
    return dtype;
}

namespace {
// A dtype's category: bool, integer or floating.
int category(Dtype dtype) {
    if (dtype == Dtype::Bool) return 0;
    return is_floating_point(dtype) ? 2 : 1;
}
}  // namespace

// PyTorch's table: a higher category wins; within one the wider dtype, except
// that float16 and bfloat16 meet in float32, and uint8 with int8 in int16.
Dtype promote_types(Dtype a, Dtype b) {
    if (a == b) return a;
    if (category(a) != category(b)) return category(a) > category(b) ? a : b;
    if (element_size(a) == element_size(b)) {
        return category(a) == 2 ? kFloat32 : kInt16;  // {float16, bfloat16} or {uint8, int8}
    }
    const Dtype wide = element_size(a) > element_size(b) ? a : b;
    return (a == Dtype::UInt8 || b == Dtype::UInt8) && wide == Dtype::Int8 ? kInt16 : wide;
}

Dtype result_type(const Tensor& a, const Tensor& b) {
    check(a.defined() && b.defined(),
          "result_type: expected defined tensors (got an undefined one)");
    const Dtype x = a.dtype(), y = b.dtype();
    if (x == y) return x;
    const bool a_scalar = a.dim() == 0, b_scalar = b.dim() == 0;
    if (a_scalar == b_scalar) return promote_types(x, y);
    const Dtype with_dims = a_scalar ? y : x, scalar = a_scalar ? x : y;
    return category(scalar) > category(with_dims) ? scalar : with_dims;
}

namespace detail {

namespace {

template <class To, class From>
xt::xarray<To> convert_array(const xt::xarray<From>& in, NanRounding nan) {
    auto out = empty_array<To>(in.shape());
    const From* from = in.data();
    To* to = out.data();
    const std::size_t n = in.size();
    if constexpr (std::is_same_v<To, BFloat16> && std::is_same_v<From, float>) {
        if (nan == NanRounding::Vectorised) {
            for (std::size_t i = 0; i < n; ++i)
                to[i] = std::isnan(from[i]) ? BFloat16::from_bits(0xFFFF) : BFloat16(from[i]);
            return out;
        }
    }
    for (std::size_t i = 0; i < n; ++i) to[i] = convert_element<To>(from[i]);
    return out;
}

Tensor convert_values(const Tensor& t, Dtype dtype, NanRounding nan) {
    return visit_dtype(dtype, [&]<class To>(TypeTag<To>) {
        return visit_storage(t, [&]<class From>(const xt::xarray<From>& in) {
            return wrap(convert_array<To>(in, nan));
        });
    });
}

}  // namespace

Tensor converted(const Tensor& t, Dtype dtype, NanRounding nan) {
    check(t.defined(), "to: expected a defined tensor (got an undefined one)");
    const Dtype source = t.dtype();
    if (source == dtype) return t;
    Tensor out = convert_values(t, dtype, nan);
    if (!is_floating_point(dtype) || !is_floating_point(source)) return out;
    return autograd::make_result(
        out, "ToCopyBackward", {t},
        [source](const Tensor& g) { return std::vector<Tensor>{g.to(source)}; },
        autograd::DoubleBackward::Supported, autograd::Reads::Nothing);
}

std::optional<Dtype> storage_dtype(std::initializer_list<const Tensor*> operands) {
    std::optional<Dtype> result;
    for (const Tensor* t : operands) {
        if (t->defined()) result = result ? promote_types(*result, t->dtype()) : t->dtype();
    }
    bool any_storage = std::any_of(operands.begin(), operands.end(), [](const Tensor* t) {
        return t->defined() && compute_dtype(t->dtype()) != t->dtype();
    });
    if (!any_storage || !result || compute_dtype(*result) == *result) return std::nullopt;
    return result;
}

Tensor computable(const Tensor& t) {
    return t.defined() ? converted(t, compute_dtype(t.dtype()), NanRounding::Scalar) : t;
}

Tensor rounded(const Tensor& result, Dtype dtype) {
    // A result of another kind than the op computed in (a bool comparison, a
    // float division of integers) is what PyTorch returns too.
    if (!result.defined() || result.dtype() != compute_dtype(dtype)) return result;
    return converted(result, dtype, NanRounding::Scalar);
}

}  // namespace detail
}  // namespace xg
