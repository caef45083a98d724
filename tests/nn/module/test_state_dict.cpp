// Module state: state_dict keys and values, extra state, load_state_dict in
// every mode, PyTorch's error text, and the state_dict / load hooks.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"
#include "nn/module/reference/reference_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_state_dict {

using Names = std::vector<std::string>;

namespace {

// Extra state: a step counter and a seed, neither parameter nor buffer.
struct Counter : xg::nn::Module {
    Counter() {
        w = register_parameter("w", mt::values({2}));
        register_buffer("n", xg::zeros({1}, xg::kFloat64));
        register_module("fc", std::make_shared<mt::TinyLinear>(2, 2));
    }
    xg::StateDict get_extra_state() const override {
        return {{"step", xg::full({}, step, xg::kFloat64)}, {"seed", xg::full({}, 7.0)}};
    }
    void set_extra_state(const xg::StateDict& state) override {
        step = state.at("step").item<double>();
        ++set_calls;
    }
    xg::Tensor w;
    double step = 0.0;
    int set_calls = 0;
};

// Extra state it refuses when the step is negative, after counting the call.
struct Picky : Counter {
    void set_extra_state(const xg::StateDict& state) override {
        ++set_calls;
        if (state.at("step").item<double>() < 0) throw xg::Error("Picky: refusing a negative step");
        step = state.at("step").item<double>();
    }
};

struct Holder : xg::nn::Module {
    Holder() {
        register_parameter("p", xg::zeros({1}, xg::kFloat64));
        c = register_module("c", std::make_shared<Counter>());
    }
    std::shared_ptr<Counter> c;
};

// Every state_dict value, copied, so a later comparison is bit for bit.
std::vector<std::pair<std::string, std::vector<double>>> snapshot(xg::nn::Module& m) {
    std::vector<std::pair<std::string, std::vector<double>>> out;
    for (auto& [key, t] : m.state_dict()) out.emplace_back(key, mt::flat(t));
    for (auto& [key, t] : m.named_buffers()) out.emplace_back("buffer " + key, mt::flat(t));
    return out;
}

}  // namespace

TEST_CASE("Module state_dict: keys match PyTorch, non-persistent buffers absent") {
    auto net = std::make_shared<mt::Net>();
    xg::StateDict sd = net->state_dict();
    CHECK(sd.keys() == module_ref::net_state_dict_keys);
    CHECK(net->state_dict("p.").keys() == module_ref::net_state_dict_keys_prefix);
    auto deep = std::make_shared<mt::Deep>();
    CHECK(deep->state_dict().keys() == module_ref::deep_state_dict_keys);
    for (const auto& key : deep->state_dict().keys()) {
        CHECK(key.find("scratch") == std::string::npos);
        CHECK(key.find("tmp") == std::string::npos);
    }
}

TEST_CASE("Module state_dict: values are detached views unless keep_vars") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    xg::StateDict sd = lin->state_dict();
    const xg::Tensor& w = sd.at("weight");
    CHECK_FALSE(w.requires_grad());
    CHECK(w.impl() != lin->weight.impl());
    // Detached, not copied: the storage is shared, as in PyTorch.
    lin->weight.data<double>()(0, 0) = 42.0;
    CHECK(w.data<double>()(0, 0) == 42.0);

    xg::StateDict vars = lin->state_dict("", /*keep_vars=*/true);
    CHECK(vars.at("weight").impl() == lin->weight.impl());
    CHECK(vars.at("weight").requires_grad());
}

