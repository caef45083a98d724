// Loss modules against PyTorch 1.13 (gen_loss_modules.py): one case per module
// (output and input gradients), then against their functional ops for every
// reduction, printing, weight buffers and the state_dict, construction errors,
// calls through a Module handle, and hooks.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xarray.hpp>

#include "helpers.hpp"
#include "nn/reference/loss_modules_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_loss {

namespace nn = xg::nn;
namespace ref = reference::loss_modules;
using reference::Array;
using reference::lookup;
using xg::Tensor;

namespace {

using Arrays = std::vector<std::pair<std::string, Array>>;
using Inputs = std::vector<Tensor>;

Tensor f64(const Arrays& arrays, const char* name) { return lookup(arrays, name).tensor(); }

Tensor classes(const Array& a) {
    xt::xarray<std::int64_t> indices = xt::cast<std::int64_t>(a.array());
    return xg::tensor<std::int64_t>(indices);
}

// The reductions a module accepts; CosineSimilarity has none ("").
const std::vector<std::string> kReductions{"none", "mean", "sum"};

// One module: the generator's case for it, its inputs in forward's order (the
// last is the target, which gets no gradient, except for CosineSimilarity's
// x2), the module built with the case's options but a given reduction, and the
// functional op it must agree with.
struct Case {
    const char* name;
    const Arrays& arrays;
    std::vector<const char*> inputs;
    std::string reduction;  // the generator's
    std::vector<std::string> reductions;
    std::function<std::shared_ptr<nn::Module>(const Arrays&, const std::string&)> make;
    std::function<Tensor(const Inputs&, const Arrays&, const std::string&)> op;
    bool class_target = false;  // int64 class indices
};

std::vector<Case> cases() {
    using R = const std::string&;
    using A = const Arrays&;
    using I = const Inputs&;
    using std::make_shared;
    const std::vector<const char*> pair{"input", "target"};
    // core's binary_cross_entropy_with_logits has no weight: the module weighs
    // the elementwise loss, then reduces it.
    auto weighted_logits = [](I in, A a, R r) {
        Tensor loss =
            xg::binary_cross_entropy_with_logits(in[0], in[1], "none", f64(a, "pos_weight")) *
            f64(a, "weight");
        return r == "mean" ? xg::mean(loss) : r == "sum" ? xg::sum(loss) : loss;
    };
    auto logits_module = [](A a, R r) {
        return make_shared<nn::BCEWithLogitsLoss>(f64(a, "weight"), r, f64(a, "pos_weight"));
    };
    std::vector<Case> out;
    auto add = [&](const char* name, const Arrays& arrays, std::vector<const char*> inputs,
                   std::string reduction, std::vector<std::string> reductions, auto make, auto op,
                   bool class_target = false) {
        out.push_back({name, arrays, std::move(inputs), std::move(reduction), std::move(reductions),
                       make, op, class_target});
    };
    add(
        "mse", ref::mse, pair, "sum", kReductions,
        [](A, R r) { return make_shared<nn::MSELoss>(r); },
        [](I in, A, R r) { return xg::mse_loss(in[0], in[1], r); });
    add(
        "l1", ref::l1, pair, "mean", kReductions, [](A, R r) { return make_shared<nn::L1Loss>(r); },
        [](I in, A, R r) { return xg::l1_loss(in[0], in[1], r); });
    add(
        "smooth_l1", ref::smooth_l1, pair, "none", kReductions,
        [](A, R r) { return make_shared<nn::SmoothL1Loss>(r, 0.5); },
        [](I in, A, R r) { return xg::smooth_l1_loss(in[0], in[1], r, 0.5); });
    add(
        "huber", ref::huber, pair, "mean", kReductions,
        [](A, R r) { return make_shared<nn::HuberLoss>(r, 0.7); },
        [](I in, A, R r) { return xg::huber_loss(in[0], in[1], r, 0.7); });
    add(
        "cross_entropy", ref::cross_entropy, pair, "mean", kReductions,
        [](A a, R r) { return make_shared<nn::CrossEntropyLoss>(f64(a, "weight"), 1, r, 0.1); },
        [](I in, A a, R r) { return xg::cross_entropy(in[0], in[1], r, f64(a, "weight"), 1, 0.1); },
        true);
    add(
        "nll", ref::nll, pair, "mean", kReductions,
        [](A a, R r) { return make_shared<nn::NLLLoss>(f64(a, "weight"), 2, r); },
        [](I in, A a, R r) { return xg::nll_loss(in[0], in[1], r, f64(a, "weight"), 2); }, true);
    add(
        "bce", ref::bce, pair, "mean", kReductions,
        [](A a, R r) { return make_shared<nn::BCELoss>(f64(a, "weight"), r); },
        [](I in, A a, R r) { return xg::binary_cross_entropy(in[0], in[1], r, f64(a, "weight")); });
    add("bce_logits", ref::bce_logits, pair, "sum", kReductions, logits_module, weighted_logits);
    add("bce_logits_mean", ref::bce_logits_mean, pair, "mean", kReductions, logits_module,
        weighted_logits);
    add(
        "kl_div", ref::kl_div, pair, "batchmean", {"none", "batchmean", "mean", "sum"},
        [](A, R r) { return make_shared<nn::KLDivLoss>(r, true); },
        [](I in, A, R r) { return xg::kl_div(in[0], in[1], r, true); });
    add(
        "cosine_similarity", ref::cosine_similarity, {"x1", "x2"}, "", {""},
        [](A, R) { return make_shared<nn::CosineSimilarity>(0, 1e-6); },
        [](I in, A, R) { return xg::cosine_similarity(in[0], in[1], 0, 1e-6); });
    add(
        "cosine_embedding", ref::cosine_embedding, {"input1", "input2", "target"}, "mean",
        kReductions, [](A, R r) { return make_shared<nn::CosineEmbeddingLoss>(0.2, r); },
        [](I in, A, R r) { return xg::cosine_embedding_loss(in[0], in[1], in[2], 0.2, r); });
    return out;
}

bool differentiable(const Case& c, std::size_t i) { return std::string(c.inputs[i]) != "target"; }

// Fresh inputs for a case: float64 leaves (requiring grad unless a target).
Inputs make_inputs(const Case& c) {
    Inputs in;
    for (std::size_t i = 0; i < c.inputs.size(); ++i) {
        const Array& a = lookup(c.arrays, c.inputs[i]);
        const bool is_classes = c.class_target && !differentiable(c, i);
        in.push_back(is_classes ? classes(a) : a.tensor(xg::kFloat64, differentiable(c, i)));
    }
    return in;
}

// The module's typed operator(), as a user writes it.
Tensor typed_call(nn::Module& module, const Inputs& in) {
    if (auto* loss = dynamic_cast<nn::Loss*>(&module)) return (*loss)(in[0], in[1]);
    if (auto* cosine = dynamic_cast<nn::CosineSimilarity*>(&module)) return (*cosine)(in[0], in[1]);
    return dynamic_cast<nn::CosineEmbeddingLoss&>(module)(in[0], in[1], in[2]);
}

}  // namespace

