// Tests for the raw-memory kernels (core/ops/elementwise.cpp, loss.cpp) and the
// buffer reuse behind them (core/src/buffer_cache.cpp): every kernel against the
// unfused xtensor expression it replaced, in float32 and float64, on arrays large
// enough to go through the buffer cache; gradients written over grad_output only
// when nobody else can see it; a FeedForward step against a hand-written one;
// and the fused feed-forward op (core/ops/fused.cpp) against the separate ops.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "buffer_cache.hpp"
#include "helpers.hpp"

using xg::Tensor;

namespace {

// Largest |a - e| / max(|e|, 1) over every element (relative for large values,
// absolute near 0, where float32 rounding of cancelling terms dominates).
double rel_error(const xt::xarray<double>& a, const xt::xarray<double>& e) {
    REQUIRE(test::shape_of(a) == test::shape_of(e));
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        double d = std::abs(a.data()[i] - e.data()[i]) / std::max(std::abs(e.data()[i]), 1.0);
        if (std::isnan(a.data()[i]) != std::isnan(e.data()[i])) d = INFINITY;
        if (!std::isnan(d)) worst = std::max(worst, d);
    }
    return worst;
}

// 300 x 257 values in [-3, 3) with exact zeros sprinkled in (the kinks), > 64 KiB.
template <class T>
xt::xarray<T> inputs(std::uint64_t seed, T lo = T(-3), T width = T(6)) {
    xg::manual_seed(seed);
    xt::xarray<T> v = xg::rand({300, 257}, xg::kFloat64).data<double>() * double(width) + lo;
    for (std::size_t i = 0; i < v.size(); i += 97) v.data()[i] = T(0);
    return v;
}

struct Unary {
    std::string name;
    std::function<Tensor(const Tensor&)> op;
    // The xtensor expressions the kernels replaced: forward, and dx for (x, g).
    std::function<xt::xarray<double>(const xt::xarray<double>&)> forward;
    std::function<xt::xarray<double>(const xt::xarray<double>&, const xt::xarray<double>&)> grad;
    bool positive = false;
};

std::vector<Unary> unary_ops() {
    using A = xt::xarray<double>;
    const double k = std::numbers::sqrt2 * std::numbers::inv_sqrtpi, c = 0.044715;
    const double r2 = std::numbers::sqrt2 / 2,
                 isq = 0.5 * std::numbers::inv_sqrtpi * std::numbers::sqrt2;
    auto sig = [](const A& a) { return A(1.0 / (1.0 + xt::exp(-a))); };
    return {
        {"relu", [](const Tensor& t) { return xg::relu(t); },
         [](const A& a) { return A(xt::maximum(a, 0.0)); },
         [](const A& a, const A& g) { return A(xt::where(a > 0.0, g, 0.0)); }},
        {"gelu", [](const Tensor& t) { return xg::gelu(t, "none"); },
         [=](const A& a) { return A(0.5 * a * (1.0 + xt::erf(a * r2))); },
         [=](const A& a, const A& g) {
             return A(g * (0.5 * (1.0 + xt::erf(a * r2)) + a * isq * xt::exp(-0.5 * a * a)));
         }},
        {"gelu tanh", [](const Tensor& t) { return xg::gelu(t, "tanh"); },
         [=](const A& a) { return A(0.5 * a * (1.0 + xt::tanh(k * (a + c * a * a * a)))); },
         [=](const A& a, const A& g) {
             A t = xt::tanh(k * (a + c * a * a * a));
             return A(g *
                      (0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * k * (1.0 + 3.0 * c * a * a)));
         }},
        {"sigmoid", [](const Tensor& t) { return xg::sigmoid(t); }, sig,
         [=](const A& a, const A& g) {
             A y = sig(a);
             return A(g * y * (1.0 - y));
         }},
        {"silu", [](const Tensor& t) { return xg::silu(t); },
         [=](const A& a) { return A(a * sig(a)); },
         [=](const A& a, const A& g) {
             A s = sig(a);
             return A(g * s * (1.0 + a * (1.0 - s)));
         }},
        {"tanh", [](const Tensor& t) { return xg::tanh(t); },
         [](const A& a) { return A(xt::tanh(a)); },
         [](const A& a, const A& g) {
             A y = xt::tanh(a);
             return A(g * (1.0 - y * y));
         }},
        {"exp", [](const Tensor& t) { return xg::exp(t); },
         [](const A& a) { return A(xt::exp(a)); },
         [](const A& a, const A& g) { return A(g * xt::exp(a)); }},
        {"abs", [](const Tensor& t) { return xg::abs(t); },
         [](const A& a) { return A(xt::abs(a)); },
         [](const A& a, const A& g) { return A(g * xt::sign(a)); }},
        {"pow 3", [](const Tensor& t) { return xg::pow(t, 3.0); },
         [](const A& a) { return A(a * a * a); },
         [](const A& a, const A& g) { return A(g * 3.0 * a * a); }},
        {"log", [](const Tensor& t) { return xg::log(t); },
         [](const A& a) { return A(xt::log(a)); }, [](const A& a, const A& g) { return A(g / a); },
         true},
        {"sqrt", [](const Tensor& t) { return xg::sqrt(t); },
         [](const A& a) { return A(xt::sqrt(a)); },
         [](const A& a, const A& g) { return A(g / (2.0 * xt::sqrt(a))); }, true},
    };
}

