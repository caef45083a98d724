// Module hooks: forward pre / forward hooks (replacing, prepend, removal,
// always_call), full backward pre / backward hooks (values, replacement, calls
// in one graph), global hooks, and hook order against a PyTorch trace.
#include <algorithm>
#include <functional>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"
#include "nn/module/reference/reference_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_hooks {

using Names = std::vector<std::string>;
using xg::Tensor;
using xg::nn::Module;

namespace {

struct Failing : Module {
    Tensor forward(const Tensor&) override { throw xg::Error("Failing: forward failed"); }
};

// The label each module of a Chain carries in the PyTorch trace.
std::string label(Module& root, Module& m) {
    for (auto& [path, module] : root.named_modules()) {
        if (module.get() == &m) return path.empty() ? "root" : path;
    }
    return "?";
}

// Registers on a Chain and all its modules the hooks gen_reference.py registers.
std::vector<xg::RemovableHandle> trace_hooks(Module& root, Names& trace) {
    auto none = [](const std::vector<Tensor>& gi) { return gi.at(0).defined() ? "" : "(none)"; };
    std::vector<xg::RemovableHandle> handles{
        xg::nn::register_module_forward_pre_hook(
            [&](Module& m, const Tensor&) { trace.push_back("gpre:" + label(root, m)); }),
        xg::nn::register_module_forward_hook([&](Module& m, const Tensor&, const Tensor&) {
            trace.push_back("gfwd:" + label(root, m));
        }),
        xg::nn::register_module_full_backward_hook(
            [&, none](Module& m, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
                trace.push_back("gbwd:" + label(root, m) + none(gi));
            }),
    };
    for (auto& [path, module] : root.named_modules()) {
        std::string n = path.empty() ? "root" : path;
        handles.push_back(module->register_forward_pre_hook(
            [&trace, n](Module&, const Tensor&) { trace.push_back("pre:" + n); }));
        handles.push_back(module->register_forward_hook(
            [&trace, n](Module&, const Tensor&, const Tensor&) { trace.push_back("fwd:" + n); }));
        handles.push_back(module->register_full_backward_hook(
            [&trace, n, none](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
                trace.push_back("bwd:" + n + none(gi));
            }));
    }
    handles.push_back(root.register_forward_hook(
        [&trace](Module&, const Tensor&, const Tensor&) { trace.push_back("fwd2:root"); }));
    return handles;
}

Names run_trace(bool x_requires_grad) {
    auto chain = std::make_shared<mt::Chain>();
    Names trace;
    auto handles = trace_hooks(*chain, trace);
    Tensor x = mt::values({2, 3}, 0.3);
    x.requires_grad_(x_requires_grad);
    Tensor y = (*chain)(x);
    trace.push_back("backward");
    xg::sum(y).backward();
    for (auto& h : handles) h.remove();
    return trace;
}

}  // namespace

TEST_CASE("Module hooks: forward pre hook replaces the input, forward hook the output") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    Tensor x = mt::values({2, 3}, 0.3);
    Tensor plain = (*lin)(x);
    auto pre = lin->register_forward_pre_hook([](Module&, const Tensor& in) { return in * 2.0; });
    CHECK(mt::near(mt::flat((*lin)(x)), mt::flat(lin->forward(x * 2.0))));
    // Forward hooks see the input forward saw: the replaced one.
    Tensor hooked_input;
    auto watch = lin->register_forward_hook(
        [&](Module&, const Tensor& in, const Tensor&) { hooked_input = in; });
    (*lin)(x);
    CHECK(mt::near(mt::flat(hooked_input), mt::flat(x * 2.0)));
    watch.remove();
    pre.remove();
    CHECK(mt::flat((*lin)(x)) == mt::flat(plain));

    Tensor seen_input, seen_output;
    lin->register_forward_hook([&](Module&, const Tensor& in, const Tensor& out) {
        seen_input = in;
        seen_output = out;
    });
    auto post = lin->register_forward_hook(
        [](Module&, const Tensor&, const Tensor& out) { return out + 1.0; });
    Tensor y = (*lin)(x);
    CHECK(seen_input.impl() == x.impl());
    CHECK(mt::flat(seen_output) == mt::flat(plain));
    CHECK(mt::near(mt::flat(y), mt::flat(plain + 1.0)));
    post.remove();
    post.remove();  // idempotent
    CHECK(mt::flat((*lin)(x)) == mt::flat(plain));
}

