// xg::func::functional_call: outputs and gradients against PyTorch's
// functional_call (gen_functional_call.py), gradients reaching the given
// tensors only, restoration after normal and throwing calls, key errors,
// buffers, tied weights, per-sample gradients and non-leaf (meta-learning) weights.
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

#include "helpers.hpp"
#include "nn/reference/functional_call_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_functional_call {

using reference::lookup;
namespace ref = reference::functional_call;
namespace nn = xg::nn;
using xg::StateDict;
using xg::Tensor;
using xg::func::functional_call;

namespace {

// PyTorch's Sequential(Linear(3, 4), ReLU(), Linear(4, 2)) with the module's own
// values loaded, and its two Linear layers, whose `weight` members forward reads.
struct Mlp {
    std::shared_ptr<nn::Linear> fc1 = std::make_shared<nn::Linear>(ref::in, ref::hidden);
    std::shared_ptr<nn::Linear> fc2 = std::make_shared<nn::Linear>(ref::hidden, ref::out);
    std::shared_ptr<nn::Sequential> model = std::make_shared<nn::Sequential>(
        std::initializer_list<std::shared_ptr<nn::Module>>{fc1, std::make_shared<nn::ReLU>(), fc2});

    Mlp() {
        model->to(xg::kFloat64);
        StateDict own;
        for (const auto& [name, value] : ref::own) own.insert_or_assign(name, value.tensor());
        model->load_state_dict(own);
    }
};

// Fresh leaves holding the reference's given values, under `keys`.
StateDict given_leaves(const std::vector<std::string>& keys) {
    StateDict out;
    for (const auto& key : keys)
        out.insert_or_assign(key, lookup(ref::given, key).tensor(xg::kFloat64, true));
    return out;
}

Tensor loss_of(const Tensor& output, const Tensor& upstream) { return xg::sum(output * upstream); }

// What a module holds, to check that a call put everything back.
struct Snapshot {
    std::vector<std::string> names;
    std::vector<const xg::TensorImpl*> handles;
    std::vector<xt::xarray<double>> values;
    std::vector<bool> requires_grad;
    std::vector<const xg::TensorImpl*> grads;

    explicit Snapshot(const nn::Module& module) {
        auto named = module.named_parameters("", true, false);
        for (const auto& entry : module.named_buffers("", true, false)) named.push_back(entry);
        for (const auto& entry : named) {
            names.push_back(entry.first);
            handles.push_back(entry.second.impl());
            values.push_back(test::values(entry.second));
            requires_grad.push_back(entry.second.requires_grad());
            grads.push_back(entry.second.grad().impl());
        }
    }
};

void check_restored(const nn::Module& module, const Snapshot& before) {
    const Snapshot after(module);
    CHECK(after.names == before.names);
    CHECK(after.handles == before.handles);
    CHECK(after.requires_grad == before.requires_grad);
    CHECK(after.grads == before.grads);
    REQUIRE(after.values.size() == before.values.size());
    for (std::size_t i = 0; i < before.values.size(); ++i) {
        INFO(before.names[i]);
        CHECK(after.values[i] == before.values[i]);
    }
}

// y = (x + shift) * scale: a parameter and a buffer, read through typed handles
// kept in step with the registry, as the built-in layers keep theirs.
struct ShiftScale : nn::Module {
    ShiftScale() {
        shift = register_parameter("shift", test::f64({0.5, -1.0}));
        scale = register_buffer("scale", test::f64({2.0, 3.0}));
    }
    Tensor forward(const Tensor& x) override { return (x + shift) * scale; }
    Tensor shift, scale;

protected:
    void on_tensor_set(const std::string& member, const Tensor& value) override {
        if (member == "shift") shift = value;
        if (member == "scale") scale = value;
    }
};

}  // namespace