// Forward and backward of op against the float64 reference, in dtype T.
template <class T>
void check_unary(const Unary& u, double tol) {
    INFO(u.name, " in ", sizeof(T) == 4 ? "float32" : "float64");
    xt::xarray<T> xv = u.positive ? inputs<T>(1, T(0.25), T(3)) : inputs<T>(1);
    xt::xarray<T> wv = inputs<T>(2);
    Tensor x = xg::tensor<T>(xv, true);
    Tensor y = u.op(x);
    xg::sum(y * xg::tensor<T>(wv)).backward();  // grad_output = w
    xt::xarray<double> xd = xt::cast<double>(xv), wd = xt::cast<double>(wv);
    CHECK(rel_error(test::values(y), u.forward(xd)) <= tol);
    CHECK(rel_error(test::values(x.grad()), u.grad(xd, wd)) <= tol);
}

}  // namespace

TEST_CASE("unary kernels match the xtensor expressions they replaced") {
    for (const Unary& u : unary_ops()) {
        check_unary<float>(u, 1e-5);
        check_unary<double>(u, 1e-12);
    }
}

TEST_CASE("pow with exponent 0 has gradient 0") {
    Tensor x = xg::tensor<float>(inputs<float>(3), true);
    xg::sum(xg::pow(x, 0.0)).backward();
    CHECK(xt::all(xt::equal(x.grad().data<float>(), 0.0f)));
}

TEST_CASE("dropout keeps the documented counter-based mask and reuses it in backward") {
    for (double p : {0.1, 0.5}) {
        xt::xarray<float> xv = inputs<float>(4);
        xg::manual_seed(11);
        std::uint64_t key = xg::next_random_key();
        xg::manual_seed(11);
        Tensor x = xg::tensor<float>(xv, true);
        Tensor y = xg::dropout(x, p, true);
        xg::sum(y).backward();
        // mask[i] = splitmix64(key + i * golden) >> 11 >= p * 2^53, as before the rewrite.
        const float scale = float(1.0 / (1.0 - p));
        const auto threshold = static_cast<std::uint64_t>(p * 9007199254740992.0);
        bool forward_ok = true, backward_ok = true;
        for (std::size_t i = 0; i < xv.size(); ++i) {
            std::uint64_t z = key + i * 0x9e3779b97f4a7c15ULL;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            z ^= z >> 31;
            float m = (z >> 11) >= threshold ? scale : 0.0f;
            forward_ok = forward_ok && y.data<float>().data()[i] == xv.data()[i] * m;
            backward_ok = backward_ok && x.grad().data<float>().data()[i] == m;
        }
        CHECK(forward_ok);
        CHECK(backward_ok);
    }
}

