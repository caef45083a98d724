// Exception safety: every public call that throws leaves its object exactly as
// before the call and still usable (load_state_dict, optimizer load_state_dict,
// set_submodule, register_*). Failures are forced, then the object is compared
// bit for bit with a snapshot and made to do its job.
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_exception_safety {

using xg::Tensor;
using xg::nn::Module;

namespace {

// Everything observable about a module: names of members and submodules, and values.
struct Snapshot {
    std::vector<std::string> modules, parameters, buffers;
    xg::StateDict values;

    explicit Snapshot(Module& m) {
        for (const auto& [name, child] : m.named_modules())
            modules.push_back(name + ":" + child->name());
        for (const auto& [name, p] : m.named_parameters()) parameters.push_back(name);
        for (const auto& [name, b] : m.named_buffers()) buffers.push_back(name);
        for (const auto& [key, t] : m.state_dict()) values.insert_or_assign(key, t.clone());
    }
    bool operator==(const Snapshot& o) const {
        if (modules != o.modules || parameters != o.parameters || buffers != o.buffers ||
            values.keys() != o.values.keys())
            return false;
        for (const auto& [key, t] : values) {
            const Tensor& u = o.values.at(key);
            if (t.dtype() != u.dtype() || t.shape() != u.shape()) return false;
            if (t.dtype() == xg::kFloat32 && t.data<float>() != u.data<float>()) return false;
            if (t.dtype() == xg::kFloat64 && t.data<double>() != u.data<double>()) return false;
            if (t.dtype() == xg::kInt64 && t.data<std::int64_t>() != u.data<std::int64_t>())
                return false;
        }
        return true;
    }
};

// A module with a float64 buffer, an int64 buffer and extra state whose setter
// validates what it is given (and so can throw after parameters were checked).
struct Stateful : Module {
    Stateful() {
        linear = register_module("linear", std::make_shared<xg::nn::Linear>(3, 3));
        register_buffer("running", xg::zeros({3}, xg::kFloat64));
        register_buffer("count", xg::zeros({1}, xg::kInt64));
    }
    Tensor forward(const Tensor& x) override { return (*linear)(x); }
    xg::StateDict get_extra_state() const override { return {{"version", xg::full({1}, version)}}; }
    void set_extra_state(const xg::StateDict& state) override {
        double v = state.at("version").data<float>()(0);
        if (v < 0)
            throw xg::Error("Stateful: expected a version >= 0 (got " + std::to_string(v) + ")");
        version = v;
    }
    std::shared_ptr<xg::nn::Linear> linear;
    double version = 1;
};

// Two Stateful children, so one extra state can be set before another fails.
std::shared_ptr<xg::nn::Sequential> make_model() {
    xg::manual_seed(11);
    return std::make_shared<xg::nn::Sequential>(std::initializer_list<std::shared_ptr<Module>>{
        std::make_shared<Stateful>(), std::make_shared<xg::nn::LayerNorm>(xg::Shape{3}),
        std::make_shared<Stateful>()});
}

// Trains the model one step and checks it still runs forward and backward.
void check_usable(Module& m) {
    Tensor x = xg::randn({2, 3});
    Tensor loss = xg::sum(m(x) * m(x));
    loss.backward();
    for (const auto& p : m.parameters()) CHECK(p.grad().defined());
    m.zero_grad();
    CHECK_NOTHROW(m.load_state_dict(m.state_dict()));
}

}  // namespace

TEST_CASE("a failing load_state_dict changes nothing") {
    auto model = make_model();
    Snapshot before(*model);
    // A valid state with different values: anything applied by mistake would show.
    xg::StateDict good;
    for (const auto& [key, t] : model->state_dict()) good.insert_or_assign(key, xg::ones_like(t));
    good.insert_or_assign("0._extra_state.version", xg::full({1}, 5.0));

    auto with = [&](const std::string& key, Tensor value) {
        xg::StateDict s = good;
        s.insert_or_assign(key, value);
        return s;
    };
    auto without = [&](const std::string& key) {
        xg::StateDict s = good;
        s.erase(key);
        return s;
    };
    struct Case {
        const char* what;
        xg::StateDict state;
        bool strict;
    };
    std::vector<Case> cases = {
        {"a size mismatch in the last module", with("2.linear.weight", xg::ones({3, 4})), true},
        {"a size mismatch, not strict", with("0.running", xg::ones({4}, xg::kFloat64)), false},
        {"a missing key", without("1.bias"), true},
        {"an unexpected key", with("1.extra", xg::ones({1})), true},
        {"an undefined tensor", with("0.linear.bias", Tensor()), true},
        {"extra state the second module rejects",
         with("2._extra_state.version", xg::full({1}, -1.0)), true},
        {"extra state missing", without("0._extra_state.version"), true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        CHECK_THROWS_AS(model->load_state_dict(c.state, c.strict), xg::Error);
        CHECK(Snapshot(*model) == before);
        CHECK_THROWS_AS(model->load_state_dict(c.state, c.strict, /*assign=*/true), xg::Error);
        CHECK(Snapshot(*model) == before);
    }
    auto* first = dynamic_cast<Stateful*>(model->children()[0].get());
    CHECK(first->version == 1);  // not set by the load that failed on the third child

    // A pre hook that throws half way through the tree.
    auto handle = model->children()[1]->register_load_state_dict_pre_hook(
        [](Module&, xg::StateDict&, const std::string&) { throw xg::Error("hook: refused"); });
    CHECK_THROWS_WITH_AS(model->load_state_dict(good), "hook: refused", xg::Error);
    CHECK(Snapshot(*model) == before);
    handle.remove();

    check_usable(*model);
    model->load_state_dict(good);
    CHECK_FALSE(Snapshot(*model) == before);
}

TEST_CASE("a failing optimizer load_state_dict changes nothing") {
    auto model = make_model();
    auto params = model->parameters();
    xg::optim::Adam adam(params, xg::optim::AdamOptions(1e-2).weight_decay(0.1));
    Tensor x = xg::randn({4, 3});
    auto step = [&](xg::optim::Optimizer& opt) {
        opt.zero_grad();
        xg::sum((*model)(x) * (*model)(x)).backward();
        opt.step();
    };
    step(adam);
    xg::optim::OptimizerState saved = adam.state_dict();

    auto same = [](const xg::optim::OptimizerState& a, const xg::optim::OptimizerState& b) {
        if (a.state.size() != b.state.size() || a.param_groups.size() != b.param_groups.size())
            return false;
        for (std::size_t g = 0; g < a.param_groups.size(); ++g) {
            if (a.param_groups[g].options != b.param_groups[g].options ||
                a.param_groups[g].params != b.param_groups[g].params)
                return false;
        }
        for (std::size_t i = 0; i < a.state.size(); ++i) {
            if (a.state[i].first != b.state[i].first ||
                a.state[i].second.keys() != b.state[i].second.keys())
                return false;
            for (const auto& [key, t] : a.state[i].second) {
                const Tensor& u = b.state[i].second.at(key);
                if (t.shape() != u.shape() ||
                    xg::sum(xg::abs(t.to(xg::kFloat64) - u.to(xg::kFloat64))).item<double>() != 0)
                    return false;
            }
        }
        return true;
    };

    std::vector<std::pair<const char*, xg::optim::OptimizerState>> bad;
    {
        auto s = saved;
        s.param_groups.push_back(s.param_groups[0]);
        bad.emplace_back("two groups", s);
    }
    {
        auto s = saved;
        s.param_groups[0].params.pop_back();
        bad.emplace_back("a parameter short", s);
    }
    {
        auto s = saved;
        s.param_groups[0].options.emplace_back("momentum_typo", 0.9);
        bad.emplace_back("an unknown option", s);
    }
    {
        auto s = saved;
        for (auto& [key, value] : s.param_groups[0].options) {
            if (key == "lr") value = -1.0;
        }
        bad.emplace_back("an invalid lr", s);
    }
    {
        auto s = saved;
        s.state.back().second.insert_or_assign("exp_avg", xg::ones({7}));
        bad.emplace_back("a state of the wrong shape, last", s);
    }
    {
        auto s = saved;
        s.state.emplace_back(999, s.state[0].second);
        bad.emplace_back("state for a position that does not exist", s);
    }
    // A twin optimizer that never sees a failure: both must step identically afterwards.
    for (const auto& [what, state] : bad) {
        const std::string& failure = what;  // CAPTURE's lambda cannot name a binding in clang 14
        CAPTURE(failure);
        xg::optim::OptimizerState before = adam.state_dict();
        CHECK_THROWS_AS(adam.load_state_dict(state), xg::Error);
        CHECK(same(adam.state_dict(), before));
    }
    Snapshot model_before(*model);
    step(adam);
    CHECK_FALSE(Snapshot(*model) == model_before);  // still trains
    CHECK_NOTHROW(adam.load_state_dict(saved));
    CHECK(same(adam.state_dict(), saved));
}

TEST_CASE("failing set_submodule and register_* change nothing") {
    auto model = make_model();
    Snapshot before(*model);
    auto* stateful = dynamic_cast<Stateful*>(model->children()[0].get());
    auto linear = std::make_shared<xg::nn::Linear>(3, 3);

    CHECK_THROWS_AS(model->set_submodule("", linear), xg::Error);
    CHECK_THROWS_AS(model->set_submodule("9.linear", linear), xg::Error);         // no such parent
    CHECK_THROWS_AS(model->set_submodule("0.running", linear), xg::Error);        // a buffer's name
    CHECK_THROWS_AS(model->set_submodule("0.linear.weight", linear), xg::Error);  // a parameter's
    CHECK_THROWS_AS(model->set_submodule("1.a.b", linear), xg::Error);
    CHECK(Snapshot(*model) == before);

    Tensor non_leaf = xg::ones({3}).requires_grad_() * 2.0;
    CHECK_THROWS_AS(stateful->register_parameter("", xg::ones({3})), xg::Error);
    CHECK_THROWS_AS(stateful->register_parameter("a.b", xg::ones({3})), xg::Error);
    CHECK_THROWS_AS(stateful->register_parameter("running", xg::ones({3})), xg::Error);
    CHECK_THROWS_AS(stateful->register_parameter("linear", xg::ones({3})), xg::Error);
    CHECK_THROWS_AS(stateful->register_parameter("fresh", non_leaf), xg::Error);
    CHECK_THROWS_AS(stateful->register_buffer("linear", xg::ones({3})), xg::Error);
    CHECK_THROWS_AS(stateful->register_buffer("running.x", xg::ones({3}), false), xg::Error);
    CHECK_THROWS_AS(stateful->register_module("running", linear), xg::Error);
    CHECK_THROWS_AS(stateful->register_module("", linear), xg::Error);
    CHECK_THROWS_AS(stateful->add_module("count", linear), xg::Error);
    CHECK(Snapshot(*model) == before);
    CHECK(non_leaf.requires_grad());

    check_usable(*model);
    // And the same calls with good names work afterwards.
    model->set_submodule("0.extra", linear);
    stateful->register_buffer("fresh", xg::ones({1}));
    CHECK(model->get_submodule("0.extra") == linear);
}

}  // namespace nn_test_exception_safety