TEST_CASE("functional_call: outputs and gradients match PyTorch's functional_call") {
    for (const ref::Case& c : ref::cases()) {
        INFO(c.name);
        Mlp mlp;
        StateDict given = given_leaves(c.keys);
        Tensor x = ref::input.tensor(xg::kFloat64, true);
        Tensor y = functional_call(*mlp.model, given, x).tensor();
        CHECK(test::close(test::values(y), c.output.array(), 1e-12, 1e-12));
        loss_of(y, ref::upstream.tensor()).backward();
        CHECK(test::close(test::values(x.grad()), c.grad_input.array(), 1e-12, 1e-12));
        // (Entries, not structured bindings: clang 14's doctest lambdas cannot capture those.)
        for (const auto& entry : c.grads) {
            const std::string& name = entry.first;
            INFO(name);
            REQUIRE(given.at(name).grad().defined());
            CHECK(test::close(test::values(given.at(name).grad()), entry.second.array(), 1e-12,
                              1e-12));
        }
        // The module's own tensors that were replaced took no part; the others did.
        for (const auto& entry : mlp.model->named_parameters()) {
            const std::string& name = entry.first;
            const Tensor& p = entry.second;
            INFO(name);
            bool replaced = given.contains(name);
            CHECK(p.grad().defined() == !replaced);
            if (!replaced) {
                CHECK(test::close(test::values(p.grad()), lookup(c.kept_grads, name).array(), 1e-12,
                                  1e-12));
            }
        }
    }
}

TEST_CASE("functional_call: the output is the module's with those tensors loaded") {
    Mlp mlp, loaded;
    StateDict given = given_leaves({"0.weight", "2.bias"});
    loaded.model->load_state_dict(given, /*strict=*/false);
    Tensor x = ref::input.tensor();
    Tensor expected = (*loaded.model)(x);
    CHECK(test::identical(functional_call(*mlp.model, given, x).tensor(), expected));
    // The same call through Args, and through Kwargs naming forward's parameter.
    CHECK(test::identical(functional_call(*mlp.model, given, nn::Args{x}).tensor(), expected));
    CHECK(
        test::identical(functional_call(*mlp.model, given, {}, {{"input", x}}).tensor(), expected));
    // An empty StateDict is a plain call.
    CHECK(test::identical(functional_call(*mlp.model, {}, x).tensor(), (*mlp.model)(x)));
}

TEST_CASE("functional_call: every original is back after the call, grads untouched") {
    Mlp mlp;
    Tensor x = ref::input.tensor();
    loss_of((*mlp.model)(x), ref::upstream.tensor()).backward();  // the originals hold grads
    mlp.fc2->bias.requires_grad_(false);
    const Snapshot before(*mlp.model);
    const xg::TensorImpl* fc1_weight = mlp.fc1->weight.impl();

    StateDict given = given_leaves({"0.weight", "0.bias", "2.weight", "2.bias"});
    loss_of(functional_call(*mlp.model, given, x).tensor(), ref::upstream.tensor()).backward();
    check_restored(*mlp.model, before);
    // The typed members forward reads point at the originals again.
    CHECK(mlp.fc1->weight.impl() == fc1_weight);
    CHECK(mlp.fc1->weight.impl() == mlp.model->get_parameter("0.weight").impl());
    CHECK(mlp.fc2->bias.impl() == mlp.model->get_parameter("2.bias").impl());
    // The given tensors are used as they are: not copied, not changed.
    CHECK(given.at("0.weight").is_leaf());
    CHECK(given.at("0.weight").requires_grad());
}

TEST_CASE("functional_call: every original is back when forward throws") {
    Mlp mlp;
    const Snapshot before(*mlp.model);
    Tensor wrong = xg::zeros({ref::batch, ref::in + 1}, xg::kFloat64);  // fc1 takes 3 features
    CHECK_THROWS_AS(functional_call(*mlp.model, given_leaves({"0.weight", "2.weight"}), wrong),
                    xg::Error);
    check_restored(*mlp.model, before);
    CHECK(mlp.fc1->weight.impl() == mlp.model->get_parameter("0.weight").impl());

    // A throwing forward hook, after forward ran with the given tensors.
    auto handle =
        mlp.model->register_forward_hook([](nn::Module&, const Tensor&, const Tensor&) -> Tensor {
            throw xg::Error("hook failed");
        });
    CHECK_THROWS_WITH_AS(functional_call(*mlp.model, given_leaves({"2.bias"}), ref::input.tensor()),
                         "hook failed", xg::Error);
    handle.remove();
    check_restored(*mlp.model, before);
}