TEST_CASE("mul of equal shapes matches the broadcasting rule, for either input alone") {
    xt::xarray<double> av = inputs<double>(5), bv = inputs<double>(6), wv = inputs<double>(7);
    for (int needs = 1; needs <= 3; ++needs) {
        Tensor a = xg::tensor<double>(av, (needs & 1) != 0);
        Tensor b = xg::tensor<double>(bv, (needs & 2) != 0);
        Tensor y = a * b;
        CHECK(rel_error(test::values(y), av * bv) == 0.0);
        xg::sum(y * xg::tensor<double>(wv)).backward();
        if (needs & 1) CHECK(rel_error(test::values(a.grad()), wv * bv) == 0.0);
        if (needs & 2) CHECK(rel_error(test::values(b.grad()), wv * av) == 0.0);
    }
}

TEST_CASE("add and sub pass the gradient on without sharing one buffer between inputs") {
    xt::xarray<float> av = inputs<float>(8), wv = inputs<float>(9);
    Tensor a = xg::tensor<float>(av, true), b = xg::tensor<float>(av, true);
    Tensor w = xg::tensor<float>(wv);
    xg::sum((a + b) * w).backward();
    CHECK(rel_error(test::values(a.grad()), xt::cast<double>(wv)) == 0.0);
    CHECK(rel_error(test::values(b.grad()), xt::cast<double>(wv)) == 0.0);
    CHECK(a.grad().impl()->storage != b.grad().impl()->storage);

    Tensor c = xg::tensor<float>(av, true);
    xg::sum((c + c) * w).backward();  // both edges into one leaf accumulate
    CHECK(rel_error(test::values(c.grad()), 2.0 * xt::cast<double>(wv)) == 0.0);

    Tensor d = xg::tensor<float>(av, true), e = xg::tensor<float>(av, true);
    xg::sum((xg::tensor<float>(av) - e) * w).backward();
    xg::sum((d - xg::tensor<float>(av)) * w).backward();
    CHECK(rel_error(test::values(e.grad()), -xt::cast<double>(wv)) == 0.0);
    CHECK(rel_error(test::values(d.grad()), xt::cast<double>(wv)) == 0.0);
}

TEST_CASE("a gradient someone else holds is never overwritten") {
    xt::xarray<float> xv = inputs<float>(10), wv = inputs<float>(11);
    for (const Unary& u : unary_ops()) {
        if (u.positive) continue;
        INFO(u.name);
        Tensor x = xg::tensor<float>(xv, true);
        Tensor y = u.op(x);
        Tensor seen;
        auto handle = y.register_hook([&](const Tensor& g) { seen = g; });  // keeps grad_output
        y.retain_grad();
        xg::sum(y * xg::tensor<float>(wv)).backward();
        CHECK(rel_error(test::values(seen), xt::cast<double>(wv)) == 0.0);
        CHECK(rel_error(test::values(y.grad()), xt::cast<double>(wv)) == 0.0);
        handle.remove();
    }
    // Through dropout and mul as well, with retain_graph and a second backward.
    Tensor x = xg::tensor<float>(xv, true);
    Tensor y = xg::dropout(x * xg::tensor<float>(wv), 0.5, true);
    Tensor loss = xg::sum(y);
    loss.backward(Tensor(), true);
    xt::xarray<float> first = x.grad().data<float>();
    x.mutable_grad() = Tensor();
    loss.backward();
    CHECK(xt::all(xt::equal(x.grad().data<float>(), first)));
}

TEST_CASE("mse_loss kernels match the expressions they replaced") {
    xt::xarray<double> xv = inputs<double>(12), tv = inputs<double>(13);
    for (std::string reduction : {"mean", "sum", "none"}) {
        INFO(reduction);
        Tensor x = xg::tensor<double>(xv, true), t = xg::tensor<double>(tv, true);
        Tensor loss = xg::mse_loss(x, t, reduction);
        xt::xarray<double> d = xv - tv;
        double n = reduction == "mean" ? double(d.size()) : 1.0;
        if (reduction == "none") {
            CHECK(rel_error(test::values(loss), d * d) == 0.0);
            xg::sum(loss).backward();
        } else {
            CHECK(loss.item<double>() == doctest::Approx(xt::sum(d * d)() / n).epsilon(1e-12));
            loss.backward();
        }
        CHECK(rel_error(test::values(x.grad()), 2.0 * d / n) <= 1e-15);
        CHECK(rel_error(test::values(t.grad()), -2.0 * d / n) <= 1e-15);
    }
}

