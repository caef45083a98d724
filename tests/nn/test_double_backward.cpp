// Second-order gradients through the nn layers vs PyTorch (gen_double_backward.py):
// gradient penalties through every FeedForward variant, LayerNorm and a pre-norm
// block (float64, and swiglu in float32), Hessian-vector products, gradient-penalty
// training with Adam; and FeedForward's fused dropout under double backward against
// the same mask applied by hand with separate ops.
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xbuilder.hpp>

#include "helpers.hpp"
#include "nn/reference/double_backward_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_double_backward {

using reference::lookup;
namespace ref = reference::double_backward;
namespace nn = xg::nn;
namespace ag = xg::autograd;

namespace {

// float64 against float64: only the order of summation differs.
constexpr double kRtol = 1e-10, kAtol = 1e-12;

using Named = std::vector<std::pair<std::string, xg::Tensor>>;

std::shared_ptr<nn::FeedForward> build_ffn(const std::string& variant, double dropout = 0.1) {
    const std::size_t d = ref::d_model, f = ref::d_ff;
    if (variant == "glu") return nn::FeedForward::glu(d, f, dropout);
    if (variant == "bilinear") return nn::FeedForward::bilinear(d, f, dropout);
    if (variant == "reglu") return nn::FeedForward::reglu(d, f, dropout);
    if (variant == "geglu") return nn::FeedForward::geglu(d, f, dropout);
    if (variant == "swiglu") return nn::FeedForward::swiglu(d, f, dropout);
    const bool gated = variant == "relu_gated";
    std::shared_ptr<nn::Module> act;
    if (variant == "relu" || variant == "relu_gated")
        act = std::make_shared<nn::ReLU>();
    else if (variant == "gelu")
        act = std::make_shared<nn::GELU>();
    else
        act = std::make_shared<nn::GELU>("tanh");
    return std::make_shared<nn::FeedForward>(d, f, dropout, act, gated);
}

// Loads the keys m's state_dict has from `weights` (float64; load_state_dict converts).
void load(nn::Module& m, const ref::Named& weights) {
    xg::StateDict sd;
    for (const auto& key : m.state_dict().keys())
        sd.insert_or_assign(key, lookup(weights, key).tensor());
    m.load_state_dict(sd);
}

std::shared_ptr<nn::Sequential> build_mlp(std::size_t out_features, const ref::Named& weights) {
    auto mlp = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::Tanh>(),
        std::make_shared<nn::Linear>(8, out_features)});
    mlp->to(xg::kFloat64);
    load(*mlp, weights);
    return mlp;
}

// A gradient nothing reached stands for zeros. PyTorch's ReLU backward has a
// zero derivative in its mask's input; xgrad's mask (a comparison) has none, so
// what the penalty reaches only through a ReLU mask gets no gradient at all.
xt::xarray<double> values_or_zeros(const xg::Tensor& t, const xg::Shape& shape) {
    return t.defined() ? test::values(t) : xt::xarray<double>(xt::zeros<double>(shape));
}

void check_close(const xt::xarray<double>& actual, const xt::xarray<double>& expected,
                 double rtol = kRtol, double atol = kAtol) {
    INFO("actual:   ", test::show(actual));
    INFO("expected: ", test::show(expected));
    CHECK(test::close(actual, expected, rtol, atol));
}

void check_close(const xg::Tensor& actual, const reference::Array& expected, double rtol = kRtol,
                 double atol = kAtol) {
    check_close(values_or_zeros(actual, expected.shape), expected.array(), rtol, atol);
}

// P = sum(g * g) with g = dL/dx, L = sum(f(x) * upstream), g recorded under
// create_graph; P.backward() leaves dP/dx in x.grad and dP/dtheta in .grad.
struct Penalty {
    xg::Tensor penalty, grad_input;
};

Penalty gradient_penalty(const std::function<xg::Tensor(const xg::Tensor&)>& f,
                         xg::Dtype dtype = xg::kFloat64) {
    xg::Tensor x = ref::x.tensor(dtype, true);
    xg::Tensor loss = xg::sum(f(x) * ref::upstream.tensor(dtype));
    xg::Tensor g = ag::grad({loss}, {x}, {}, std::nullopt, true)[0];
    CHECK(g.requires_grad());
    xg::Tensor p = xg::sum(g * g);
    p.backward();
    return {p, x.grad()};
}

void check_penalty(const Penalty& actual, const Named& params, const ref::Penalty& expected,
                   double rtol = kRtol, double atol = kAtol) {
    CHECK(actual.penalty.item<double>() == doctest::Approx(expected.penalty).epsilon(rtol));
    {
        INFO("dP/dx");
        check_close(actual.grad_input, expected.grad_input, rtol, atol);
    }
    REQUIRE(params.size() == expected.grads.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
        INFO("dP/d", params[i].first);
        CHECK(params[i].first == expected.grads[i].first);
        check_close(params[i].second.grad(), expected.grads[i].second, rtol, atol);
    }
}