TEST_CASE("functional_call: keys are checked before anything is swapped") {
    Mlp mlp;
    const Snapshot before(*mlp.model);
    Tensor x = ref::input.tensor();
    Tensor w = lookup(ref::given, "0.weight").tensor();
    // An unknown key fails the call even beside valid ones, and nothing was applied.
    CHECK_THROWS_WITH_AS(
        functional_call(*mlp.model, {{"0.weight", w}, {"3.weight", w}, {"0", w}}, x),
        "functional_call: expected names of parameters or buffers of Sequential "
        "(got unexpected key(s) '3.weight', '0')",
        xg::Error);
    check_restored(*mlp.model, before);
    CHECK_THROWS_WITH_AS(functional_call(*mlp.model, {{"0.weight", Tensor()}}, x),
                         "functional_call: expected a tensor for '0.weight' (got an undefined one)",
                         xg::Error);
    check_restored(*mlp.model, before);

    // strict: every parameter and buffer must be given.
    CHECK_THROWS_WITH_AS(functional_call(*mlp.model, {{"0.weight", w}}, {x}, {}, /*strict=*/true),
                         "functional_call: strict expects a tensor for every parameter and buffer "
                         "of Sequential (got missing key(s) '0.bias', '2.weight', '2.bias')",
                         xg::Error);
    check_restored(*mlp.model, before);
    StateDict all = given_leaves({"0.weight", "0.bias", "2.weight", "2.bias"});
    CHECK_NOTHROW(functional_call(*mlp.model, all, {x}, {}, /*strict=*/true));
}

TEST_CASE("functional_call: buffers are substituted like parameters") {
    ShiftScale m;
    const Tensor own_scale = m.scale;
    Tensor x = test::f64({1.0, 1.0});
    Tensor scale = test::f64({-1.0, 0.5}, true);  // a buffer may be given with requires_grad
    Tensor y = functional_call(m, {{"scale", scale}}, x).tensor();
    CHECK(test::close(test::values(y), {-1.5, 0.0}));
    xg::sum(y).backward();
    CHECK(test::close(test::values(scale.grad()), {1.5, 0.0}));     // x + shift
    CHECK(test::close(test::values(m.shift.grad()), {-1.0, 0.5}));  // the own shift took part
    CHECK(m.scale.impl() == own_scale.impl());
    CHECK(m.get_buffer("scale").impl() == own_scale.impl());
    CHECK(test::close(test::values(m.scale), {2.0, 3.0}));
    CHECK_FALSE(m.scale.requires_grad());
}

TEST_CASE("functional_call: tied weights are substituted together") {
    // One Parameter under two names: fc2 ties its weight to fc1's.
    auto fc1 = std::make_shared<nn::Linear>(2, 2);
    auto fc2 = std::make_shared<nn::Linear>(2, 2);
    fc2->register_parameter("weight", fc1->weight);
    auto model = std::make_shared<nn::Sequential>(
        std::initializer_list<std::shared_ptr<nn::Module>>{fc1, fc2});
    model->to(xg::kFloat64).requires_grad_(false);  // gradients go to the given tensors only
    const Snapshot before(*model);
    Tensor x = test::f64({{1.0, -2.0}, {0.5, 3.0}});

    for (const std::string key : {"0.weight", "1.weight"}) {
        INFO(key);
        Tensor w = test::f64({{0.5, -1.0}, {2.0, 0.25}}, true);
        Tensor y = functional_call(*model, {{key, w}}, x).tensor();
        // Both layers used w: the same as writing the two linears out with a copy of it.
        Tensor w_copy = w.detach().clone().requires_grad_(true);
        Tensor expected = xg::linear(xg::linear(x, w_copy, fc1->bias), w_copy, fc2->bias);
        CHECK(test::close(test::values(y), test::values(expected), 1e-14, 1e-14));
        xg::sum(y).backward();
        xg::sum(expected).backward();
        CHECK(test::close(test::values(w.grad()), test::values(w_copy.grad()), 1e-14, 1e-14));
        check_restored(*model, before);
        CHECK(fc2->weight.impl() == fc1->weight.impl());
    }

    Tensor w = test::f64({{0.5, -1.0}, {2.0, 0.25}});
    CHECK_NOTHROW(functional_call(*model, {{"0.weight", w}, {"1.weight", w}}, x));
    CHECK_THROWS_WITH_AS(functional_call(*model, {{"0.weight", w}, {"1.weight", w * 2.0}}, x),
                         "functional_call: expected one tensor for the tied keys '0.weight' and "
                         "'1.weight' of Sequential (got two different tensors)",
                         xg::Error);
    check_restored(*model, before);
}