TEST_CASE("the buffer cache hands back recycled buffers and stays bounded") {
    xg::detail::clear_buffer_cache();
    const xg::Shape shape{512, 256};  // 512 KiB of float32
    const float* first = nullptr;
    {
        Tensor a = xg::zeros(shape);
        first = a.data<float>().data();
        Tensor r = xg::relu(a);  // its output is a fresh buffer
    }
    CHECK(xg::detail::buffer_cache_bytes() >= 2 * 512 * 256 * sizeof(float));
    Tensor b = xg::relu(xg::full(shape, -1.0));  // reuses a freed buffer, rewrites every value
    CHECK(xt::all(xt::equal(b.data<float>(), 0.0f)));
    Tensor c = b.clone();
    CHECK(c.data<float>().data() != b.data<float>().data());
    CHECK(xt::all(xt::equal(c.data<float>(), 0.0f)));
    (void)first;
    // Many fresh buffers of one size: the cache keeps only a few of them.
    for (int i = 0; i < 40; ++i) Tensor fresh = xg::ones(shape);
    CHECK(xg::detail::buffer_cache_bytes() <= 16 * 512 * 256 * sizeof(float));
    xg::detail::clear_buffer_cache();
    CHECK(xg::detail::buffer_cache_bytes() == 0);
}

TEST_CASE("small arrays come back from this thread's small-array cache") {
    const float *freed_x = nullptr, *freed_a = nullptr;
    {
        Tensor x = xg::ones({3, 5});  // 60 bytes, far below the large cache's minimum
        Tensor a = xg::relu(x);
        freed_x = x.data<float>().data();
        freed_a = a.data<float>().data();
    }
    // The next arrays of that size and dtype take the freed buffers, reshaped.
    Tensor b = xg::relu(xg::full({5, 3}, -2.0));
    const float* got = b.data<float>().data();
    CHECK((got == freed_x || got == freed_a));
    CHECK(b.shape() == xg::Shape{5, 3});
    CHECK(xt::all(xt::equal(b.data<float>(), 0.0f)));
    // Another dtype or size never does, and the cache stays bounded: ~100 KiB of
    // distinct small sizes leave at most its 1 MiB and 64 entries behind.
    Tensor d = xg::relu(xg::ones({3, 5}, xg::kFloat64));
    CHECK(static_cast<const void*>(d.data<double>().data()) != static_cast<const void*>(freed_x));
    CHECK(static_cast<const void*>(d.data<double>().data()) != static_cast<const void*>(freed_a));
    for (std::size_t n = 1; n <= 200; ++n) Tensor t = xg::relu(xg::ones({n}));
    CHECK(xt::all(xt::equal(xg::relu(xg::ones({7, 7})).data<float>(), 1.0f)));
}

namespace {

// A FeedForward step written out in float64 xtensor (no dropout): the loss and
// the gradient of every parameter, to compare with xgrad's float32 path.
struct Reference {
    double loss;
    std::vector<xt::xarray<double>> grads;  // in named_parameters order
};

xt::xarray<double> mm(const xt::xarray<double>& a, const xt::xarray<double>& b) {  // a b^T
    xt::xarray<double> out = xt::zeros<double>({a.shape()[0], b.shape()[0]});
    for (std::size_t i = 0; i < a.shape()[0]; ++i)
        for (std::size_t j = 0; j < b.shape()[0]; ++j)
            for (std::size_t k = 0; k < a.shape()[1]; ++k) out(i, j) += a(i, k) * b(j, k);
    return out;
}
xt::xarray<double> tr(const xt::xarray<double>& a) { return xt::transpose(a); }

}  // namespace