TEST_CASE("loss modules: outputs and input gradients match PyTorch") {
    for (const Case& c : cases()) {
        CAPTURE(c.name);
        auto module = c.make(c.arrays, c.reduction);
        Inputs in = make_inputs(c);
        Tensor out = typed_call(*module, in);
        CHECK_VALUES(out, lookup(c.arrays, "output").array());
        xg::sum(out * f64(c.arrays, "upstream")).backward();
        for (std::size_t i = 0; i < in.size(); ++i) {
            CAPTURE(c.inputs[i]);
            if (!differentiable(c, i)) {
                CHECK_FALSE(in[i].grad().defined());
                continue;
            }
            REQUIRE(in[i].grad().defined());
            CHECK_VALUES(in[i].grad(),
                         lookup(c.arrays, "grad_" + std::string(c.inputs[i])).array());
        }
    }
}

TEST_CASE("loss modules: each reduction gives its functional op's value and gradient") {
    for (const Case& c : cases()) {
        for (const std::string& reduction : c.reductions) {
            CAPTURE(c.name);
            CAPTURE(reduction);
            auto module = c.make(c.arrays, reduction);
            Inputs via_module = make_inputs(c), via_op = make_inputs(c);
            Tensor out = typed_call(*module, via_module);
            Tensor expected = c.op(via_op, c.arrays, reduction);
            CHECK_VALUES(out, test::values(expected));
            // Through Module::call too, as a std::shared_ptr<Module> is called.
            nn::Value called = module->call(nn::Args(via_module.begin(), via_module.end()));
            REQUIRE(called.is_tensor());
            CHECK_VALUES(called.tensor(), test::values(expected));
            xg::sum(out).backward();
            xg::sum(expected).backward();
            for (std::size_t i = 0; i < via_module.size(); ++i) {
                if (!differentiable(c, i)) continue;
                CAPTURE(c.inputs[i]);
                REQUIRE(via_module[i].grad().defined());
                REQUIRE(via_op[i].grad().defined());
                CHECK_VALUES(via_module[i].grad(), test::values(via_op[i].grad()));
            }
        }
    }
}