const ref::Penalty& expected_penalty(const std::string& name) {
    for (const auto& p : ref::penalties()) {
        if (p.name == name) return p;
    }
    throw std::out_of_range("no penalty case " + name);
}

}  // namespace

TEST_CASE("gradient penalty through every FeedForward variant matches PyTorch") {
    const std::vector<std::string> variants = {
        "relu", "gelu", "gelu_tanh", "relu_gated", "glu", "bilinear", "reglu", "geglu", "swiglu"};
    for (const auto& variant : variants) {
        CAPTURE(variant);
        auto ffn = build_ffn(variant);
        ffn->to(xg::kFloat64);
        load(*ffn, ref::ffn_weights);
        ffn->eval();  // dropout off
        Penalty p = gradient_penalty([&](const xg::Tensor& x) { return (*ffn)(x); });
        check_penalty(p, ffn->named_parameters(), expected_penalty(variant));
    }
}

TEST_CASE("gradient penalty through LayerNorm and a pre-norm block matches PyTorch") {
    auto norm = std::make_shared<nn::LayerNorm>(xg::Shape{ref::d_model});
    norm->to(xg::kFloat64);
    load(*norm, ref::norm_weights);
    SUBCASE("LayerNorm") {
        Penalty p = gradient_penalty([&](const xg::Tensor& x) { return (*norm)(x); });
        // The bias does not enter dL/dx: no gradient in xgrad, None (zeros here) in PyTorch.
        check_penalty(p, norm->named_parameters(), expected_penalty("layer_norm"));
    }
    SUBCASE("x + swiglu(norm(x))") {
        auto ffn = build_ffn("swiglu");
        ffn->to(xg::kFloat64);
        load(*ffn, ref::ffn_weights);
        ffn->eval();
        Penalty p = gradient_penalty([&](const xg::Tensor& x) { return x + (*ffn)((*norm)(x)); });
        Named params = norm->named_parameters("norm");
        for (auto& named : ffn->named_parameters("feed_forward")) params.push_back(named);
        check_penalty(p, params, expected_penalty("pre_norm_swiglu"));
    }
}

TEST_CASE("gradient penalty through swiglu in float32 agrees with PyTorch's float32") {
    auto ffn = build_ffn("swiglu");
    ffn->to(xg::kFloat32);
    load(*ffn, ref::ffn_weights);  // rounded to float32, as PyTorch's load_state_dict does
    ffn->eval();
    Penalty p = gradient_penalty([&](const xg::Tensor& x) { return (*ffn)(x); }, xg::kFloat32);
    const ref::Penalty& expected = ref::swiglu_float32();
    CHECK(p.penalty.dtype() == xg::kFloat32);
    CHECK(p.grad_input.dtype() == xg::kFloat32);
    // Both sides round every op to float32, in different orders.
    constexpr double tol = 1e-4;
    CHECK(p.penalty.item<double>() == doctest::Approx(expected.penalty).epsilon(tol));
    CHECK(test::rel_error(test::values(p.grad_input), expected.grad_input.array()) < tol);
    auto params = ffn->named_parameters();
    REQUIRE(params.size() == expected.grads.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
        INFO(params[i].first);
        CHECK(params[i].second.grad().dtype() == xg::kFloat32);
        CHECK(test::rel_error(test::values(params[i].second.grad()),
                              expected.grads[i].second.array()) < tol);
    }
}

TEST_CASE("Hessian-vector product through swiglu matches PyTorch") {
    auto ffn = build_ffn("swiglu");
    ffn->to(xg::kFloat64);
    load(*ffn, ref::ffn_weights);
    ffn->eval();
    xg::Tensor x = ref::x.tensor(xg::kFloat64, true);
    xg::Tensor loss = xg::sum((*ffn)(x)*ref::upstream.tensor());
    xg::Tensor g = ag::grad({loss}, {x}, {}, std::nullopt, true)[0];
    xg::Tensor hv = ag::grad({xg::sum(g * ref::v.tensor())}, {x})[0];
    check_close(hv, ref::swiglu_hvp);
    CHECK_FALSE(x.grad().defined());  // grad() returns gradients instead of accumulating them
}