TEST_CASE("a float32 FeedForward step matches a float64 step written out by hand") {
    for (bool gated : {false, true}) {
        INFO(std::string(gated ? "swiglu" : "relu"));
        xg::manual_seed(3);
        auto ffn = gated ? xg::nn::FeedForward::swiglu(24, 96, 0.0)
                         : std::make_shared<xg::nn::FeedForward>(24, 96, 0.0);
        Tensor x = xg::randn({40, 24}), target = xg::randn({40, 24});
        Tensor loss = xg::mse_loss((*ffn)(x), target);
        loss.backward();

        auto p = [&](const std::string& name) {
            return xt::xarray<double>(xt::cast<double>(ffn->get_parameter(name).data<float>()));
        };
        xt::xarray<double> xd = xt::cast<double>(x.data<float>());
        xt::xarray<double> td = xt::cast<double>(target.data<float>());
        xt::xarray<double> w1 = p("layer1.weight"), w2 = p("layer2.weight");
        xt::xarray<double> a = mm(xd, w1), h, v, act;
        if (!gated) a += p("layer1.bias");
        if (gated) {
            v = mm(xd, p("linear_v.weight"));
            act = a / (1.0 + xt::exp(-a));
            h = act * v;
        } else {
            h = xt::maximum(a, 0.0);
        }
        xt::xarray<double> y = mm(h, w2);
        if (!gated) y += p("layer2.bias");
        xt::xarray<double> d = y - td;
        const double n = double(d.size());
        CHECK(loss.item<double>() == doctest::Approx(xt::sum(d * d)() / n).epsilon(1e-5));
        xt::xarray<double> gy = 2.0 * d / n;
        xt::xarray<double> gw2 = mm(tr(gy), tr(h)), gh = mm(gy, tr(w2));
        xt::xarray<double> ga;
        std::vector<std::pair<std::string, xt::xarray<double>>> expected;
        if (gated) {
            xt::xarray<double> s = 1.0 / (1.0 + xt::exp(-a));
            ga = gh * v * s * (1.0 + a * (1.0 - s));
            expected = {{"layer1.weight", mm(tr(ga), tr(xd))},
                        {"layer2.weight", gw2},
                        {"linear_v.weight", mm(tr(xt::xarray<double>(gh * act)), tr(xd))}};
        } else {
            ga = xt::where(a > 0.0, gh, 0.0);
            expected = {{"layer1.weight", mm(tr(ga), tr(xd))},
                        {"layer1.bias", xt::sum(ga, {0})},
                        {"layer2.weight", gw2},
                        {"layer2.bias", xt::sum(gy, {0})}};
        }
        for (const auto& entry : expected) {
            const auto& [name, grad] = entry;
            INFO(entry.first);  // INFO's lambda cannot capture a structured binding in clang 14
            xt::xarray<double> got = test::values(ffn->get_parameter(name).grad());
            double scale = std::max(xt::amax(xt::abs(grad))(), 1e-12);
            CHECK(xt::amax(xt::abs(got - grad))() / scale <= 1e-5);
        }
    }
}

// ---- activation_dropout (core/ops/fused.cpp) ----