TEST_CASE("BCEWithLogitsLoss: weight scales the elementwise loss before the reduction") {
    Tensor x = test::randn64({3, 4}, 11);
    Tensor y = xg::sigmoid(test::randn64({3, 4}, 12));
    Tensor pos = xg::full({4}, 1.5, xg::kFloat64);
    for (const std::string& reduction : kReductions) {
        CAPTURE(reduction);
        Tensor plain = xg::binary_cross_entropy_with_logits(x, y, reduction, pos);
        nn::BCEWithLogitsLoss unweighted(Tensor(), reduction, pos);
        CHECK_VALUES(unweighted(x, y), test::values(plain));
        nn::BCEWithLogitsLoss ones(xg::ones({4}, xg::kFloat64), reduction, pos);
        CHECK_VALUES(ones(x, y), test::values(plain));
        nn::BCEWithLogitsLoss twos(xg::full({3, 1}, 2.0, xg::kFloat64), reduction, pos);
        CHECK_VALUES(twos(x, y), test::values(plain) * 2.0);
    }
}

namespace {
// The generator's configurations, by name.
std::vector<std::pair<std::string, std::function<std::shared_ptr<nn::Module>()>>> configs() {
    using std::make_shared;
    const Tensor w3 = xg::ones({3}), w4 = xg::ones({4});
    return {
        {"mse", [] { return make_shared<nn::MSELoss>(); }},
        {"mse_sum", [] { return make_shared<nn::MSELoss>("sum"); }},
        {"l1", [] { return make_shared<nn::L1Loss>("none"); }},
        {"smooth_l1", [] { return make_shared<nn::SmoothL1Loss>("mean", 0.5); }},
        {"huber", [] { return make_shared<nn::HuberLoss>("mean", 2.0); }},
        {"cross_entropy", [] { return make_shared<nn::CrossEntropyLoss>(); }},
        {"cross_entropy_weighted",
         [=] { return make_shared<nn::CrossEntropyLoss>(w3, 0, "mean", 0.1); }},
        {"nll", [] { return make_shared<nn::NLLLoss>(); }},
        {"nll_weighted", [=] { return make_shared<nn::NLLLoss>(w3, -100, "sum"); }},
        {"bce", [] { return make_shared<nn::BCELoss>(); }},
        {"bce_weighted", [=] { return make_shared<nn::BCELoss>(w4); }},
        {"bce_logits", [] { return make_shared<nn::BCEWithLogitsLoss>(); }},
        {"bce_logits_pos_weight",
         [=] { return make_shared<nn::BCEWithLogitsLoss>(Tensor(), "mean", w4); }},
        {"bce_logits_both",
         [=] { return make_shared<nn::BCEWithLogitsLoss>(w4, "mean", w4.clone()); }},
        {"kl_div", [] { return make_shared<nn::KLDivLoss>("batchmean", true); }},
        {"cosine_similarity", [] { return make_shared<nn::CosineSimilarity>(0, 1e-6); }},
        {"cosine_embedding", [] { return make_shared<nn::CosineEmbeddingLoss>(0.5, "sum"); }},
    };
}
}  // namespace