TEST_CASE("Module hooks: has_hooks counts forward and backward hooks, own or global") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    auto other = std::make_shared<mt::TinyLinear>(3, 2);
    CHECK_FALSE(lin->has_hooks());
    std::vector<xg::RemovableHandle> own{
        lin->register_forward_pre_hook([](Module&, const Tensor&) {}),
        lin->register_forward_hook([](Module&, const Tensor&, const Tensor&) {}),
        lin->register_full_backward_pre_hook([](Module&, const std::vector<Tensor>&) {}),
        lin->register_full_backward_hook(
            [](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {})};
    CHECK_FALSE(other->has_hooks());
    for (auto& handle : own) {  // any one of them is enough
        CHECK(lin->has_hooks());
        handle.remove();
    }
    CHECK_FALSE(lin->has_hooks());

    std::vector<std::function<xg::RemovableHandle()>> global{
        [] { return xg::nn::register_module_forward_pre_hook([](Module&, const Tensor&) {}); },
        [] {
            return xg::nn::register_module_forward_hook(
                [](Module&, const Tensor&, const Tensor&) {});
        },
        [] {
            return xg::nn::register_module_full_backward_pre_hook(
                [](Module&, const std::vector<Tensor>&) {});
        },
        [] {
            return xg::nn::register_module_full_backward_hook(
                [](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {});
        }};
    for (auto& add : global) {
        auto handle = add();
        CHECK(lin->has_hooks());
        CHECK(other->has_hooks());
        handle.remove();
        CHECK_FALSE(other->has_hooks());
    }
    // State-dict hooks do not run on a call.
    lin->register_state_dict_pre_hook([](Module&, const std::string&, bool) {});
    CHECK_FALSE(lin->has_hooks());
}

TEST_CASE("Module hooks: registration order, prepend and removal") {
    // Hand-derived (torch 1.13 has no prepend): PyTorch puts a prepended hook first.
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    Names trace;
    auto record = [&](std::string tag) {
        return [&trace, tag](Module&, const Tensor&) { trace.push_back(tag); };
    };
    auto record_fwd = [&](std::string tag) {
        return [&trace, tag](Module&, const Tensor&, const Tensor&) { trace.push_back(tag); };
    };
    lin->register_forward_pre_hook(record("pre1"));
    auto pre2 = lin->register_forward_pre_hook(record("pre2"));
    lin->register_forward_pre_hook(record("pre0"), /*prepend=*/true);
    lin->register_forward_hook(record_fwd("fwd1"));
    lin->register_forward_hook(record_fwd("fwd0"), /*prepend=*/true);
    lin->register_forward_hook(record_fwd("fwd2"));
    (*lin)(mt::values({1, 3}));
    CHECK(trace == Names{"pre0", "pre1", "pre2", "fwd0", "fwd1", "fwd2"});
    trace.clear();
    pre2.remove();
    (*lin)(mt::values({1, 3}));
    CHECK(trace == Names{"pre0", "pre1", "fwd0", "fwd1", "fwd2"});

    // A hook may remove itself while running; the others of this call still run.
    trace.clear();
    xg::RemovableHandle self;
    self = lin->register_forward_pre_hook([&](Module&, const Tensor&) {
        trace.push_back("once");
        self.remove();
    });
    (*lin)(mt::values({1, 3}));
    (*lin)(mt::values({1, 3}));
    CHECK(std::count(trace.begin(), trace.end(), "once") == 1);
}

TEST_CASE("Module hooks: always_call forward hooks run when forward throws") {
    auto failing = std::make_shared<Failing>();
    Names trace;
    failing->register_forward_hook(
        [&](Module&, const Tensor&, const Tensor&) { trace.push_back("plain"); });
    failing->register_forward_hook(
        [&](Module&, const Tensor&, const Tensor& out) {
            trace.push_back(out.defined() ? "always(out)" : "always(no out)");
        },
        false, /*always_call=*/true);
    auto global = xg::nn::register_module_forward_hook(
        [&](Module&, const Tensor&, const Tensor&) { trace.push_back("global always"); },
        /*always_call=*/true);
    CHECK_THROWS_WITH_AS((*failing)(xg::zeros({1})), "Failing: forward failed", xg::Error);
    global.remove();
    CHECK(trace == Names{"global always", "always(no out)"});

    // A throwing always_call hook does not mask forward's error.
    failing->register_forward_hook(
        [](Module&, const Tensor&, const Tensor&) { throw xg::Error("hook failed"); }, false, true);
    CHECK_THROWS_WITH_AS((*failing)(xg::zeros({1})), "Failing: forward failed", xg::Error);
}

TEST_CASE("Module hooks: order over a container matches PyTorch's trace") {
    CHECK(run_trace(true) == module_ref::hook_trace_input_grad);
    // When the input needs no grad, grad_input is undefined and a module's backward
    // hooks fire as soon as its grad_output is known.
    CHECK(run_trace(false) == module_ref::hook_trace_no_input_grad);
}

TEST_CASE("Module hooks: backward pre hooks and prepend over a container") {
    // Hand-derived from PyTorch 2.x (torch 1.13 has no backward pre hooks): a module's
    // pre hooks run when its grad_output is known, global before local, prepended first.
    auto chain = std::make_shared<mt::Chain>();
    Names trace;
    std::vector<xg::RemovableHandle> handles{
        xg::nn::register_module_full_backward_pre_hook([&](Module& m, const std::vector<Tensor>&) {
            trace.push_back("gbpre:" + label(*chain, m));
        })};
    for (auto& [path, module] : chain->named_modules()) {
        std::string n = path.empty() ? "root" : path;
        handles.push_back(module->register_full_backward_pre_hook(
            [&trace, n](Module&, const std::vector<Tensor>&) { trace.push_back("bpre:" + n); }));
        handles.push_back(module->register_full_backward_hook(
            [&trace, n](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
                trace.push_back("bwd:" + n);
            }));
        handles.push_back(module->register_full_backward_hook(
            [&trace, n](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
                trace.push_back("bwd0:" + n);
            },
            /*prepend=*/true));
    }
    Tensor x = mt::values({2, 3}, 0.3, 0.0);
    x.requires_grad_();
    xg::sum((*chain)(x)).backward();
    for (auto& h : handles) h.remove();
    CHECK(trace == Names{"gbpre:root", "bpre:root", "gbpre:2", "bpre:2", "bwd0:2", "bwd:2",
                         "gbpre:1", "bpre:1", "bwd0:1", "bwd:1", "gbpre:0", "bpre:0", "bwd0:0",
                         "bwd:0", "bwd0:root", "bwd:root"});
}

TEST_CASE("Module hooks: full backward hook sees PyTorch's grad_input and grad_output") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    std::vector<Tensor> grad_input, grad_output;
    lin->register_full_backward_hook(
        [&](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>& go) {
            grad_input = gi;
            grad_output = go;
        });
    Tensor x = mt::values({2, 3}, 0.3);
    x.requires_grad_();
    Tensor c = xg::tensor<double>(xt::xarray<double>{{1.0, -2.0}, {0.5, 3.0}});
    xg::sum((*lin)(x)*c).backward();
    REQUIRE(grad_input.size() == 1);
    REQUIRE(grad_output.size() == 1);
    CHECK(grad_input[0].shape() == xg::Shape{2, 3});
    CHECK(mt::near(mt::flat(grad_input[0]), module_ref::bwd_grad_input));
    CHECK(mt::near(mt::flat(grad_output[0]), module_ref::bwd_grad_output));
    CHECK(mt::near(mt::flat(lin->weight.grad()), module_ref::bwd_weight_grad));
    CHECK(mt::near(mt::flat(x.grad()), module_ref::bwd_x_grad));
    // And by hand: grad_input = grad_output @ W.
    Tensor expected = xg::matmul(c, lin->weight.detach());
    CHECK(mt::near(mt::flat(grad_input[0]), mt::flat(expected)));
}