TEST_CASE("Module state_dict: extra state sits after buffers, before children") {
    // Hand-derived: PyTorch saves one "<prefix>_extra_state" object right after the
    // persistent buffers; xgrad's extra state is a StateDict saved key by key under it.
    auto holder = std::make_shared<Holder>();
    holder->c->step = 3.0;
    xg::StateDict sd = holder->state_dict();
    CHECK(sd.keys() == Names{"p", "c.w", "c.n", "c._extra_state.step", "c._extra_state.seed",
                             "c.fc.weight", "c.fc.bias", "c.fc.running_mean"});
    CHECK(sd.at("c._extra_state.step").item<double>() == 3.0);

    auto other = std::make_shared<Holder>();
    auto keys = other->load_state_dict(sd);
    CHECK(keys.missing_keys.empty());
    CHECK(keys.unexpected_keys.empty());
    CHECK(other->c->step == 3.0);
    CHECK(other->c->set_calls == 1);

    // Without its extra state the module reports "<prefix>_extra_state" missing.
    xg::StateDict partial;
    for (auto& [key, t] : sd) {
        if (key.find("_extra_state") == std::string::npos) partial.insert_or_assign(key, t);
    }
    auto third = std::make_shared<Holder>();
    auto result = third->load_state_dict(partial, /*strict=*/false);
    CHECK(result.missing_keys == Names{"c._extra_state"});
    CHECK(result.unexpected_keys.empty());
    CHECK(third->c->set_calls == 0);
    CHECK_THROWS_WITH_AS(third->load_state_dict(partial),
                         "Error(s) in loading state_dict for Holder:\n\tMissing key(s) in "
                         "state_dict: \"c._extra_state\". ",
                         xg::Error);
}

TEST_CASE("Module load_state_dict: values are copied into the existing tensors") {
    auto source = std::make_shared<mt::Deep>();
    source->apply([](xg::nn::Module& m) {
        for (auto& p : m.parameters(false)) p.data<double>().fill(0.25);
    });
    source->block->get_buffer("count").data<double>().fill(9.0);
    auto target = std::make_shared<mt::Deep>();
    xg::TensorImpl* weight_impl = target->head->weight.impl();
    auto result = target->load_state_dict(source->state_dict());
    CHECK(result.missing_keys.empty());
    CHECK(result.unexpected_keys.empty());
    CHECK(target->head->weight.impl() == weight_impl);  // handles stay valid
    for (double v : mt::flat(target->head->weight)) CHECK(v == 0.25);
    CHECK(mt::flat(target->block->get_buffer("count")) == std::vector<double>{9.0});
    CHECK(target->head->weight.requires_grad());
    // Copied, not shared: changing the source afterwards changes nothing.
    source->head->weight.data<double>().fill(-1.0);
    for (double v : mt::flat(target->head->weight)) CHECK(v == 0.25);
}

TEST_CASE("Module load_state_dict: strict error lists missing, unexpected and mis-sized keys") {
    auto net = std::make_shared<mt::Net2>();
    xg::StateDict sd = std::make_shared<mt::Net2>()->state_dict();
    for (auto& [key, t] : sd) t = t.detach().clone() + 1.0;  // different values everywhere
    sd.erase("a.bias");
    sd.insert_or_assign("zzz", xg::zeros({1}));
    sd.insert_or_assign("b.weight", xg::zeros({3, 3}, xg::kFloat64));
    auto before = snapshot(*net);
    CHECK_THROWS_WITH_AS(net->load_state_dict(sd), module_ref::load_error_net.c_str(), xg::Error);
    CHECK(snapshot(*net) == before);  // a failed load changes nothing

    // A size mismatch fails even when strict is false, as in PyTorch; then only it is listed.
    CHECK_THROWS_WITH_AS(net->load_state_dict(sd, /*strict=*/false),
                         "Error(s) in loading state_dict for Net2:\n\tsize mismatch for b.weight: "
                         "copying a param with shape [3, 3] from checkpoint, the shape in current "
                         "model is [2, 4].",
                         xg::Error);
    CHECK(snapshot(*net) == before);

    // Missing or unexpected keys alone fail a strict load just as cleanly.
    xg::StateDict only_extra = std::make_shared<mt::Net2>()->state_dict();
    for (auto& [key, t] : only_extra) t = t.detach().clone() + 1.0;
    only_extra.insert_or_assign("zzz", xg::zeros({1}));
    CHECK_THROWS_WITH_AS(net->load_state_dict(only_extra),
                         "Error(s) in loading state_dict for Net2:\n\tUnexpected key(s) in "
                         "state_dict: \"zzz\". ",
                         xg::Error);
    CHECK(snapshot(*net) == before);
}

