// xg::inspect::GradientMonitor: its numbers against the same quantities
// computed directly (norms of grads and parameters, update ratios, each
// module's output and the gradient reaching it), sampling every N steps,
// flags, training unchanged by watching, and that no hook outlives a step,
// remove(), the handle or the monitor. (Its files: test_report.cpp.)
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/inspect/monitor.hpp>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace inspect_test_monitor {

namespace nn = xg::nn;
using xg::Tensor;
using xg::inspect::FlagKind;
using xg::inspect::GradientMonitor;
using xg::inspect::MonitorOptions;

namespace {

// A Sequential and its parts in call order (a part may appear twice).
struct Chain {
    std::vector<std::shared_ptr<nn::Module>> parts;
    std::shared_ptr<nn::Sequential> model = std::make_shared<nn::Sequential>();
};

Chain chain(std::vector<std::shared_ptr<nn::Module>> parts) {
    Chain c{std::move(parts)};
    for (const auto& part : c.parts) c.model->push_back(part);
    c.model->double_();
    return c;
}

Chain mlp(std::uint64_t seed) {
    xg::manual_seed(seed);
    return chain({std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ReLU>(),
                  std::make_shared<nn::Linear>(8, 2)});
}

double l2(const Tensor& t) {
    double sum = 0;
    for (double v : test::values(t)) sum += v * v;
    return std::sqrt(sum);
}

bool rel_close(double got, double expected, double tol = 1e-12) {
    return std::abs(got - expected) <= tol * std::abs(expected);
}

// Each part's output and the gradient reaching it, from a forward and backward
// without hooks (retain_grad); the model's grads are cleared after.
struct Direct {
    std::vector<Tensor> outputs, grads;
};
Direct direct_pass(const Chain& c, const Tensor& x, const Tensor& y) {
    Direct d;
    Tensor h = x;
    for (const auto& part : c.parts) {
        h = (*part)(h);
        h.retain_grad();
        d.outputs.push_back(h);
    }
    xg::mse_loss(h, y).backward();
    for (const Tensor& o : d.outputs) d.grads.push_back(o.grad());
    c.model->zero_grad();
    return d;
}

// Modules that would run a hook when called: the monitor's leak detector.
std::size_t hooked(const nn::Module& model) {
    std::size_t n = 0;
    for (const auto& [name, m] : model.named_modules()) n += m->has_hooks();
    return n;
}

// mean, std, zeros, extremes and histogram of the outputs of the calls listed.
void check_activation(const xg::inspect::ActivationStats& a, const std::vector<Tensor>& outputs,
                      std::size_t bins) {
    std::vector<double> v;
    for (const Tensor& o : outputs)
        for (double e : test::values(o)) v.push_back(e);
    const double n = static_cast<double>(v.size());
    double sum = 0, lo = INFINITY, hi = -INFINITY, m2 = 0;
    std::int64_t zeros = 0;
    for (double e : v) sum += e, lo = std::min(lo, e), hi = std::max(hi, e), zeros += e == 0;
    for (double e : v) m2 += (e - sum / n) * (e - sum / n);
    CHECK(a.numel == static_cast<std::int64_t>(v.size()));
    CHECK(a.zeros == zeros);
    CHECK(a.nonfinite == 0);
    CHECK(rel_close(a.mean, sum / n, 1e-9));
    CHECK(rel_close(a.std, std::sqrt(m2 / (n - 1)), 1e-9));
    CHECK(a.min == lo);
    CHECK(a.max == hi);
    const auto& h = a.histogram;
    REQUIRE(h.edges.size() == bins + 1);
    REQUIRE(h.counts.size() == bins);
    std::int64_t total = 0;
    for (std::int64_t c : h.counts) total += c;
    CHECK(total == a.numel);
    if (outputs.size() > 1) return;  // a later call's counts land at bin centres
    CHECK(h.edges.front() == lo);
    CHECK(h.edges.back() == hi);
    for (std::size_t i = 0; i < bins; ++i) {
        std::int64_t in_bin = 0;
        for (double e : v)
            in_bin += e >= h.edges[i] && (e < h.edges[i + 1] || (i + 1 == bins && e == hi));
        CHECK(h.counts[i] == in_bin);
    }
}

}  // namespace

TEST_CASE("GradientMonitor records what direct computation gives, step by step") {
    Chain c = mlp(1);
    xg::manual_seed(2);
    const Tensor x = xg::randn({16, 4}, xg::kFloat64), y = xg::randn({16, 2}, xg::kFloat64);
    xg::optim::SGD sgd(c.model->parameters(), xg::optim::SGDOptions(0.1).momentum(0.9));
    GradientMonitor monitor(*c.model, MonitorOptions{.bins = 7});
    for (std::size_t step = 0; step < 3; ++step) {
        CAPTURE(step);
        const Direct d = direct_pass(c, x, y);
        monitor.begin_step();
        const Tensor loss = xg::mse_loss((*c.model)(x), y);
        loss.backward();
        std::vector<double> grad_norms, param_norms;
        std::vector<xt::xarray<double>> before;
        for (const auto& [name, p] : c.model->named_parameters()) {
            grad_norms.push_back(l2(p.grad()));
            param_norms.push_back(l2(p));
            before.push_back(test::values(p));
        }
        monitor.step(sgd, loss);
        sgd.zero_grad();

        REQUIRE(monitor.records().size() == step + 1);
        const auto& r = monitor.records().back();
        CHECK(r.step == step);
        CHECK(r.loss == loss.item<double>());
        const auto named = c.model->named_parameters();
        REQUIRE(r.params.size() == named.size());
        for (std::size_t i = 0; i < named.size(); ++i) {
            const auto& p = r.params[i];
            CAPTURE(p.name);
            CHECK(p.name == named[i].first);
            CHECK(p.shape == named[i].second.shape());
            REQUIRE(p.grad_norm);
            CHECK(rel_close(*p.grad_norm, grad_norms[i]));
            CHECK(rel_close(p.param_norm, param_norms[i]));
            const xt::xarray<double> delta = test::values(named[i].second) - before[i];
            REQUIRE(p.update_ratio);
            CHECK(rel_close(*p.update_ratio, l2(xg::tensor(delta)) / param_norms[i]));
        }
        REQUIRE(r.modules.size() == 3);
        for (std::size_t i = 0; i < 3; ++i) {
            const auto& m = r.modules[i];
            CAPTURE(m.name);
            CHECK(m.name == std::to_string(i));
            CHECK(m.type == c.parts[i]->name());
            CHECK(m.calls == 1);
            REQUIRE(m.grad_output_norm);
            CHECK(rel_close(*m.grad_output_norm, l2(d.grads[i])));
            REQUIRE(m.activation);
            check_activation(*m.activation, {d.outputs[i]}, 7);
        }
        CHECK(r.modules[1].activation->zeros == std::int64_t(test::count_zeros(d.outputs[1])));
    }
    CHECK(monitor.losses().size() == 3);
    CHECK(monitor.flags().empty());
}

TEST_CASE("a module called twice in a step merges its calls") {
    xg::manual_seed(4);
    auto shared = std::make_shared<nn::Linear>(6, 6);
    Chain c = chain({shared, std::make_shared<nn::Tanh>(), shared});
    const Tensor x = xg::randn({5, 6}, xg::kFloat64), y = xg::randn({5, 6}, xg::kFloat64);
    const Direct d = direct_pass(c, x, y);
    GradientMonitor monitor(*c.model);
    monitor.begin_step();
    xg::mse_loss((*c.model)(x), y).backward();
    monitor.step([] {}, 0.0);
    const auto& modules = monitor.records().at(0).modules;
    REQUIRE(modules.size() == 2);  // "0" (called twice) and "1"; "2" is "0" again
    CHECK(modules[0].name == "0");
    CHECK(modules[0].calls == 2);
    check_activation(*modules[0].activation, {d.outputs[0], d.outputs[2]}, 20);
    const double both = std::hypot(l2(d.grads[0]), l2(d.grads[2]));
    CHECK(rel_close(*modules[0].grad_output_norm, both, 1e-9));
    CHECK(monitor.records()[0].params[0].update_ratio == 0.0);  // the update did nothing
}

TEST_CASE("GradientMonitor samples every N steps and hooks only those") {
    Chain c = mlp(5);
    const Tensor x = xg::randn({8, 4}, xg::kFloat64), y = xg::randn({8, 2}, xg::kFloat64);
    xg::optim::Adam adam(c.model->parameters(), xg::optim::AdamOptions(1e-2));
    GradientMonitor monitor(*c.model, MonitorOptions{.every = 3});
    CHECK(hooked(*c.model) == 0);
    for (std::size_t step = 0; step < 8; ++step) {
        CAPTURE(step);
        CHECK(monitor.sampled() == (step % 3 == 0));
        monitor.begin_step();
        monitor.begin_step();                                  // a second call adds nothing
        CHECK(hooked(*c.model) == (step % 3 == 0 ? 3u : 0u));  // the children, not the root
        const Tensor loss = xg::mse_loss((*c.model)(x), y);
        loss.backward();
        monitor.step(adam, loss);
        adam.zero_grad();
        CHECK(hooked(*c.model) == 0);
    }
    CHECK(monitor.steps() == 8);
    CHECK(monitor.losses().size() == 8);
    REQUIRE(monitor.records().size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(monitor.records()[i].step == 3 * i);
        CHECK(monitor.records()[i].loss == monitor.losses()[3 * i]);
        CHECK(monitor.records()[i].modules.size() == 3);
        for (const auto& m : monitor.records()[i].modules)
            CHECK(m.calls == 1);  // begin_step() twice hooked each module once
    }
}

TEST_CASE("no hook outlives remove(), the handle, a throwing update or the monitor") {
    Chain c = mlp(6);
    const Tensor x = xg::randn({8, 4}, xg::kFloat64), y = xg::randn({8, 2}, xg::kFloat64);
    auto forward_backward = [&] {
        const Tensor loss = xg::mse_loss((*c.model)(x), y);
        loss.backward();
        return loss.item<double>();
    };
    Tensor hooked_loss;
    {
        GradientMonitor monitor(*c.model);
        monitor.begin_step();
        CHECK(hooked(*c.model) == 3);
        hooked_loss = xg::mse_loss((*c.model)(x), y);
    }  // destroyed mid-step
    CHECK(hooked(*c.model) == 0);
    hooked_loss.backward();  // its backward hooks outlive the monitor, which they hold weakly
    c.model->zero_grad();

    GradientMonitor monitor(*c.model);
    monitor.begin_step();
    const double loss = forward_backward();
    CHECK_THROWS_WITH_AS(monitor.step([] { throw xg::Error("update failed"); }, loss),
                         "update failed", xg::Error);
    CHECK(hooked(*c.model) == 0);
    CHECK(monitor.steps() == 0);
    CHECK(monitor.records().empty());

    xg::RemovableHandle handle = monitor.handle();
    monitor.begin_step();
    CHECK(hooked(*c.model) == 3);
    handle.remove();
    CHECK(hooked(*c.model) == 0);
    CHECK(monitor.removed());
    monitor.begin_step();  // detached: installs nothing, records nothing, still updates
    CHECK(hooked(*c.model) == 0);
    bool updated = false;
    monitor.step([&] { updated = true; }, forward_backward());
    CHECK(updated);
    CHECK(monitor.steps() == 0);
    monitor.remove();  // idempotent
    CHECK(hooked(*c.model) == 0);

    // A graph kept past its step runs its (removed) hooks again: they record nothing.
    GradientMonitor late(*c.model);
    late.begin_step();
    const Tensor kept = xg::mse_loss((*c.model)(x), y);
    kept.backward(Tensor(), true);
    late.step([] {}, kept.item<double>());
    const auto recorded = late.records().at(0).modules.at(0).grad_output_norm;
    kept.backward();
    CHECK(late.records()[0].modules[0].grad_output_norm == recorded);
    CHECK(hooked(*c.model) == 0);

    GradientMonitor quiet(*c.model, MonitorOptions{.activations = false});
    quiet.begin_step();
    CHECK(hooked(*c.model) == 0);
    quiet.step([] {}, forward_backward());
    CHECK(quiet.records().at(0).modules.empty());
    CHECK(quiet.records()[0].params.size() == 4);
    CHECK_THROWS_WITH_AS(GradientMonitor(*c.model, MonitorOptions{.every = 0}),
                         "GradientMonitor: expected every >= 1 (got 0)", xg::Error);
}

namespace {

// A linear stack whose weights are scaled by `scale`: 1e-3 starves the early
// layers of gradient, 100 blows every gradient up.
std::shared_ptr<nn::Sequential> stack(std::size_t depth, double scale) {
    xg::manual_seed(7);
    auto model = std::make_shared<nn::Sequential>();
    for (std::size_t i = 0; i < depth; ++i) {
        auto layer = std::make_shared<nn::Linear>(16, 16);
        xg::NoGradGuard no_grad;
        layer->weight.mul_(scale);
        model->push_back(layer);
    }
    model->double_();
    return model;
}

std::vector<xg::inspect::Flag> flags_after_one_step(nn::Module& model, const Tensor& x) {
    GradientMonitor monitor(model);
    monitor.begin_step();
    const Tensor loss = xg::mse_loss(model(x), xg::zeros({8, 16}, xg::kFloat64));
    loss.backward();
    monitor.step([] {}, loss.item<double>());
    return monitor.flags();
}

bool has_flag(const std::vector<xg::inspect::Flag>& flags, const std::string& name,
              const std::string& source, FlagKind kind) {
    for (const auto& f : flags)
        if (f.name == name && f.source == source && f.kind == kind) return true;
    return false;
}

}  // namespace

TEST_CASE("GradientMonitor flags vanishing, exploding and non-finite gradients") {
    const Tensor x = xg::randn({8, 16}, xg::kFloat64);
    auto tiny = stack(8, 1e-3);
    const auto vanishing = flags_after_one_step(*tiny, x);
    CHECK(has_flag(vanishing, "0.weight", "param", FlagKind::Vanishing));
    CHECK(has_flag(vanishing, "0", "module", FlagKind::Vanishing));
    CHECK_FALSE(has_flag(vanishing, "7.weight", "param", FlagKind::Vanishing));
    CHECK(to_string(FlagKind::Vanishing) == "vanishing");

    auto huge = stack(4, 100);
    const auto exploding = flags_after_one_step(*huge, x);
    CHECK(has_flag(exploding, "3.weight", "param", FlagKind::Exploding));
    CHECK(has_flag(exploding, "0.weight", "param", FlagKind::Exploding));
    CHECK_FALSE(has_flag(exploding, "0.weight", "param", FlagKind::Vanishing));

    Tensor bad = x.clone();
    bad.data<double>()(0, 0) = NAN;
    auto plain = stack(2, 1.0);
    GradientMonitor monitor(*plain);
    monitor.begin_step();
    xg::sum((*plain)(bad)).backward();
    monitor.step([] {}, NAN);
    CHECK(has_flag(monitor.flags(), "0.weight", "param", FlagKind::NonFinite));
    const auto& first = *monitor.records().at(0).modules.at(0).activation;
    CHECK(first.nonfinite == 16);  // row 0 of the first layer's output
    CHECK(first.numel == 8 * 16);
}

TEST_CASE("watching a FeedForward leaves its training unchanged") {
    xg::manual_seed(8);
    auto watched = std::make_shared<nn::FeedForward>(8, 32, 0.0);
    auto plain = std::dynamic_pointer_cast<nn::FeedForward>(watched->clone());
    const Tensor x = xg::randn({16, 8}), y = xg::randn({16, 8});
    const Tensor hidden = xg::relu((*watched->layer1)(x));  // step 0's activation
    // SGD, whose updates follow the gradients' values (Adam's sign-like steps
    // would amplify a rounding difference, were there one).
    xg::optim::SGD a(watched->parameters(), xg::optim::SGDOptions(0.1));
    xg::optim::SGD b(plain->parameters(), xg::optim::SGDOptions(0.1));
    GradientMonitor monitor(*watched, MonitorOptions{.every = 2});
    for (int step = 0; step < 4; ++step) {
        monitor.begin_step();
        const Tensor loss = xg::mse_loss((*watched)(x), y);
        loss.backward();
        monitor.step(a, loss);
        a.zero_grad();
        xg::mse_loss((*plain)(x), y).backward();
        b.step();
        b.zero_grad();
    }
    const auto pa = watched->parameters(), pb = plain->parameters();
    for (std::size_t i = 0; i < pa.size(); ++i)
        CHECK(test::close(test::values(pa[i]), test::values(pb[i]), 1e-6, 1e-7));
    const auto& modules = monitor.records().at(0).modules;
    std::vector<std::string> names;
    for (const auto& m : modules) names.push_back(m.name);
    CHECK(names == std::vector<std::string>{"layer1", "layer2", "dropout", "activation"});
    CHECK(modules[3].activation->zeros == std::int64_t(test::count_zeros(hidden)));
    CHECK(modules[3].activation->zero_fraction() ==
          double(test::count_zeros(hidden)) / double(hidden.numel()));
}

TEST_CASE("statistics of bfloat16 tensors are those of their values") {
    Chain c = mlp(9);
    c.model->bfloat16();
    const Tensor x = xg::randn({4, 4}).to(xg::kBFloat16);
    GradientMonitor monitor(*c.model);
    monitor.begin_step();
    const Tensor out = (*c.model)(x);
    xg::sum(out).backward();
    monitor.step([] {}, 0.0);
    const auto& r = monitor.records().at(0);
    const auto named = c.model->named_parameters();
    for (std::size_t i = 0; i < named.size(); ++i) {
        CHECK(rel_close(*r.params[i].grad_norm, l2(named[i].second.grad())));
        CHECK(rel_close(r.params[i].param_norm, l2(named[i].second)));
    }
    check_activation(*r.modules.at(2).activation, {out}, 20);
}

}  // namespace inspect_test_monitor
