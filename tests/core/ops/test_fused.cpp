// Tests for the fused feed-forward op (core/ops/fused.cpp): activation_dropout
// against activation, gate and dropout run separately, bit for bit (NaN and inf
// included), float64 gradchecks, what it keeps for backward, when it writes v's
// gradient over v, and its error messages; and a float32 FeedForward step, which
// runs the fused op, against a float64 step written out by hand.
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xoperation.hpp>

#include "helpers.hpp"
#include "internal.hpp"  // TensorImpl: which buffer a tensor holds

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_fused {

using xg::Tensor;

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
    // 130 x 127 elements: more than one 4096-element mask slice, and not a multiple of it.
    auto values = [&](std::uint64_t seed, std::size_t first) {
        return specials ? with_specials(test::large_inputs<T>(seed), first)
                        : test::large_inputs<T>(seed);
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
    Tensor h = xg::tensor<float>(test::large_inputs<float>(1), true);
    Tensor y = xg::activation_dropout(h, Tensor(), xg::FusedActivation::ReLU, 1.0, true);
    CHECK(xt::all(xt::equal(y.data<float>(), 0.0f)));
    xg::sum(y).backward();
    CHECK(xt::all(xt::equal(h.grad().data<float>(), 0.0f)));
}

TEST_CASE("ungated ReLU activation_dropout without dropout keeps only its output for backward") {
    auto saved_input = [](xg::FusedActivation kind, double p, bool training) {
        Tensor leaf = xg::tensor<float>(test::large_inputs<float>(1), true);
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
            Tensor hl = xg::tensor<float>(test::large_inputs<float>(1), true);
            Tensor vl = xg::tensor<float>(test::large_inputs<float>(2), true);
            xg::manual_seed(4);
            Tensor y;
            {
                Tensor h = hl * 1.0, v = vl * 1.0;  // exact copies, owned by the graph alone
                y = fused ? xg::activation_dropout(h, v, xg::FusedActivation::SiLU, 0.2, true)
                          : xg::dropout(xg::silu(h) * v, 0.2, true);
            }
            Tensor loss = xg::sum(y * xg::tensor<float>(test::large_inputs<float>(3)));
            loss.backward(Tensor(), retain);
            if (retain) loss.backward();  // accumulates the same gradients again
            return std::vector<xt::xarray<float>>{hl.grad().data<float>(), vl.grad().data<float>()};
        };
        auto fused = grads(true), separate = grads(false);
        CHECK(xt::all(xt::equal(fused[0], separate[0])));
        CHECK(xt::all(xt::equal(fused[1], separate[1])));
    }
}

}  // namespace core_ops_test_fused