TEST_CASE("Module load_state_dict: strict=false returns missing and unexpected keys") {
    auto net = std::make_shared<mt::Net2>();
    xg::StateDict sd = std::make_shared<mt::Net2>()->state_dict();
    sd.erase("a.bias");
    sd.erase("b.weight");
    sd.insert_or_assign("zzz", xg::zeros({1}));
    sd.at("a.weight") = xg::full({2, 3}, 5.0, xg::kFloat64);
    auto result = net->load_state_dict(sd, /*strict=*/false);
    CHECK(result.missing_keys == module_ref::load_nonstrict_missing);
    CHECK(result.unexpected_keys == module_ref::load_nonstrict_unexpected);
    for (double v : mt::flat(net->a->weight)) CHECK(v == 5.0);  // the rest is loaded

    // Unexpected keys are found at every level: under a child's prefix too.
    sd.insert_or_assign("a.extra", xg::zeros({1}));
    result = net->load_state_dict(sd, false);
    CHECK(result.unexpected_keys == Names{"zzz", "a.extra"});
    // A non-persistent buffer is not part of the state: its key is unexpected.
    sd.insert_or_assign("b.scratch", xg::zeros({1}, xg::kFloat64));
    result = net->load_state_dict(sd, false);
    CHECK(result.unexpected_keys == Names{"zzz", "a.extra", "b.scratch"});
}

TEST_CASE("Module load_state_dict: the model's dtype wins") {
    auto net = std::make_shared<mt::Net2>();  // float64
    xg::StateDict sd;
    for (auto& [key, t] : net->state_dict()) sd.insert_or_assign(key, xg::full(t.shape(), 0.1));
    REQUIRE(sd.at("a.weight").dtype() == xg::kFloat32);
    net->load_state_dict(sd);
    CHECK(net->a->weight.dtype() == xg::kFloat64);
    for (double v : mt::flat(net->a->weight)) CHECK(v == static_cast<double>(0.1f));
    // assign=true with another dtype converts too.
    net->load_state_dict(sd, true, /*assign=*/true);
    CHECK(net->b->weight.dtype() == xg::kFloat64);
}

TEST_CASE("Module load_state_dict: assign=true takes the checkpoint's tensors") {
    auto net = std::make_shared<mt::Net2>();
    xg::StateDict sd;
    for (auto& [key, t] : net->state_dict()) {
        sd.insert_or_assign(key, xg::full(t.shape(), 2.0, xg::kFloat64));
    }
    xg::Tensor w = net->a->weight;
    net->load_state_dict(sd, true, /*assign=*/true);
    CHECK(net->a->weight.impl() == w.impl());  // the handle stays valid
    CHECK(net->a->weight.requires_grad());     // requires_grad stays the module's
    for (double v : mt::flat(w)) CHECK(v == 2.0);
    // The values are the checkpoint's own storage, not a copy.
    sd.at("a.weight").data<double>().fill(3.0);
    for (double v : mt::flat(net->a->weight)) CHECK(v == 3.0);
}

TEST_CASE("Module load_state_dict: a module registered twice loads from both keys") {
    auto net = std::make_shared<mt::Net>();
    xg::StateDict sd = net->state_dict();
    CHECK(sd.contains("a2.weight"));
    auto result = std::make_shared<mt::Net>()->load_state_dict(sd);
    CHECK(result.missing_keys.empty());
    CHECK(result.unexpected_keys.empty());
}