TEST_CASE("loss modules print, register buffers and save state as PyTorch") {
    REQUIRE(configs().size() == ref::reprs.size());
    for (const auto& config : configs()) {
        const std::string& name = config.first;
        CAPTURE(name);
        auto module = config.second();
        CHECK(module->repr() == lookup(ref::reprs, name));
        CHECK(module->parameters().empty());
        // Registered buffers: a given weight holds a tensor, an absent one is None
        // (registered, so get_buffer finds it, but left out of buffers()).
        std::vector<std::string> defined;
        for (const auto& buffer : lookup(ref::buffers, name)) {
            CAPTURE(buffer.first);
            CHECK(module->get_buffer(buffer.first).defined() == buffer.second);
            if (buffer.second) defined.push_back(buffer.first);
        }
        std::vector<std::string> listed;
        for (const auto& entry : module->named_buffers()) listed.push_back(entry.first);
        CHECK(listed == defined);
        CHECK(module->state_dict().keys() == lookup(ref::state_dict_keys, name));
        auto copy = module->clone();
        CHECK(copy->repr() == module->repr());
        CHECK(copy->state_dict().keys() == module->state_dict().keys());
    }
    // Modules without weights register no such buffer at all.
    nn::MSELoss mse;
    CHECK_THROWS_WITH_AS(mse.get_buffer("weight"), "MSELoss has no attribute 'weight'", xg::Error);
}

TEST_CASE("weighted losses: the weight buffer is the given tensor, saved, loaded and cloned") {
    Tensor w = test::f64({1.0, 2.0, 3.0});
    auto loss = std::make_shared<nn::CrossEntropyLoss>(w);
    CHECK(loss->weight.impl() == w.impl());  // held, not copied, as PyTorch
    CHECK(loss->get_buffer("weight").impl() == w.impl());
    CHECK_VALUES(loss->state_dict().at("weight"), test::values(w));
    CHECK(loss->ignore_index == -100);
    CHECK(loss->reduction == "mean");
    CHECK(loss->label_smoothing == 0.0);

    Tensor logits = test::randn64({4, 3}, 21);
    Tensor target = test::i64({0, 2, 1, 2});
    xg::StateDict sd;
    sd.insert_or_assign("weight", test::f64({3.0, 0.5, 1.0}));
    loss->load_state_dict(sd);
    CHECK_VALUES(loss->weight, xt::xarray<double>({3.0, 0.5, 1.0}));
    CHECK_VALUES((*loss)(logits, target),
                 test::values(xg::cross_entropy(logits, target, "mean", sd.at("weight"))));

    auto copy = std::dynamic_pointer_cast<nn::CrossEntropyLoss>(loss->clone());
    REQUIRE(copy);
    REQUIRE(copy->weight.defined());
    CHECK(copy->weight.impl() != loss->weight.impl());
    CHECK(copy->get_buffer("weight").impl() == copy->weight.impl());
    CHECK_VALUES(copy->weight, test::values(loss->weight));
    CHECK_VALUES((*copy)(logits, target), test::values((*loss)(logits, target)));

    nn::BCEWithLogitsLoss logits_loss(xg::ones({2}), "sum", xg::ones({2}));
    logits_loss.to(xg::kFloat64);
    CHECK(logits_loss.weight.dtype() == xg::kFloat64);
    CHECK(logits_loss.pos_weight.dtype() == xg::kFloat64);
    auto logits_copy = std::dynamic_pointer_cast<nn::BCEWithLogitsLoss>(logits_loss.clone());
    REQUIRE(logits_copy);
    CHECK(logits_copy->pos_weight.defined());
    CHECK(logits_copy->pos_weight.impl() != logits_loss.pos_weight.impl());
}

