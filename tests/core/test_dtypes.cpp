// The storage dtypes (float16, bfloat16, int32, int16, int8, uint8) against PyTorch
// (reference/dtypes_reference.hpp, from reference/gen_dtypes.py): conversions bit for
// bit, promotion, factories, element access, printing, ops in float16 and bfloat16,
// and gradients through conversions and bfloat16 ops.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/dtypes_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_dtypes {

using xg::Tensor;
namespace ref = reference::dtypes;

namespace {

// In xgrad's Dtype order, as ref::dtypes.
constexpr xg::Dtype kDtypes[] = {xg::kFloat32,  xg::kFloat64, xg::kInt64, xg::kBool, xg::kFloat16,
                                 xg::kBFloat16, xg::kInt32,   xg::kInt16, xg::kInt8, xg::kUInt8};

xg::Dtype dtype_named(std::string_view name) {
    for (std::size_t i = 0; i < std::size(kDtypes); ++i) {
        if (name == ref::dtypes[i].name) return kDtypes[i];
    }
    FAIL("no dtype named ", name);
    return xg::kFloat32;
}

template <class T>
constexpr bool kSixteenBit = std::is_same_v<T, xg::Half> || std::is_same_v<T, xg::BFloat16>;

// f(T{}) with the element type of `dtype`.
template <class F>
decltype(auto) with_element_type(xg::Dtype dtype, F&& f) {
    switch (dtype) {
        case xg::kFloat32: return f(float{});
        case xg::kFloat64: return f(double{});
        case xg::kInt64: return f(std::int64_t{});
        case xg::kBool: return f(bool{});
        case xg::kFloat16: return f(xg::Half{});
        case xg::kBFloat16: return f(xg::BFloat16{});
        case xg::kInt32: return f(std::int32_t{});
        case xg::kInt16: return f(std::int16_t{});
        case xg::kInt8: return f(std::int8_t{});
        case xg::kUInt8: return f(std::uint8_t{});
    }
    throw xg::Error("test: unknown dtype");
}

// An element from its bits (see the reference header), and back.
template <class T>
T from_bits(std::uint64_t bits) {
    if constexpr (kSixteenBit<T>) {
        return T::from_bits(static_cast<std::uint16_t>(bits));
    } else if constexpr (std::is_same_v<T, float>) {
        return std::bit_cast<float>(static_cast<std::uint32_t>(bits));
    } else if constexpr (std::is_same_v<T, double>) {
        return std::bit_cast<double>(bits);
    } else if constexpr (std::is_same_v<T, bool>) {
        return bits != 0;
    } else {
        return static_cast<T>(bits);  // two's complement, wrapping
    }
}

template <class T>
std::uint64_t bits_of(T v) {
    if constexpr (kSixteenBit<T>) {
        return v.bits;
    } else if constexpr (std::is_same_v<T, float>) {
        return std::bit_cast<std::uint32_t>(v);
    } else if constexpr (std::is_same_v<T, double>) {
        return std::bit_cast<std::uint64_t>(v);
    } else if constexpr (std::is_same_v<T, bool>) {
        return v ? 1 : 0;
    } else {
        return static_cast<std::make_unsigned_t<T>>(v);
    }
}

Tensor from_bits(xg::Dtype dtype, const std::vector<std::uint64_t>& bits, const xg::Shape& shape,
                 bool requires_grad = false) {
    return with_element_type(dtype, [&]<class T>(T) {
        auto a = xt::xarray<T>::from_shape(shape);
        REQUIRE(a.size() == bits.size());
        for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = from_bits<T>(bits[i]);
        return xg::tensor<T>(std::move(a), requires_grad);
    });
}

Tensor from_values(const ref::Values& v, xg::Dtype dtype, bool requires_grad = false) {
    return from_bits(dtype, v.bits, v.shape, requires_grad);
}

// Read straight from storage: no op, no conversion.
std::vector<std::uint64_t> bits_of(const Tensor& t) {
    return with_element_type(t.dtype(), [&]<class T>(T) {
        std::vector<std::uint64_t> out;
        for (T v : t.data<T>()) out.push_back(bits_of(v));
        return out;
    });
}

std::vector<double> values_of(const Tensor& t) {
    return with_element_type(t.dtype(), [&]<class T>(T) {
        std::vector<double> out;
        for (T v : t.data<T>()) {
            if constexpr (kSixteenBit<T>) {
                out.push_back(static_cast<float>(v));
            } else {
                out.push_back(static_cast<double>(v));
            }
        }
        return out;
    });
}

std::string hex(const std::vector<std::uint64_t>& bits) {
    std::ostringstream out;
    for (std::uint64_t b : bits) out << std::hex << std::uppercase << "0x" << b << " ";
    return out.str();
}

// How many 16-bit floats lie between a and b (both finite).
int ulps(std::uint64_t a, std::uint64_t b) {
    auto ordered = [](std::uint64_t x) {
        const int magnitude = static_cast<int>(x & 0x7FFF);
        return (x & 0x8000) ? -magnitude : magnitude;
    };
    return std::abs(ordered(a) - ordered(b));
}

int max_ulps(const std::vector<std::uint64_t>& a, const std::vector<std::uint64_t>& b) {
    REQUIRE(a.size() == b.size());
    int worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, ulps(a[i], b[i]));
    return worst;
}