TEST_CASE("Module state_dict hooks: pre hooks see each prefix, post hooks may edit") {
    auto deep = std::make_shared<mt::Deep>();
    std::vector<std::string> trace;
    deep->register_state_dict_pre_hook([&](xg::nn::Module& m, const std::string& prefix, bool kv) {
        trace.push_back("pre:" + m.name() + ":" + prefix + (kv ? ":kv" : ""));
    });
    deep->block->register_state_dict_pre_hook(
        [&](xg::nn::Module& m, const std::string& prefix, bool) {
            trace.push_back("pre:" + m.name() + ":" + prefix);
        });
    deep->block->register_state_dict_post_hook(
        [&](xg::nn::Module& m, xg::StateDict& sd, const std::string& prefix) {
            trace.push_back("post:" + m.name() + ":" + prefix);
            sd.erase(prefix + "count");
            sd.insert_or_assign(prefix + "note", xg::zeros({1}));
        });
    auto handle = deep->register_state_dict_post_hook(
        [&](xg::nn::Module& m, xg::StateDict& sd, const std::string& prefix) {
            trace.push_back("post:" + m.name() + ":" + prefix + std::to_string(sd.size()));
        });
    xg::StateDict sd = deep->state_dict("", true);
    CHECK(trace == Names{"pre:Deep::kv", "pre:Block:block.", "post:Block:block.", "post:Deep:13"});
    CHECK_FALSE(sd.contains("block.count"));
    CHECK(sd.keys().back() == "head.running_mean");
    CHECK(sd.contains("block.note"));
    handle.remove();
    trace.clear();
    deep->state_dict("x.");
    CHECK(trace == Names{"pre:Deep:x.", "pre:Block:x.block.", "post:Block:x.block."});
}

TEST_CASE("Module load_state_dict hooks: pre hooks may rewrite keys, post hooks may forgive") {
    auto net = std::make_shared<mt::Net2>();
    xg::StateDict old_format;  // a checkpoint whose "a.*" keys are called "first.*"
    for (auto& [key, t] : std::make_shared<mt::Net2>()->state_dict()) {
        std::string renamed = key.starts_with("a.") ? "first." + key.substr(2) : key;
        old_format.insert_or_assign(renamed, xg::full(t.shape(), 1.5, xg::kFloat64));
    }
    CHECK_THROWS_AS(net->load_state_dict(old_format), xg::Error);
    auto pre = net->register_load_state_dict_pre_hook(
        [](xg::nn::Module&, xg::StateDict& sd, const std::string& prefix) {
            for (const auto& key : sd.keys()) {
                if (key.starts_with(prefix + "first.")) {
                    sd.insert_or_assign(prefix + "a." + key.substr(prefix.size() + 6), sd.at(key));
                    sd.erase(key);
                }
            }
        });
    auto result = net->load_state_dict(old_format);
    CHECK(result.missing_keys.empty());
    CHECK(result.unexpected_keys.empty());
    for (double v : mt::flat(net->a->weight)) CHECK(v == 1.5);
    CHECK(old_format.contains("first.weight"));  // the caller's dict is untouched
    pre.remove();

    // A post hook sees the incompatible keys and may clear them, so a strict load passes.
    std::vector<std::string> order;
    xg::StateDict partial = net->state_dict();
    partial.erase("b.bias");
    net->b->register_load_state_dict_post_hook(
        [&](xg::nn::Module& m, xg::nn::IncompatibleKeys& keys) {
            order.push_back(m.name() + ":" + std::to_string(keys.missing_keys.size()));
        });
    net->register_load_state_dict_post_hook([&](xg::nn::Module& m, xg::nn::IncompatibleKeys& keys) {
        order.push_back(m.name() + ":" + std::to_string(keys.missing_keys.size()));
        std::erase(keys.missing_keys, "b.bias");
    });
    CHECK_NOTHROW(net->load_state_dict(partial));
    CHECK(order == Names{"TinyLinear:1", "Net2:1"});  // children first, as PyTorch
}