TEST_CASE("loss modules keep PyTorch's defaults") {
    CHECK(nn::MSELoss().reduction == "mean");
    CHECK(nn::L1Loss().reduction == "mean");
    CHECK(nn::SmoothL1Loss().beta == 1.0);
    CHECK(nn::HuberLoss().delta == 1.0);
    CHECK(nn::NLLLoss().ignore_index == -100);
    CHECK_FALSE(nn::NLLLoss().weight.defined());
    CHECK(nn::BCELoss().reduction == "mean");
    CHECK_FALSE(nn::BCEWithLogitsLoss().pos_weight.defined());
    CHECK_FALSE(nn::KLDivLoss().log_target);
    CHECK(nn::KLDivLoss().reduction == "mean");
    CHECK(nn::CosineSimilarity().dim == 1);
    CHECK(nn::CosineSimilarity().eps == 1e-8);
    CHECK(nn::CosineEmbeddingLoss().margin == 0.0);
    CHECK(nn::CosineEmbeddingLoss().reduction == "mean");
}

TEST_CASE("loss modules refuse bad options at construction, naming the module and the value") {
    using Make = std::function<void()>;
    const std::vector<std::pair<std::string, Make>> bad_reductions{
        {"MSELoss", [] { nn::MSELoss("batchmean"); }},
        {"L1Loss", [] { nn::L1Loss("batchmean"); }},
        {"SmoothL1Loss", [] { nn::SmoothL1Loss("batchmean"); }},
        {"HuberLoss", [] { nn::HuberLoss("batchmean"); }},
        {"CrossEntropyLoss", [] { nn::CrossEntropyLoss(Tensor(), -100, "batchmean"); }},
        {"NLLLoss", [] { nn::NLLLoss(Tensor(), -100, "batchmean"); }},
        {"BCELoss", [] { nn::BCELoss(Tensor(), "batchmean"); }},
        {"BCEWithLogitsLoss", [] { nn::BCEWithLogitsLoss(Tensor(), "batchmean"); }},
        {"CosineEmbeddingLoss", [] { nn::CosineEmbeddingLoss(0.0, "batchmean"); }},
    };
    for (const auto& entry : bad_reductions) {
        CAPTURE(entry.first);
        const std::string expected =
            entry.first + ": expected reduction 'none', 'mean' or 'sum' (got 'batchmean')";
        CHECK_THROWS_WITH_AS(entry.second(), expected.c_str(), xg::Error);
    }
    CHECK_THROWS_WITH_AS(nn::KLDivLoss("elementwise_mean"),
                         "KLDivLoss: expected reduction 'none', 'batchmean', 'mean' or 'sum' (got "
                         "'elementwise_mean')",
                         xg::Error);
    CHECK_NOTHROW(nn::KLDivLoss("batchmean"));
    CHECK_THROWS_WITH_AS(nn::MSELoss("Mean"),
                         "MSELoss: expected reduction 'none', 'mean' or 'sum' (got 'Mean')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(nn::SmoothL1Loss("mean", -0.5),
                         "SmoothL1Loss: expected beta >= 0 (got -0.5)", xg::Error);
    CHECK_NOTHROW(nn::SmoothL1Loss("mean", 0.0));
    CHECK_THROWS_WITH_AS(nn::HuberLoss("mean", -2.5), "HuberLoss: expected delta > 0 (got -2.5)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(nn::CrossEntropyLoss(Tensor(), -100, "mean", 1.5),
                         "CrossEntropyLoss: expected label_smoothing in [0, 1] (got 1.5)",
                         xg::Error);
}