std::string printed(const Tensor& t) {
    std::ostringstream out;
    out << t;
    return out.str();
}

// The runs of ref::conversions with one (from, to) pair, as [begin, end) indices.
std::vector<std::pair<std::size_t, std::size_t>> conversion_runs() {
    std::vector<std::pair<std::size_t, std::size_t>> runs;
    const std::size_t n = std::size(ref::conversions);
    for (std::size_t begin = 0, end = 0; begin < n; begin = end) {
        const ref::Conversion& first = ref::conversions[begin];
        while (end < n && std::string_view(ref::conversions[end].from) == first.from &&
               std::string_view(ref::conversions[end].to) == first.to)
            ++end;
        runs.emplace_back(begin, end);
    }
    return runs;
}

Tensor source_of_run(std::size_t begin, std::size_t end) {
    std::vector<std::uint64_t> bits;
    for (std::size_t i = begin; i < end; ++i) bits.push_back(ref::conversions[i].in);
    return from_bits(dtype_named(ref::conversions[begin].from), bits, {end - begin});
}

}  // namespace

TEST_CASE("dtype names, element sizes and floating-point flags are torch's") {
    for (std::size_t i = 0; i < std::size(kDtypes); ++i) {
        const xg::Dtype d = kDtypes[i];
        CAPTURE(ref::dtypes[i].name);
        CHECK(xg::dtype_name(d) == ref::dtypes[i].name);
        CHECK(xg::element_size(d) == ref::dtypes[i].element_size);
        CHECK(xg::is_floating_point(d) == ref::dtypes[i].is_floating_point);
        const bool storage = i >= 4;  // float16 onwards
        const xg::Dtype computes = !storage                   ? d
                                   : xg::is_floating_point(d) ? xg::kFloat32
                                                              : xg::kInt64;
        CHECK(xg::compute_dtype(d) == computes);
    }
    CHECK(xg::kHalf == xg::kFloat16);
}

TEST_CASE("Tensor::to converts every reference case bit for bit as PyTorch does") {
    for (const auto& run : conversion_runs()) {
        const std::size_t begin = run.first, end = run.second;
        const xg::Dtype to = dtype_named(ref::conversions[begin].to);
        const Tensor out = source_of_run(begin, end).to(to);
        REQUIRE(out.dtype() == to);
        REQUIRE(out.shape() == xg::Shape{end - begin});
        const std::vector<std::uint64_t> got = bits_of(out);
        for (std::size_t i = begin; i < end; ++i) {
            const ref::Conversion& c = ref::conversions[i];
            const std::uint64_t actual = got[i - begin];
            CHECK_MESSAGE(actual == c.out, c.from, " -> ", c.to, " of ", hex({c.in}), "(", c.what,
                          "): expected ", hex({c.out}), "got ", hex({actual}));
        }
    }
}

TEST_CASE("to round-trips every float16 and bfloat16 through float32 and float64") {
    std::vector<std::uint64_t> all(65536);
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    for (xg::Dtype d : {xg::kFloat16, xg::kBFloat16}) {
        const Tensor t = from_bits(d, all, {all.size()});
        const std::uint64_t exponent = d == xg::kFloat16 ? 0x7C00 : 0x7F80;
        for (xg::Dtype wide : {xg::kFloat32, xg::kFloat64}) {
            CAPTURE(xg::dtype_name(d));
            CAPTURE(xg::dtype_name(wide));
            const std::vector<std::uint64_t> back = bits_of(t.to(wide).to(d));
            std::size_t changed = 0, nan_lost = 0;
            for (std::uint64_t b : all) {
                const bool nan = (b & exponent) == exponent && (b & ~exponent & 0x7FFF) != 0;
                const bool still_nan =
                    (back[b] & exponent) == exponent && (back[b] & ~exponent & 0x7FFF);
                changed += !nan && back[b] != b;
                nan_lost += nan && !still_nan;
            }
            CHECK(changed == 0);
            CHECK(nan_lost == 0);
        }
    }
}