TEST_CASE("Module load_state_dict: a strict load its post hooks do not forgive changes nothing") {
    // Post hooks run after the values are in (they judge the final key lists),
    // so a failed verdict must put every value and the extra state back.
    auto holder = std::make_shared<Holder>();
    holder->c->step = 3.0;
    auto before = snapshot(*holder);
    xg::StateDict checkpoint;
    for (auto& [key, t] : holder->state_dict()) {
        checkpoint.insert_or_assign(key, xg::full(t.shape(), 5.0, t.dtype()));
    }
    checkpoint.erase("p");
    int hook_calls = 0;
    auto handle = holder->c->register_load_state_dict_post_hook(
        [&](xg::nn::Module&, xg::nn::IncompatibleKeys&) { ++hook_calls; });
    for (bool assign : {false, true}) {
        CAPTURE(assign);
        xg::Tensor w = holder->c->w;
        const void* data = w.data<double>().data();
        CHECK_THROWS_WITH_AS(holder->load_state_dict(checkpoint, true, assign),
                             doctest::Contains("Missing key(s) in state_dict: \"p\""), xg::Error);
        CHECK(snapshot(*holder) == before);
        CHECK(holder->c->step == 3.0);
        CHECK(holder->c->w.data<double>().data() == data);  // the same storage, not a copy
    }
    CHECK(hook_calls == 2);  // the hook ran with the values in, then they came back out
}

TEST_CASE("Module load_state_dict: a post hook that throws leaves the model unchanged") {
    auto holder = std::make_shared<Holder>();
    auto before = snapshot(*holder);
    xg::StateDict checkpoint;
    for (auto& [key, t] : holder->state_dict()) {
        checkpoint.insert_or_assign(key, xg::full(t.shape(), 5.0, t.dtype()));
    }
    auto handle = holder->register_load_state_dict_post_hook(
        [](xg::nn::Module& m, xg::nn::IncompatibleKeys&) {
            throw xg::Error(m.name() + ": refusing this checkpoint");
        });
    CHECK_THROWS_WITH_AS(holder->load_state_dict(checkpoint, false),
                         "Holder: refusing this checkpoint", xg::Error);
    CHECK(snapshot(*holder) == before);
    handle.remove();
    holder->load_state_dict(checkpoint);  // and without the hook it does load
    for (double v : mt::flat(holder->c->w)) CHECK(v == 5.0);
}

TEST_CASE("Module load_state_dict: a set_extra_state that throws leaves the model unchanged") {
    // Two modules with extra state: the first takes its state, the second refuses
    // its own, so the first must be given its state back.
    struct Pair : xg::nn::Module {
        Pair() {
            first = register_module("first", std::make_shared<Counter>());
            second = register_module("second", std::make_shared<Picky>());
        }
        std::shared_ptr<Counter> first;
        std::shared_ptr<Picky> second;
    };
    auto pair = std::make_shared<Pair>();
    pair->first->step = 2.0;
    pair->second->step = 4.0;
    auto before = snapshot(*pair);
    xg::StateDict checkpoint;
    for (auto& [key, t] : pair->state_dict()) {
        checkpoint.insert_or_assign(key, xg::full(t.shape(), -1.0, t.dtype()));
    }
    int hook_calls = 0;
    for (bool with_post_hook : {false, true}) {
        CAPTURE(with_post_hook);
        xg::RemovableHandle handle;
        if (with_post_hook) {
            handle = pair->register_load_state_dict_post_hook(
                [&](xg::nn::Module&, xg::nn::IncompatibleKeys&) { ++hook_calls; });
        }
        int first_calls = pair->first->set_calls;
        CHECK_THROWS_WITH_AS(pair->load_state_dict(checkpoint), "Picky: refusing a negative step",
                             xg::Error);
        CHECK(snapshot(*pair) == before);
        CHECK(pair->first->step == 2.0);
        CHECK(pair->first->set_calls == first_calls + 2);  // set, then set back
        CHECK(pair->second->step == 4.0);
    }
    CHECK(hook_calls == 0);  // the load failed before its post hooks could run
}

}  // namespace nn_module_test_state_dict
