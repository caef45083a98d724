// Property: every elementwise op, on random shapes and broadcasts in float32 and
// float64, agrees with a naive float64 loop over the broadcast output.
#include <cmath>
#include <functional>
#include <numbers>
#include <string>

#include <doctest/doctest.h>

#include "property/property.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace property_test_elementwise_property {

namespace {

using property::Rng;

constexpr int kCases = 300;

struct Binary {
    const char* name;
    std::function<xg::Tensor(const xg::Tensor&, const xg::Tensor&)> op;
    std::function<double(double, double)> reference;
};

struct Unary {
    const char* name;
    std::function<xg::Tensor(const xg::Tensor&)> op;
    std::function<double(double)> reference;
    double lo = -3.0, hi = 3.0;  // input range (positive where the op needs it)
};

const double kSqrt2OverPi = std::sqrt(2.0 / std::numbers::pi);

const std::vector<Binary>& binaries() {
    static const std::vector<Binary> ops = {
        {"add", [](auto& a, auto& b) { return xg::add(a, b); },
         [](double a, double b) { return a + b; }},
        {"sub", [](auto& a, auto& b) { return xg::sub(a, b); },
         [](double a, double b) { return a - b; }},
        {"mul", [](auto& a, auto& b) { return xg::mul(a, b); },
         [](double a, double b) { return a * b; }},
        {"div", [](auto& a, auto& b) { return xg::div(a, b); },
         [](double a, double b) { return a / b; }},
    };
    return ops;
}

const std::vector<Unary>& unaries() {
    static const double s = 0.75;  // the scalar of the scalar ops
    static const std::vector<Unary> ops = {
        {"neg", [](auto& x) { return xg::neg(x); }, [](double x) { return -x; }},
        {"relu", [](auto& x) { return xg::relu(x); }, [](double x) { return x > 0 ? x : 0.0; }},
        {"gelu", [](auto& x) { return xg::gelu(x); },
         [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
        {"gelu_tanh", [](auto& x) { return xg::gelu(x, "tanh"); },
         [](double x) {
             return 0.5 * x * (1 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
         }},
        {"sigmoid", [](auto& x) { return xg::sigmoid(x); },
         [](double x) { return 1 / (1 + std::exp(-x)); }},
        {"silu", [](auto& x) { return xg::silu(x); },
         [](double x) { return x / (1 + std::exp(-x)); }},
        {"tanh", [](auto& x) { return xg::tanh(x); }, [](double x) { return std::tanh(x); }},
        {"exp", [](auto& x) { return xg::exp(x); }, [](double x) { return std::exp(x); }},
        {"log", [](auto& x) { return xg::log(x); }, [](double x) { return std::log(x); }, 0.05,
         5.0},
        {"sqrt", [](auto& x) { return xg::sqrt(x); }, [](double x) { return std::sqrt(x); }, 0.0,
         5.0},
        {"pow", [](auto& x) { return xg::pow(x, 2.5); }, [](double x) { return std::pow(x, 2.5); },
         0.1, 3.0},
        {"pow_int", [](auto& x) { return xg::pow(x, 3.0); }, [](double x) { return x * x * x; }},
        {"abs", [](auto& x) { return xg::abs(x); }, [](double x) { return std::abs(x); }},
        {"add_scalar", [](auto& x) { return xg::add(x, s); }, [](double x) { return x + s; }},
        {"sub_scalar", [](auto& x) { return xg::sub(x, s); }, [](double x) { return x - s; }},
        {"rsub_scalar", [](auto& x) { return xg::rsub(s, x); }, [](double x) { return s - x; }},
        {"mul_scalar", [](auto& x) { return xg::mul(x, s); }, [](double x) { return x * s; }},
        {"div_scalar", [](auto& x) { return xg::div(x, s); }, [](double x) { return x / s; }},
        {"rdiv_scalar", [](auto& x) { return xg::rdiv(s, x); }, [](double x) { return s / x; }, 0.1,
         3.0},
        {"dropout_eval", [](auto& x) { return xg::dropout(x, 0.3, false); },
         [](double x) { return x; }},
    };
    return ops;
}

xg::Dtype pick_dtype(Rng& rng) { return rng.coin() ? xg::kFloat32 : xg::kFloat64; }

}  // namespace

TEST_CASE("property: binary ops broadcast like a naive float64 loop") {
    Rng rng(20240901);
    for (int c = 0; c < kCases; ++c) {
        const Binary& op = binaries()[static_cast<std::size_t>(c) % binaries().size()];
        xg::Shape sa = rng.shape(), sb = rng.broadcastable(sa);
        if (rng.coin()) std::swap(sa, sb);
        xg::Dtype dtype = pick_dtype(rng);
        auto a =
            test::values(property::make(rng.values(sa), dtype));  // rounded like the op's input
        auto b = test::values(property::make(rng.values(sb), dtype));
        CAPTURE(c);
        CAPTURE(op.name);
        CAPTURE(xg::shape_str(sa));
        CAPTURE(xg::shape_str(sb));
        xg::Tensor out = op.op(property::make(a, dtype), property::make(b, dtype));
        xg::Shape so = property::broadcast(sa, sb);
        REQUIRE(out.shape() == so);
        REQUIRE(out.dtype() == dtype);
        auto got = test::values(out);
        for (std::size_t k = 0; k < property::numel(so); ++k) {
            auto index = property::unravel(k, so);
            double want = op.reference(a.data()[property::broadcast_flat(index, sa)],
                                       b.data()[property::broadcast_flat(index, sb)]);
            if (!property::near(got.data()[k], want, dtype)) {
                FAIL_CHECK("element " << k << ": got " << got.data()[k] << ", want " << want);
                break;
            }
        }
    }
}

TEST_CASE("property: unary and scalar ops match a naive float64 loop") {
    Rng rng(20240902);
    for (int c = 0; c < kCases; ++c) {
        const Unary& op = unaries()[static_cast<std::size_t>(c) % unaries().size()];
        xg::Shape shape = rng.shape();
        xg::Dtype dtype = pick_dtype(rng);
        auto x = test::values(property::make(rng.values(shape, op.lo, op.hi), dtype));
        CAPTURE(c);
        CAPTURE(op.name);
        CAPTURE(xg::shape_str(shape));
        xg::Tensor out = op.op(property::make(x, dtype));
        REQUIRE(out.shape() == shape);
        REQUIRE(out.dtype() == dtype);
        auto got = test::values(out);
        for (std::size_t k = 0; k < x.size(); ++k) {
            double want = op.reference(x.data()[k]);
            if (!property::near(got.data()[k], want, dtype)) {
                FAIL_CHECK("element " << k << " (x = " << x.data()[k] << "): got " << got.data()[k]
                                      << ", want " << want);
                break;
            }
        }
    }
}

}  // namespace property_test_elementwise_property