TEST_CASE("to round-trips the small integers through wider and 16-bit float dtypes") {
    std::vector<std::uint64_t> bytes(256);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = i;
    for (xg::Dtype d : {xg::kInt8, xg::kUInt8}) {
        const Tensor t = from_bits(d, bytes, {256});
        for (xg::Dtype via : {xg::kInt16, xg::kInt32, xg::kInt64, xg::kFloat16, xg::kBFloat16,
                              xg::kFloat32, xg::kFloat64}) {
            CAPTURE(xg::dtype_name(d));
            CAPTURE(xg::dtype_name(via));
            CHECK(bits_of(t.to(via).to(d)) == bytes);
        }
    }
    const std::vector<std::uint64_t> extremes = {0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0, 12345};
    const Tensor i32 = from_bits(xg::kInt32, extremes, {5});
    CHECK(bits_of(i32.to(xg::kInt64).to(xg::kInt32)) == extremes);
    CHECK(bits_of(i32.to(xg::kFloat64).to(xg::kInt32)) == extremes);
    // to its own dtype is the tensor itself, as in PyTorch.
    CHECK(i32.to(xg::kInt32).impl() == i32.impl());
}

TEST_CASE("clone keeps the dtype and every bit, NaN payloads included") {
    for (const auto& run : conversion_runs()) {
        const Tensor t = source_of_run(run.first, run.second);
        const Tensor copy = t.clone();
        CAPTURE(xg::dtype_name(t.dtype()));
        CHECK(copy.dtype() == t.dtype());
        CHECK(copy.impl() != t.impl());
        CHECK(bits_of(copy) == bits_of(t));
    }
}

TEST_CASE("promote_types and result_type are torch's for every pair of dtypes") {
    for (std::size_t i = 0; i < std::size(kDtypes); ++i) {
        for (std::size_t j = 0; j < std::size(kDtypes); ++j) {
            CAPTURE(ref::dtypes[i].name);
            CAPTURE(ref::dtypes[j].name);
            CHECK(xg::dtype_name(xg::promote_types(kDtypes[i], kDtypes[j])) ==
                  ref::promote_types[i][j]);
        }
    }
    for (const ref::ResultType& c : ref::result_types) {
        const Tensor a = xg::ones(c.a_zero_d ? xg::Shape{} : xg::Shape{2}, dtype_named(c.a));
        const Tensor b = xg::ones(c.b_zero_d ? xg::Shape{} : xg::Shape{2}, dtype_named(c.b));
        CAPTURE(c.a);
        CAPTURE(c.a_zero_d);
        CAPTURE(c.b);
        CAPTURE(c.b_zero_d);
        CHECK(xg::dtype_name(xg::result_type(a, b)) == c.result);
        if (!c.a_zero_d && !c.b_zero_d) {  // and add computes in it: 1 + 1
            const Tensor sum = a + b;
            CHECK(sum.dtype() == dtype_named(c.result));
            CHECK(values_of(sum) == std::vector<double>(2, sum.dtype() == xg::kBool ? 1.0 : 2.0));
        }
    }
}

TEST_CASE("zeros, ones, full and empty make every dtype") {
    // The bits of 1 in each dtype, in kDtypes order.
    const std::uint64_t one[] = {0x3F800000, 0x3FF0000000000000, 1, 1, 0x3C00, 0x3F80, 1, 1, 1, 1};
    for (std::size_t i = 0; i < std::size(kDtypes); ++i) {
        const xg::Dtype d = kDtypes[i];
        CAPTURE(xg::dtype_name(d));
        const Tensor z = xg::zeros({2, 3}, d), o = xg::ones({2, 3}, d), e = xg::empty({3, 1}, d);
        CHECK(z.dtype() == d);
        CHECK(o.dtype() == d);
        CHECK(e.dtype() == d);
        CHECK(z.shape() == xg::Shape{2, 3});
        CHECK(e.shape() == xg::Shape{3, 1});
        CHECK(bits_of(z) == std::vector<std::uint64_t>(6, 0));
        CHECK(bits_of(o) == std::vector<std::uint64_t>(6, one[i]));
        CHECK(xg::zeros_like(o).dtype() == d);
        CHECK(bits_of(xg::ones_like(z)) == bits_of(o));
    }
    // PyTorch refuses a value out of the dtype's range (c10::checked_convert);
    // the values it takes convert as Tensor::to does.
    for (const ref::FullCase& c : ref::full_cases) {
        if (c.refused) continue;
        CAPTURE(c.dtype);
        CAPTURE(c.value);
        const Tensor t = xg::full({2}, c.value, dtype_named(c.dtype));
        CHECK(t.dtype() == dtype_named(c.dtype));
        CHECK(bits_of(t) == std::vector<std::uint64_t>(2, c.bits));
    }
}