namespace {

struct Activation {
    const char* name;
    xg::FusedActivation kind;
    std::function<Tensor(const Tensor&)> separate;  // the op FeedForward would call
};

std::vector<Activation> activations() {
    return {
        {"identity", xg::FusedActivation::Identity, [](const Tensor& t) { return t; }},
        {"relu", xg::FusedActivation::ReLU, [](const Tensor& t) { return xg::relu(t); }},
        {"gelu", xg::FusedActivation::GELU, [](const Tensor& t) { return xg::gelu(t); }},
        {"gelu tanh", xg::FusedActivation::GELUTanh,
         [](const Tensor& t) { return xg::gelu(t, "tanh"); }},
        {"sigmoid", xg::FusedActivation::Sigmoid, [](const Tensor& t) { return xg::sigmoid(t); }},
        {"silu", xg::FusedActivation::SiLU, [](const Tensor& t) { return xg::silu(t); }},
        {"tanh", xg::FusedActivation::Tanh, [](const Tensor& t) { return xg::tanh(t); }}};
}

// v with NaN, inf, -inf and -0.0 in turn at every 89th element from `first`.
template <class T>
xt::xarray<T> with_specials(xt::xarray<T> v, std::size_t first) {
    const T specials[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                          -std::numeric_limits<T>::infinity(), T(-0.0)};
    for (std::size_t i = first, k = 0; i < v.size(); i += 89, ++k) v.data()[i] = specials[k % 4];
    return v;
}

// Values and gradients of h (and v) through `f`, with grad_output w; with
// `specials`, NaN, +-inf and -0.0 in all three.
template <class T>
std::vector<xt::xarray<T>> run(const std::function<Tensor(const Tensor&, const Tensor&)>& f,
                               bool gated, bool need_h, bool need_v, bool specials) {
    // 300 x 257 elements: more than one 4096-element mask slice, and not a multiple of it.
    auto values = [&](std::uint64_t seed, std::size_t first) {
        return specials ? with_specials(inputs<T>(seed), first) : inputs<T>(seed);
    };
    Tensor h = xg::tensor<T>(values(1, 0), need_h);
    Tensor v = gated ? xg::tensor<T>(values(2, 30), need_v) : Tensor();
    Tensor w = xg::tensor<T>(values(3, 60));
    xg::manual_seed(7);
    Tensor y = f(h, v);
    std::vector<xt::xarray<T>> out{y.data<T>()};
    if (xg::GradMode::is_enabled()) {
        xg::sum(y * w).backward();
        if (need_h) out.push_back(h.grad().data<T>());
        if (gated && need_v) out.push_back(v.grad().data<T>());
    }
    return out;
}

// Equal to the last bit, the sign of zero included; any NaN equals any NaN.
template <class T>
bool same_bits(const xt::xarray<T>& a, const xt::xarray<T>& b) {
    if (a.shape() != b.shape()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const T x = a.data()[i], y = b.data()[i];
        if (!(std::isnan(x) && std::isnan(y)) && std::memcmp(&x, &y, sizeof(T)) != 0) return false;
    }
    return true;
}

template <class T>
void check_fused_equals_separate(const Activation& a, bool gated, double p, bool training,
                                 bool need_h, bool need_v, bool grad_mode, bool specials) {
    INFO(std::string(a.name), std::string(gated ? " gated" : ""), " p=", p,
         std::string(training ? " training" : " eval"),
         std::string(sizeof(T) == 4 ? " float32" : " float64"), " need_h=", need_h,
         " need_v=", need_v, " grad_mode=", grad_mode, " NaN and inf=", specials);
    std::optional<xg::NoGradGuard> no_grad;
    if (!grad_mode) no_grad.emplace();
    auto fused =
        run<T>([&](const Tensor& h,
                   const Tensor& v) { return xg::activation_dropout(h, v, a.kind, p, training); },
               gated, need_h, need_v, specials);
    auto separate = run<T>(
        [&](const Tensor& h, const Tensor& v) {
            Tensor t = a.separate(h);
            if (gated) t = t * v;
            return xg::dropout(t, p, training);
        },
        gated, need_h, need_v, specials);
    REQUIRE(fused.size() == separate.size());
    for (std::size_t i = 0; i < fused.size(); ++i) {
        INFO(std::string(i == 0 ? "output" : "gradient "), i);
        // Same operations in the same order: equal to the last bit.
        CHECK(same_bits(fused[i], separate[i]));
    }
}

}  // namespace

TEST_CASE("activation_dropout equals activation, gate and dropout run separately, bit for bit") {
    for (bool specials : {false, true}) {
        for (const Activation& a : activations()) {
            for (bool gated : {false, true}) {
                for (auto [p, training] : {std::pair{0.3, true}, {0.3, false}, {0.0, true}}) {
                    check_fused_equals_separate<float>(a, gated, p, training, true, true, true,
                                                       specials);
                    check_fused_equals_separate<double>(a, gated, p, training, true, true, true,
                                                        specials);
                    check_fused_equals_separate<float>(a, gated, p, training, true, true, false,
                                                       specials);
                }
                if (gated) {  // one input needing no gradient
                    check_fused_equals_separate<float>(a, gated, 0.3, true, true, false, true,
                                                       specials);
                    check_fused_equals_separate<float>(a, gated, 0.3, true, false, true, true,
                                                       specials);
                }
            }
        }
    }
}

TEST_CASE("activation_dropout gradchecks in float64 for every activation, gated or not") {
    for (const Activation& a : activations()) {
        for (bool gated : {false, true}) {
            CAPTURE(a.name);
            CAPTURE(gated);
            std::vector<Tensor> in{test::randn64({3, 5}, 11)};
            if (gated) in.push_back(test::randn64({3, 5}, 12));
            CHECK(test::gradcheck(
                [&](const std::vector<Tensor>& x) {
                    xg::manual_seed(3);  // the same mask for every evaluation
                    return xg::activation_dropout(x[0], gated ? x[1] : Tensor(), a.kind, 0.4, true);
                },
                in));
        }
    }
}