TEST_CASE("Module hooks: a backward hook doubling grad_input doubles the earlier layer's grads") {
    auto grads = [](bool hook) {
        auto chain = std::make_shared<mt::Chain>();
        if (hook) {
            chain->get_submodule("2")->register_full_backward_hook(
                [](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
                    return std::vector<Tensor>{gi.at(0) * 2.0};
                });
        }
        Tensor x = mt::values({2, 3}, 0.3);
        x.requires_grad_();
        xg::sum((*chain)(x)).backward();
        return std::vector<std::vector<double>>{mt::flat(chain->get_parameter("0.weight").grad()),
                                                mt::flat(chain->get_parameter("0.bias").grad()),
                                                mt::flat(x.grad()),
                                                mt::flat(chain->get_parameter("2.weight").grad())};
    };
    auto plain = grads(false), doubled = grads(true);
    for (int i = 0; i < 3; ++i) {
        std::vector<double> twice;
        for (double v : plain[i]) twice.push_back(2.0 * v);
        CHECK(mt::near(doubled[i], twice));
    }
    CHECK(doubled[3] == plain[3]);  // the hooked layer's own parameters are untouched
}

TEST_CASE("Module hooks: a backward pre hook replaces grad_output") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    Tensor x = mt::values({2, 3}, 0.3);
    x.requires_grad_();
    xg::sum((*lin)(x)).backward();
    std::vector<double> w_plain = mt::flat(lin->weight.grad()), x_plain = mt::flat(x.grad());
    lin->zero_grad();
    x = mt::values({2, 3}, 0.3);
    x.requires_grad_();

    std::vector<Tensor> seen_by_pre, seen_by_hook;
    lin->register_full_backward_pre_hook([&](Module&, const std::vector<Tensor>& go) {
        seen_by_pre = go;
        return std::vector<Tensor>{go.at(0) * 3.0};
    });
    lin->register_full_backward_hook([&](Module&, const std::vector<Tensor>&,
                                         const std::vector<Tensor>& go) { seen_by_hook = go; });
    xg::sum((*lin)(x)).backward();
    CHECK(mt::flat(seen_by_pre.at(0)) == std::vector<double>{1, 1, 1, 1});
    CHECK(mt::flat(seen_by_hook.at(0)) == std::vector<double>{3, 3, 3, 3});  // the replacement
    std::vector<double> w3, x3;
    for (double v : w_plain) w3.push_back(3 * v);
    for (double v : x_plain) x3.push_back(3 * v);
    CHECK(mt::near(mt::flat(lin->weight.grad()), w3));
    CHECK(mt::near(mt::flat(x.grad()), x3));
}