TEST_CASE("item and data read every dtype; data of another element type names both") {
    struct Scalar {
        std::uint64_t bits;
        double value;
    };
    // In kDtypes order.
    const Scalar scalars[] = {{0x40200000, 2.5},
                              {0xC004000000000000, -2.5},
                              {0x8000000000000000, -0x1p63},
                              {1, 1.0},
                              {0xC100, -2.5},
                              {0x3EAB, 0.333984375},
                              {0x7FFFFFFF, 2147483647.0},
                              {0x8000, -32768.0},
                              {0x80, -128.0},
                              {0xFF, 255.0}};
    for (std::size_t i = 0; i < std::size(kDtypes); ++i) {
        const double value = scalars[i].value;
        const Tensor t = from_bits(kDtypes[i], {scalars[i].bits}, {});
        CAPTURE(xg::dtype_name(kDtypes[i]));
        CHECK(t.dim() == 0);
        CHECK(t.item<double>() == value);
        CHECK(t.item<float>() == static_cast<float>(value));
        CHECK(t.item<bool>() == (value != 0.0));
        if (std::abs(value) < 1e18)
            CHECK(t.item<std::int64_t>() == static_cast<std::int64_t>(value));
        for (std::size_t j = 0; j < std::size(kDtypes); ++j) {
            with_element_type(kDtypes[j], [&]<class T>(T) {
                if (i == j) {
                    CHECK(t.data<T>().size() == 1);
                    CHECK(bits_of(t.data<T>().data()[0]) == scalars[i].bits);
                } else {
                    const std::string message = "data: expected dtype " +
                                                xg::dtype_name(kDtypes[j]) + " (got " +
                                                xg::dtype_name(kDtypes[i]) + ")";
                    CHECK_THROWS_WITH_AS(t.data<T>(), message.c_str(), xg::Error);
                }
            });
        }
    }
}

TEST_CASE("float16 and bfloat16 tensors may require grad; integer ones refuse") {
    for (xg::Dtype d : {xg::kFloat16, xg::kBFloat16}) {
        Tensor t = xg::zeros({2}, d);
        t.requires_grad_();
        CHECK(t.requires_grad());
        CHECK(from_bits(d, {0x3C00}, {1}, true).requires_grad());
    }
    for (xg::Dtype d : {xg::kInt32, xg::kInt16, xg::kInt8, xg::kUInt8}) {
        const std::string message =
            "requires_grad_: only floating-point tensors can require gradients (got " +
            xg::dtype_name(d) + ")";
        Tensor t = xg::zeros({2}, d);
        CHECK_THROWS_WITH_AS(t.requires_grad_(), message.c_str(), xg::Error);
    }
}

TEST_CASE("printing float16, bfloat16 and small-integer tensors matches torch's repr") {
    for (const ref::PrintCase& c : ref::print_cases) {
        const Tensor t = from_bits(dtype_named(c.dtype), c.bits, c.shape, c.requires_grad);
        CHECK(printed(t) == c.expected);
    }
}

namespace {

Tensor run_op(std::string_view op, const std::vector<Tensor>& in) {
    if (op == "add") return in[0] + in[1];
    if (op == "mul") return in[0] * in[1];
    if (op == "div") return in[0] / in[1];
    if (op == "relu") return xg::relu(in[0]);
    if (op == "exp") return xg::exp(in[0]);
    if (op == "tanh") return xg::tanh(in[0]);
    if (op == "sigmoid") return xg::sigmoid(in[0]);
    if (op == "gelu") return xg::gelu(in[0]);
    if (op == "gelu_tanh") return xg::gelu(in[0], "tanh");
    if (op == "matmul") return xg::matmul(in[0], in[1]);
    if (op == "linear") return xg::linear(in[0], in[1], in[2]);
    if (op == "sum") return xg::sum(in[0]);
    if (op == "sum_dim1") return xg::sum(in[0], {1});
    if (op == "mean") return xg::mean(in[0]);
    if (op == "mean_dim1") return xg::mean(in[0], {1});
    if (op == "softmax") return xg::softmax(in[0], -1);
    if (op == "log_softmax") return xg::log_softmax(in[0], -1);
    REQUIRE(op == "layer_norm");
    return xg::layer_norm(in[0], {4}, in[1], in[2]);
}

}  // namespace