TEST_CASE("activation_dropout with p = 1 zeroes everything, gradients included") {
    Tensor h = xg::tensor<float>(inputs<float>(1), true);
    Tensor y = xg::activation_dropout(h, Tensor(), xg::FusedActivation::ReLU, 1.0, true);
    CHECK(xt::all(xt::equal(y.data<float>(), 0.0f)));
    xg::sum(y).backward();
    CHECK(xt::all(xt::equal(h.grad().data<float>(), 0.0f)));
}

TEST_CASE("ungated ReLU activation_dropout without dropout keeps only its output for backward") {
    auto saved_input = [](xg::FusedActivation kind, double p, bool training) {
        Tensor leaf = xg::tensor<float>(inputs<float>(1), true);
        Tensor h = leaf * 2.0;  // an intermediate, like Linear's output
        std::weak_ptr<xg::Storage> storage = h.impl()->storage;
        Tensor y = xg::activation_dropout(h, Tensor(), kind, p, training);
        h = Tensor();
        return !storage.expired();
    };
    CHECK_FALSE(saved_input(xg::FusedActivation::ReLU, 0.1, false));
    CHECK_FALSE(saved_input(xg::FusedActivation::ReLU, 0.0, true));
    // Where dropout zeroes the output, a NaN upstream gradient gives NaN for a
    // positive h and 0 for a negative one: the output cannot tell them apart.
    CHECK(saved_input(xg::FusedActivation::ReLU, 0.1, true));
    CHECK(saved_input(xg::FusedActivation::SiLU, 0.0, true));  // needs its input
}

TEST_CASE("activation_dropout rejects mismatched gates and bad p") {
    Tensor h = xg::ones({2, 3});
    CHECK_THROWS_WITH_AS(
        xg::activation_dropout(h, xg::ones({3, 2}), xg::FusedActivation::SiLU, 0.1, true),
        "activation_dropout: expected the gate to have h's shape [2, 3] (got [3, 2])", xg::Error);
    CHECK_THROWS_AS(xg::activation_dropout(h, xg::ones({2, 3}, xg::kFloat64),
                                           xg::FusedActivation::SiLU, 0.1, true),
                    xg::Error);
    CHECK_THROWS_WITH_AS(xg::activation_dropout(h, Tensor(), xg::FusedActivation::ReLU, 1.5, true),
                         "activation_dropout: expected p in [0, 1] (got 1.5)", xg::Error);
    CHECK_THROWS_AS(xg::activation_dropout(xg::ones({2}, xg::kInt64), Tensor(),
                                           xg::FusedActivation::ReLU, 0.1, true),
                    xg::Error);
}

TEST_CASE("activation_dropout writes v's gradient over v only when nothing else can read v") {
    // v an intermediate whose only other handle is dropped before backward: its
    // buffer may take the gradient. Against the separate ops, and twice with
    // retain_graph (the first pass must then leave v intact).
    for (bool retain : {false, true}) {
        CAPTURE(retain);
        auto grads = [&](bool fused) {
            Tensor hl = xg::tensor<float>(inputs<float>(1), true);
            Tensor vl = xg::tensor<float>(inputs<float>(2), true);
            xg::manual_seed(4);
            Tensor y;
            {
                Tensor h = hl * 1.0, v = vl * 1.0;  // exact copies, owned by the graph alone
                y = fused ? xg::activation_dropout(h, v, xg::FusedActivation::SiLU, 0.2, true)
                          : xg::dropout(xg::silu(h) * v, 0.2, true);
            }
            Tensor loss = xg::sum(y * xg::tensor<float>(inputs<float>(3)));
            loss.backward(Tensor(), retain);
            if (retain) loss.backward();  // accumulates the same gradients again
            return std::vector<xt::xarray<float>>{hl.grad().data<float>(), vl.grad().data<float>()};
        };
        auto fused = grads(true), separate = grads(false);
        CHECK(xt::all(xt::equal(fused[0], separate[0])));
        CHECK(xt::all(xt::equal(fused[1], separate[1])));
    }
}