TEST_CASE("Module hooks: a backward hook returning the wrong number of gradients is named") {
    // torch: "Backward hook returned an invalid number of grad_input, got 2, but expected 1".
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    Tensor x = mt::values({2, 3}, 0.3);
    x.requires_grad_();
    auto two = [](const Tensor& g) { return std::vector<Tensor>{g, g}; };
    auto hook =
        lin->register_full_backward_hook([&](Module&, const std::vector<Tensor>& gi,
                                             const std::vector<Tensor>&) { return two(gi.at(0)); });
    CHECK_THROWS_WITH_AS(
        xg::sum((*lin)(x)).backward(),
        "TinyLinear: backward hook returned an invalid number of grad_input, got 2, but expected 1",
        xg::Error);
    hook.remove();
    auto pre = lin->register_full_backward_pre_hook(
        [&](Module&, const std::vector<Tensor>& go) { return two(go.at(0)); });
    CHECK_THROWS_WITH_AS(xg::sum((*lin)(x)).backward(),
                         "TinyLinear: backward pre hook returned an invalid number of grad_output, "
                         "got 2, but expected 1",
                         xg::Error);
}

TEST_CASE("Module hooks: a backward hook may not change a gradient's shape or dtype") {
    // PyTorch's engine refuses the hook node's output: "Function
    // BackwardHookFunctionBackward returned an invalid gradient at index 0 - got [2, 2]
    // but expected shape compatible with [2, 3]".
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    Tensor x = mt::values({2, 3}, 0.3);
    x.requires_grad_();
    auto hook = lin->register_full_backward_hook(
        [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {
            return std::vector<Tensor>{xg::zeros({2, 2}, xg::kFloat64)};
        });
    CHECK_THROWS_WITH_AS(xg::sum((*lin)(x)).backward(),
                         "TinyLinear: backward hook has changed grad_input 0 (was float64 [2, 3] "
                         "got float64 [2, 2])",
                         xg::Error);
    CHECK_FALSE(x.grad().defined());
    hook.remove();
    auto pre = lin->register_full_backward_pre_hook([&](Module&, const std::vector<Tensor>& go) {
        return std::vector<Tensor>{go.at(0).to(xg::kFloat32)};
    });
    CHECK_THROWS_WITH_AS(xg::sum((*lin)(x)).backward(),
                         "TinyLinear: backward pre hook has changed grad_output 0 (was float64 "
                         "[2, 2] got float32 [2, 2])",
                         xg::Error);
}

TEST_CASE("Module hooks: a module called twice in one graph fires its hooks twice") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 3);
    std::vector<std::vector<double>> grad_outputs;
    int pre_calls = 0;
    lin->register_full_backward_pre_hook([&](Module&, const std::vector<Tensor>&) { ++pre_calls; });
    lin->register_full_backward_hook(
        [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>& go) {
            grad_outputs.push_back(mt::flat(go.at(0)));
        });
    Tensor x = mt::values({1, 3}, 0.3);
    x.requires_grad_();
    Tensor h = (*lin)(x);
    xg::sum((*lin)(h)).backward();
    CHECK(pre_calls == 2);
    REQUIRE(grad_outputs.size() == 2);
    // The outer call first: its grad_output is ones; the inner one sees ones @ W.
    CHECK(grad_outputs[0] == std::vector<double>{1, 1, 1});
    CHECK(mt::near(grad_outputs[1],
                   mt::flat(xg::matmul(xg::ones({1, 3}, xg::kFloat64), lin->weight.detach()))));
}