TEST_CASE("ops on float16 and bfloat16 compute in float32 and round once, as PyTorch's") {
    for (const ref::OpCase& c : ref::op_cases) {
        CAPTURE(c.dtype);
        CAPTURE(c.op);
        const xg::Dtype d = dtype_named(c.dtype);
        std::vector<Tensor> inputs;
        for (const ref::Values& v : c.inputs) inputs.push_back(from_values(v, d));
        const Tensor out = run_op(c.op, inputs);
        REQUIRE(out.dtype() == d);
        REQUIRE(out.shape() == xg::Shape(c.output.shape));
        const std::vector<std::uint64_t> got = bits_of(out);
        INFO("expected ", hex(c.output.bits));
        INFO("got      ", hex(got));
        CHECK(max_ulps(got, c.output.bits) <= (c.exact ? 0 : 1));
    }
}

TEST_CASE("a bfloat16 MLP's loss and gradients are PyTorch's, to bfloat16 precision") {
    std::vector<Tensor> p;  // x, w1, b1, w2, b2
    for (const ref::Values& v : ref::mlp_inputs) p.push_back(from_values(v, xg::kBFloat16, true));
    const Tensor out = xg::linear(xg::tanh(xg::linear(p[0], p[1], p[2])), p[3], p[4]);
    const Tensor loss = xg::mean(out * out);
    REQUIRE(loss.dtype() == xg::kBFloat16);
    CHECK(max_ulps(bits_of(loss), ref::mlp_loss.bits) <= 1);
    loss.backward();
    for (std::size_t k = 0; k < p.size(); ++k) {
        CAPTURE(k);
        const Tensor g = p[k].grad();
        REQUIRE(g.defined());
        CHECK(g.dtype() == xg::kBFloat16);
        REQUIRE(g.shape() == xg::Shape(ref::mlp_grads[k].shape));
        // PyTorch rounds each backward op's result to bfloat16, xgrad each op's
        // float32 backward once: they differ by a few ulps of the largest value.
        const std::vector<double> got = values_of(g), want = ref::mlp_grads[k].values;
        double scale = 0.0, error = 0.0;
        for (std::size_t i = 0; i < want.size(); ++i) {
            scale = std::max(scale, std::abs(want[i]));
            error = std::max(error, std::abs(got[i] - want[i]));
        }
        CHECK(error <= 0x1p-5 * scale);
    }
}

TEST_CASE("gradients through to(float16) and to(bfloat16) come back rounded, as PyTorch's") {
    for (const ref::ToGradCase& c : ref::to_grad_cases) {
        CAPTURE(c.through);
        const xg::Dtype through = dtype_named(c.through);
        const Tensor x = from_values(c.x, xg::kFloat32, true);
        const Tensor narrow = x.to(through);
        CHECK(narrow.requires_grad());
        CHECK(narrow.grad_fn_name() == "ToCopyBackward");
        xg::sum(narrow.to(xg::kFloat32) * from_values(c.c, xg::kFloat32)).backward();
        REQUIRE(x.grad().defined());
        CHECK(x.grad().dtype() == xg::kFloat32);
        CHECK(bits_of(x.grad()) == c.grad.bits);
    }
    // A float16 leaf gets its gradient in float16: 1/3 rounded.
    const Tensor h = from_bits(xg::kFloat16, {0x3C00, 0x4000}, {2}, true);
    xg::sum(h.to(xg::kFloat32) * (1.0 / 3.0)).backward();
    CHECK(h.grad().dtype() == xg::kFloat16);
    CHECK(bits_of(h.grad()) == std::vector<std::uint64_t>{0x3555, 0x3555});
}

TEST_CASE("to(float32)'s backward converts the gradient back: gradcheck in float64") {
    // Multiples of 1/8 and a step of 2^-10 keep x, 3x + 1 and the differences
    // exact in float32, so the finite differences are exact too.
    const Tensor x = xg::tensor<double>(xt::xarray<double>{0.5, -1.25, 2.0, 0.125});
    CHECK(xg::autograd::gradcheck(
        [](const std::vector<Tensor>& v) {
            return (v[0].to(xg::kFloat32) * 3.0 + 1.0).to(xg::kFloat64);
        },
        {x}, 0x1p-10, 1e-12, 0.0));
    const Tensor leaf = xg::tensor<double>(xt::xarray<double>{0.1, 2.0}, true);
    leaf.to(xg::kFloat32).backward(xg::tensor<float>(xt::xarray<float>{0.25f, 0.1f}));
    CHECK(leaf.grad().dtype() == xg::kFloat64);
    CHECK(values_of(leaf.grad()) == std::vector<double>{0.25, static_cast<double>(0.1f)});
}

}  // namespace core_test_dtypes