TEST_CASE("functional_call: a module registered twice is one slot, swapped and restored once") {
    auto fc = std::make_shared<nn::Linear>(2, 2);
    auto model = std::make_shared<nn::Sequential>(
        std::initializer_list<std::shared_ptr<nn::Module>>{fc, std::make_shared<nn::Tanh>(), fc});
    model->to(xg::kFloat64);
    const Snapshot before(*model);
    Tensor x = test::f64({{1.0, -2.0}});
    Tensor w = test::f64({{0.5, -1.0}, {2.0, 0.25}});
    Tensor y = functional_call(*model, {{"2.weight", w}}, x).tensor();
    Tensor expected = xg::linear(xg::tanh(xg::linear(x, w, fc->bias)), w, fc->bias);
    CHECK(test::close(test::values(y), test::values(expected), 1e-14, 1e-14));
    check_restored(*model, before);
    CHECK(fc->weight.impl() == before.handles[0]);
}

TEST_CASE("functional_call: per-sample gradients, one sample at a time") {
    Mlp mlp, separate;
    mlp.model->requires_grad_(false);  // the usual setup: only the given tensors need grads
    const StateDict params = given_leaves({"0.weight", "0.bias", "2.weight", "2.bias"});
    separate.model->load_state_dict(params);
    Tensor x = ref::input.tensor(), up = ref::upstream.tensor();

    for (std::size_t i = 0; i < ref::batch; ++i) {
        INFO("sample " << i);
        auto at = static_cast<std::int64_t>(i);
        StateDict leaves;
        for (const auto& [name, p] : params)
            leaves.insert_or_assign(name, p.detach().requires_grad_(true));
        Tensor y = functional_call(*mlp.model, leaves, x.slice(0, at, at + 1)).tensor();
        loss_of(y, up.slice(0, at, at + 1)).backward();

        // The same sample through a module holding those weights.
        separate.model->zero_grad();
        loss_of((*separate.model)(x.slice(0, at, at + 1)), up.slice(0, at, at + 1)).backward();
        for (const auto& entry : separate.model->named_parameters()) {
            const std::string& name = entry.first;
            INFO(name);
            xt::xarray<double> got = test::values(leaves.at(name).grad());
            CHECK(test::close(got, test::values(entry.second.grad()), 1e-14, 1e-14));
            xt::xarray<double> all = lookup(ref::per_sample_grads, name).array();
            xt::xarray<double> expected = xt::view(all, i);
            CHECK(test::close(got, expected, 1e-12, 1e-12));
        }
    }
    for (const Tensor& p : mlp.model->parameters()) CHECK_FALSE(p.grad().defined());
}

TEST_CASE("functional_call: weights that are not leaves pass gradients to what made them") {
    // MAML's fast weights are computed from the slow ones; here fast = 2 * slow,
    // with fast equal to the reference's given values, so slow's gradient is twice theirs.
    Mlp mlp;
    const ref::Case& c = ref::cases().front();
    StateDict slow, fast;
    for (const auto& name : c.keys) {
        Tensor s = (lookup(ref::given, name).tensor() * 0.5).requires_grad_(true);
        slow.insert_or_assign(name, s);
        fast.insert_or_assign(name, s * 2.0);
    }
    CHECK_FALSE(fast.at("0.weight").is_leaf());
    Tensor y = functional_call(*mlp.model, fast, ref::input.tensor()).tensor();
    CHECK(test::close(test::values(y), c.output.array(), 1e-12, 1e-12));
    loss_of(y, ref::upstream.tensor()).backward();
    for (const auto& entry : c.grads) {
        const std::string& name = entry.first;
        INFO(name);
        xt::xarray<double> expected = 2.0 * entry.second.array();
        CHECK(test::close(test::values(slow.at(name).grad()), expected, 1e-12, 1e-12));
    }
}

TEST_CASE("functional_call: hooks and paths see the given tensors during the call") {
    Mlp mlp;
    Tensor w = lookup(ref::given, "0.weight").tensor();
    const xg::TensorImpl* seen = nullptr;
    auto handle = mlp.fc1->register_forward_pre_hook(
        [&](nn::Module&, const Tensor&) { seen = mlp.model->get_parameter("0.weight").impl(); });
    functional_call(*mlp.model, {{"0.weight", w}}, ref::input.tensor());
    CHECK(seen == w.impl());
    handle.remove();
}

}  // namespace nn_test_functional_call