TEST_CASE("Hessian-vector products through Linear -> Tanh -> Linear match PyTorch") {
    auto mlp = build_mlp(3, ref::mlp_weights);
    const xg::Tensor target = ref::mlp_target.tensor();
    SUBCASE("in the input") {
        xg::Tensor x = ref::mlp_x.tensor(xg::kFloat64, true);
        xg::Tensor loss = xg::mse_loss((*mlp)(x), target);
        xg::Tensor g = ag::grad({loss}, {x}, {}, std::nullopt, true)[0];
        xg::Tensor hv = ag::grad({xg::sum(g * ref::mlp_vx.tensor())}, {x})[0];
        check_close(hv, ref::mlp_hvp);
    }
    SUBCASE("in the parameters") {
        const Named named = mlp->named_parameters();
        std::vector<xg::Tensor> params;
        for (const auto& p : named) params.push_back(p.second);
        xg::Tensor loss = xg::mse_loss((*mlp)(ref::mlp_x.tensor()), target);
        std::vector<xg::Tensor> grads = ag::grad({loss}, params, {}, std::nullopt, true);
        REQUIRE(grads.size() == params.size());
        xg::Tensor dot;  // sum over the parameters of <dL/dtheta, v_theta>
        for (std::size_t i = 0; i < named.size(); ++i) {
            xg::Tensor term = xg::sum(grads[i] * lookup(ref::mlp_vparams, named[i].first).tensor());
            dot = dot.defined() ? dot + term : term;
        }
        std::vector<xg::Tensor> hv = ag::grad({dot}, params);
        REQUIRE(hv.size() == named.size());
        for (std::size_t i = 0; i < named.size(); ++i) {
            INFO(named[i].first);
            CHECK(named[i].first == ref::mlp_param_hvp[i].first);
            check_close(hv[i], ref::mlp_param_hvp[i].second);
        }
    }
}

TEST_CASE("gradient-penalty training with Adam follows PyTorch") {
    auto model = build_mlp(1, ref::gp_weights);
    xg::optim::Adam opt(model->parameters(), xg::optim::AdamOptions(ref::gp_lr));
    const xg::Tensor x = ref::gp_x.tensor(xg::kFloat64, true);
    const xg::Tensor y = ref::gp_y.tensor();
    for (std::size_t step = 0; step < ref::gp_losses.size(); ++step) {
        CAPTURE(step);
        opt.zero_grad();
        xg::Tensor mse = xg::mse_loss((*model)(x), y);
        xg::Tensor gx = ag::grad({mse}, {x}, {}, std::nullopt, true)[0];
        // WGAN-GP style: the mean over the batch of each sample's squared gradient norm.
        xg::Tensor loss = mse + ref::gp_weight * xg::mean(xg::sum(gx * gx, {1}));
        CHECK(loss.item<double>() == doctest::Approx(ref::gp_losses[step]).epsilon(kRtol));
        loss.backward();
        opt.step();
    }
    const Named params = model->named_parameters();
    REQUIRE(params.size() == ref::gp_final.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
        INFO(params[i].first);
        CHECK(params[i].first == ref::gp_final[i].first);
        check_close(test::values(params[i].second), ref::gp_final[i].second.array());
    }
}

TEST_CASE("FeedForward dropout under double backward: the fused op equals its mask by hand") {
    // In training, the fused op's second derivative recomputes the block with the
    // mask it drew; the separate ops with that mask (drawn again from the same
    // seed by xg::dropout, which draws as the fused op does) must agree.
    constexpr double p = 0.5;
    for (const std::string variant : {"relu", "gelu", "swiglu"}) {
        CAPTURE(variant);
        auto ffn = build_ffn(variant, p);
        ffn->to(xg::kFloat64);
        load(*ffn, ref::ffn_weights);
        ffn->train();

        xg::manual_seed(17);
        Penalty fused = gradient_penalty([&](const xg::Tensor& x) { return (*ffn)(x); });
        const Named params = ffn->named_parameters();
        std::vector<xt::xarray<double>> fused_grads;
        for (const auto& named : params)
            fused_grads.push_back(values_or_zeros(named.second.grad(), named.second.shape()));
        ffn->zero_grad();

        xg::manual_seed(17);
        const xg::Tensor mask = xg::dropout(xg::ones({2, 3, ref::d_ff}, xg::kFloat64), p, true);
        REQUIRE(test::count_zeros(mask) > 0);
        REQUIRE(test::count_zeros(mask) < mask.numel());
        Penalty by_hand = gradient_penalty([&](const xg::Tensor& x) {
            xg::Tensor h = (*ffn->layer1)(x);
            xg::Tensor a = variant == "relu"   ? xg::relu(h)
                           : variant == "gelu" ? xg::gelu(h)
                                               : xg::silu(h) * (*ffn->linear_v)(x);
            return (*ffn->layer2)(a * mask);
        });

        CHECK(fused.penalty.item<double>() ==
              doctest::Approx(by_hand.penalty.item<double>()).epsilon(1e-12));
        check_close(values_or_zeros(fused.grad_input, ref::x.shape),
                    values_or_zeros(by_hand.grad_input, ref::x.shape), 1e-12, 1e-13);
        for (std::size_t i = 0; i < params.size(); ++i) {
            INFO(params[i].first);
            check_close(fused_grads[i],
                        values_or_zeros(params[i].second.grad(), params[i].second.shape()), 1e-12,
                        1e-13);
        }
    }
}

}  // namespace nn_test_double_backward