TEST_CASE("Module hooks: an input that needs no grad gives an undefined grad_input") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    std::vector<Tensor> grad_input, grad_output;
    int calls = 0;
    lin->register_full_backward_hook(
        [&](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>& go) {
            ++calls;
            grad_input = gi;
            grad_output = go;
        });
    xg::sum((*lin)(mt::values({2, 3}))).backward();
    CHECK(calls == 1);
    REQUIRE(grad_input.size() == 1);
    CHECK_FALSE(grad_input[0].defined());
    REQUIRE(grad_output.size() == 1);
    CHECK(grad_output[0].shape() == xg::Shape{2, 2});
    CHECK(lin->weight.grad().defined());
}

TEST_CASE("Module hooks: global hooks run for every module until removed") {
    auto chain = std::make_shared<mt::Chain>();
    int pre = 0, fwd = 0, bwd = 0, bpre = 0;
    auto h1 = xg::nn::register_module_forward_pre_hook([&](Module&, const Tensor&) { ++pre; });
    auto h2 = xg::nn::register_module_forward_hook([&](Module&, const Tensor&, const Tensor& out) {
        ++fwd;
        return out;
    });
    auto h3 = xg::nn::register_module_full_backward_hook(
        [&](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) { ++bwd; });
    auto h4 = xg::nn::register_module_full_backward_pre_hook(
        [&](Module&, const std::vector<Tensor>&) { ++bpre; });
    xg::sum((*chain)(mt::values({2, 3}))).backward();
    CHECK(pre == 4);
    CHECK(fwd == 4);
    CHECK(bwd == 4);
    CHECK(bpre == 4);
    // A global forward hook may replace outputs too.
    auto h5 = xg::nn::register_module_forward_hook(
        [](Module&, const Tensor&, const Tensor& out) { return out * 0.0; });
    CHECK(mt::flat((*chain)(mt::values({1, 3}))) == std::vector<double>{0, 0});
    for (auto* h : {&h1, &h2, &h3, &h4, &h5}) h->remove();
    pre = fwd = bwd = bpre = 0;
    xg::sum((*chain)(mt::values({2, 3}))).backward();
    CHECK(pre + fwd + bwd + bpre == 0);
}

TEST_CASE("Module hooks: the graph is freed after backward with backward hooks") {
    long baseline = xg::autograd::Node::live_count();
    {
        auto chain = std::make_shared<mt::Chain>();
        int calls = 0;
        for (auto& m : chain->modules()) {
            m->register_full_backward_hook(
                [&](Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
                    ++calls;
                    return std::vector<Tensor>{gi.at(0)};
                });
            m->register_full_backward_pre_hook([&](Module&, const std::vector<Tensor>&) {});
        }
        Tensor x = mt::values({2, 3}, 0.3);
        x.requires_grad_();
        {
            Tensor loss = xg::sum((*chain)(x));
            CHECK(xg::autograd::Node::live_count() > baseline);
            loss.backward();
        }
        CHECK(calls == 4);
        CHECK(xg::autograd::Node::live_count() == baseline);
        // A forward without backward frees its graph when the output goes.
        { Tensor unused = (*chain)(x); }
        CHECK(xg::autograd::Node::live_count() == baseline);
    }
    CHECK(xg::autograd::Node::live_count() == baseline);
}

TEST_CASE("Module hooks: register_backward_hook, PyTorch's legacy hook, points to the full one") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    CHECK_THROWS_WITH_AS(
        lin->register_backward_hook(
            [](Module&, const std::vector<Tensor>&, const std::vector<Tensor>&) {}),
        "TinyLinear.register_backward_hook: the legacy module backward hook is not supported "
        "(its grad_input would be that of the last op inside forward, not of the module's "
        "inputs); use register_full_backward_hook",
        xg::Error);
    CHECK_FALSE(lin->has_hooks());
}

}  // namespace nn_module_test_hooks