TEST_CASE("loss modules bind arguments as Python does") {
    Tensor x = test::f64({0.5, -1.0, 2.0}), y = test::f64({1.0, 1.0, 0.0});
    const double expected = test::values(xg::mse_loss(x, y)).data()[0];
    std::shared_ptr<nn::Module> handle = std::make_shared<nn::MSELoss>();
    nn::Value by_keyword = handle->call({x}, {{"target", y}});
    REQUIRE(by_keyword.is_tensor());
    CHECK(test::values(by_keyword.tensor()).data()[0] == doctest::Approx(expected));
    CHECK(test::values((*handle)(x, y).tensor()).data()[0] == doctest::Approx(expected));
    CHECK_THROWS_WITH_AS(
        (*handle)(x),
        "MSELoss: forward() missing 1 required positional argument: 'target' (expected "
        "forward(input: Tensor, target: Tensor); got (Tensor[3] float64))",
        xg::Error);
    std::shared_ptr<nn::Module> cosine = std::make_shared<nn::CosineEmbeddingLoss>();
    CHECK_THROWS_WITH_AS(cosine->call({x, y}),
                         "CosineEmbeddingLoss: forward() missing 1 required positional argument: "
                         "'target' (expected forward(input1: Tensor, input2: Tensor, target: "
                         "Tensor); got (Tensor[3] float64, Tensor[3] float64))",
                         xg::Error);
    std::shared_ptr<nn::Module> similarity = std::make_shared<nn::CosineSimilarity>(0);
    nn::Value sim = similarity->call({}, {{"x2", y}, {"x1", x}});
    REQUIRE(sim.is_tensor());
    CHECK_VALUES(sim.tensor(), test::values(xg::cosine_similarity(x, y, 0)));
}

TEST_CASE("loss modules run forward and backward hooks") {
    auto loss = std::make_shared<nn::CrossEntropyLoss>();
    Tensor logits = test::randn64({4, 3}, 31).requires_grad_(true);
    Tensor target = test::i64({2, 0, 1, 1});
    int forward_calls = 0;
    std::size_t seen_args = 0;
    auto observe = loss->register_forward_hook(
        [&](nn::Module& m, const nn::Args& args, const nn::Value& output) {
            ++forward_calls;
            seen_args = args.size();
            CHECK(&m == loss.get());
            CHECK(args[1].tensor().impl() == target.impl());
            CHECK(output.is_tensor());
        });
    Tensor out = (*loss)(logits, target);
    CHECK(forward_calls == 1);
    CHECK(seen_args == 2);
    CHECK_VALUES(out, test::values(xg::cross_entropy(logits, target, "mean", Tensor())));

    // A hook that returns a value replaces the output of the typed call.
    auto doubled = loss->register_forward_hook(
        [](nn::Module&, const nn::Args&, const nn::Value& output) -> nn::Value {
            return output.tensor() * 2.0;
        });
    CHECK_VALUES((*loss)(logits, target), test::values(out) * 2.0);
    CHECK(forward_calls == 2);
    doubled.remove();
    observe.remove();
    (*loss)(logits, target);
    CHECK(forward_calls == 2);

    // Full backward hooks: one grad_input per tensor input (none for the int64
    // target), one grad_output.
    std::vector<bool> grad_input_defined;
    std::size_t grad_outputs = 0;
    auto backward =
        loss->register_full_backward_hook([&](nn::Module&, const std::vector<Tensor>& grad_input,
                                              const std::vector<Tensor>& grad_output) {
            grad_input_defined.clear();
            for (const Tensor& g : grad_input) grad_input_defined.push_back(g.defined());
            grad_outputs = grad_output.size();
        });
    (*loss)(logits, target).backward();
    CHECK(grad_input_defined == std::vector<bool>{true, false});
    CHECK(grad_outputs == 1);
    backward.remove();
}

}  // namespace nn_test_loss
