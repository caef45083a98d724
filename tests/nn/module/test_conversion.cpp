// Module conversion: to(dtype) for parameters, buffers and grads with handles
// kept valid; type(dtype) for integer tensors too; devices other than the CPU
// refused; share_memory_, compile and the swap switch; to_empty; deep clone().
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_conversion {

using mt::names_of;
using xg::nn::Module;

namespace {
struct WithSteps : Module {
    WithSteps() {
        lin = register_module("lin", std::make_shared<mt::TinyLinear>(3, 2, true, xg::kFloat32));
        register_buffer("steps", xg::arange(3));  // int64: never converted, as PyTorch
    }
    xg::Tensor forward(const xg::Tensor& x) override { return (*lin)(x); }
    std::shared_ptr<mt::TinyLinear> lin;
};
}  // namespace

TEST_CASE("Module to(dtype): converts parameters, buffers and grads; handles stay valid") {
    auto m = std::make_shared<WithSteps>();
    xg::Tensor weight = m->lin->weight;  // an outside handle, as an optimizer would hold
    std::vector<double> before = mt::flat(weight);
    xg::sum((*m)(mt::values({2, 3}, 0.3, 0.0, xg::kFloat32))).backward();
    REQUIRE(weight.grad().dtype() == xg::kFloat32);
    std::vector<double> grad_before = mt::flat(weight.grad());

    Module& same = m->to(xg::kFloat64);
    CHECK(&same == m.get());
    CHECK(weight.dtype() == xg::kFloat64);
    CHECK(m->lin->weight.dtype() == xg::kFloat64);
    CHECK(m->lin->weight.impl() == weight.impl());
    CHECK(m->lin->running_mean.dtype() == xg::kFloat64);
    CHECK(m->lin->scratch.dtype() == xg::kFloat64);
    CHECK(weight.grad().dtype() == xg::kFloat64);
    CHECK(mt::flat(weight) == before);  // float32 -> float64 is exact
    CHECK(mt::flat(weight.grad()) == grad_before);
    CHECK(weight.requires_grad());
    CHECK(weight.is_leaf());
    CHECK(m->get_buffer("steps").dtype() == xg::kInt64);
    for (auto& [name, p] : m->named_parameters()) CHECK(p.dtype() == xg::kFloat64);

    // The converted model runs and accumulates float64 gradients into the same grads.
    xg::sum((*m)(mt::values({2, 3}, 0.3))).backward();
    CHECK(weight.grad().dtype() == xg::kFloat64);

    m->to(xg::kFloat32);
    CHECK(weight.dtype() == xg::kFloat32);
    CHECK(weight.grad().dtype() == xg::kFloat32);
    CHECK_THROWS_WITH_AS(m->to(xg::kInt64),
                         "Module.to: expected a floating-point dtype (got int64)", xg::Error);
}

TEST_CASE("Module to(dtype): a parameter shared by two names stays shared") {
    auto net = std::make_shared<mt::Net>();
    net->to(xg::kFloat32);
    CHECK(net->get_parameter("tied").impl() == net->a->weight.impl());
    CHECK(net->get_parameter("tied").dtype() == xg::kFloat32);
    CHECK(net->get_submodule("a2")->get_parameter("weight").dtype() == xg::kFloat32);
    CHECK(net->b->fc->weight.dtype() == xg::kFloat32);
}

TEST_CASE("Module devices: cpu() is a no-op, cuda() and other devices throw") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    CHECK(&lin->cpu() == lin.get());
    CHECK(&lin->to(std::string("cpu")) == lin.get());
    CHECK_THROWS_WITH_AS(lin->cuda(), "Module.to: xgrad runs on the CPU only (got device 'cuda')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(lin->to(std::string("mps")),
                         "Module.to: xgrad runs on the CPU only (got device 'mps')", xg::Error);
}

TEST_CASE("Module float_() and double_() are to(kFloat32) and to(kFloat64)") {
    auto m = std::make_shared<WithSteps>();
    CHECK(&m->double_() == m.get());
    CHECK(m->lin->weight.dtype() == xg::kFloat64);
    CHECK(m->get_buffer("steps").dtype() == xg::kInt64);
    CHECK(&m->float_() == m.get());
    CHECK(m->lin->weight.dtype() == xg::kFloat32);
}

TEST_CASE("Module xpu(), ipu() and mtia() throw as cuda() does") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    CHECK_THROWS_WITH_AS(lin->xpu(), "Module.to: xgrad runs on the CPU only (got device 'xpu')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(lin->ipu(), "Module.to: xgrad runs on the CPU only (got device 'ipu')",
                         xg::Error);
    CHECK_THROWS_WITH_AS(lin->mtia(), "Module.to: xgrad runs on the CPU only (got device 'mtia')",
                         xg::Error);
}

TEST_CASE("Module type(dtype) casts every tensor, integer buffers too; to(dtype) does not") {
    auto a = std::make_shared<WithSteps>(), b = std::make_shared<WithSteps>();
    CHECK(&a->type(xg::kFloat64) == a.get());
    CHECK(a->get_buffer("steps").dtype() == xg::kFloat64);
    CHECK(mt::flat(a->get_buffer("steps")) == std::vector<double>{0, 1, 2});
    CHECK(a->lin->weight.dtype() == xg::kFloat64);
    b->to(xg::kFloat64);
    CHECK(b->get_buffer("steps").dtype() == xg::kInt64);
    CHECK(b->lin->weight.dtype() == xg::kFloat64);
    // Parameters that require grad stay floating point, as in PyTorch; nothing changes.
    CHECK_THROWS_WITH_AS(a->type(xg::kInt64),
                         "WithSteps.type: parameter 'lin.weight' requires grad and must stay "
                         "floating point (got int64)",
                         xg::Error);
    CHECK(a->get_buffer("steps").dtype() == xg::kFloat64);
    a->requires_grad_(false);
    a->type(xg::kInt64);
    CHECK(a->get_buffer("steps").dtype() == xg::kInt64);
    CHECK(a->lin->weight.dtype() == xg::kInt64);
}

TEST_CASE("Module share_memory_ and compile keep the module as it is") {
    auto m = std::make_shared<WithSteps>();
    xg::Tensor weight = m->lin->weight;
    const double* storage = nullptr;
    m->to(xg::kFloat64);
    storage = weight.data<double>().data();
    const xg::Tensor x = mt::values({2, 3}, 0.3, 0.0, xg::kFloat64);
    const std::vector<double> before = mt::flat((*m)(x));
    CHECK(&m->share_memory_() == m.get());
    CHECK(weight.data<double>().data() == storage);  // threads share storages already
    m->compile();
    CHECK(mt::flat((*m)(x)) == before);
    CHECK(m->lin->weight.impl() == weight.impl());
}

TEST_CASE("Module swap_module_params_on_conversion: kept and read back, same conversions") {
    REQUIRE_FALSE(xg::nn::get_swap_module_params_on_conversion());  // PyTorch's default
    auto plain = std::make_shared<WithSteps>(), swapped = std::make_shared<WithSteps>();
    xg::Tensor weight = swapped->lin->weight;
    plain->to(xg::kFloat64);
    xg::nn::set_swap_module_params_on_conversion(true);
    CHECK(xg::nn::get_swap_module_params_on_conversion());
    swapped->to(xg::kFloat64);
    xg::nn::set_swap_module_params_on_conversion(false);
    CHECK_FALSE(xg::nn::get_swap_module_params_on_conversion());
    CHECK(swapped->lin->weight.impl() == weight.impl());  // the parameter object is kept
    CHECK(weight.dtype() == xg::kFloat64);
    CHECK(mt::flat(swapped->lin->weight) == mt::flat(plain->lin->weight));
}

TEST_CASE("Module to_empty: fresh storage of the same shapes and dtypes") {
    auto m = std::make_shared<WithSteps>();
    xg::Tensor weight = m->lin->weight;
    m->to_empty();
    CHECK(m->lin->weight.impl() == weight.impl());
    CHECK(weight.shape() == xg::Shape{2, 3});
    CHECK(weight.dtype() == xg::kFloat32);
    CHECK(m->lin->bias.shape() == xg::Shape{2});
    CHECK(m->lin->scratch.shape() == xg::Shape{1});
    CHECK(m->get_buffer("steps").shape() == xg::Shape{3});
    CHECK(m->get_buffer("steps").dtype() == xg::kInt64);
    CHECK(weight.requires_grad());
}

TEST_CASE("Module clone: a deep copy with the same structure, values and modes") {
    auto deep = std::make_shared<mt::Deep>();
    deep->block->fc->weight.data<double>().fill(0.75);
    deep->block->get_buffer("tmp").data<double>().fill(4.0);  // non-persistent too
    deep->head->weight.requires_grad_(false);
    deep->chain->eval();
    int hook_calls = 0;
    deep->register_forward_pre_hook([&](Module&, const xg::Tensor&) { ++hook_calls; });

    std::shared_ptr<Module> copy = deep->clone();
    auto* clone = dynamic_cast<mt::Deep*>(copy.get());
    REQUIRE(clone != nullptr);
    CHECK(clone->repr() == deep->repr());
    CHECK(names_of(clone->named_parameters()) == names_of(deep->named_parameters()));
    CHECK(names_of(clone->named_buffers()) == names_of(deep->named_buffers()));
    CHECK(clone->state_dict().keys() == deep->state_dict().keys());
    auto original_params = deep->parameters(), cloned_params = clone->parameters();
    for (std::size_t i = 0; i < original_params.size(); ++i) {
        CHECK(cloned_params[i].impl() != original_params[i].impl());
        CHECK(mt::flat(cloned_params[i]) == mt::flat(original_params[i]));
        CHECK(cloned_params[i].requires_grad() == original_params[i].requires_grad());
        CHECK(cloned_params[i].is_leaf());
    }
    CHECK_FALSE(clone->head->weight.requires_grad());
    CHECK(mt::flat(clone->block->get_buffer("tmp")) == std::vector<double>{4.0});
    CHECK_FALSE(clone->chain->is_training());
    CHECK(clone->block->is_training());
    // The clone's members are its registered tensors.
    CHECK(clone->block->fc->weight.impl() == clone->get_parameter("block.fc.weight").impl());

    // Changing the clone leaves the original alone, and the other way round.
    clone->block->fc->weight.data<double>().fill(-1.0);
    clone->block->get_buffer("count").data<double>().fill(5.0);
    for (double v : mt::flat(deep->block->fc->weight)) CHECK(v == 0.75);
    CHECK(mt::flat(deep->block->get_buffer("count")) == std::vector<double>{0.0});
    deep->head->weight.data<double>().fill(2.0);
    for (double v : mt::flat(clone->head->weight)) CHECK(v != 2.0);

    // Hooks are not copied.
    auto chain = std::make_shared<mt::Chain>();
    chain->register_forward_pre_hook([&](Module&, const xg::Tensor&) { ++hook_calls; });
    auto chain_copy = chain->clone();
    (*chain_copy)(mt::values({1, 3}));
    CHECK(hook_calls == 0);
    CHECK(mt::flat((*chain_copy)(mt::values({2, 3}))) == mt::flat((*chain)(mt::values({2, 3}))));
    CHECK(hook_calls == 1);
}

TEST_CASE("Module clone: a child replaced after construction is cloned as it stands") {
    auto deep = std::make_shared<mt::Deep>();
    deep->set_submodule("head", std::make_shared<mt::TinyTanh>());
    deep->set_submodule("block.fc", std::make_shared<mt::TinyLinear>(4, 4, false));
    auto copy = deep->clone();
    CHECK(copy->repr() == deep->repr());
    CHECK(copy->get_submodule("head")->name() == "TinyTanh");
    CHECK(names_of(copy->named_parameters()) == names_of(deep->named_parameters()));
}

TEST_CASE("Module clone: a module without make_fresh says how to support clone") {
    auto net = std::make_shared<mt::Net>();
    CHECK_THROWS_WITH_AS(net->clone(),
                         "clone: Net does not support clone(); override make_fresh() to construct "
                         "a new Net with the same configuration",
                         xg::Error);
}

// A Parameter registered under a second name in another layer: the two layers
// share it, in forward too (Linear keeps its `weight` member in step).
std::shared_ptr<xg::nn::Sequential> tied_pair() {
    xg::manual_seed(3);
    auto first = std::make_shared<xg::nn::Linear>(3, 3);
    auto second = std::make_shared<xg::nn::Linear>(3, 3);
    second->register_parameter("weight", first->weight);
    return std::make_shared<xg::nn::Sequential>(
        std::initializer_list<std::shared_ptr<Module>>{first, second});
}

TEST_CASE("Module register_parameter: re-registering a layer's parameter ties what forward uses") {
    auto seq = tied_pair();
    auto first = seq->at<xg::nn::Linear>(0);
    auto second = seq->at<xg::nn::Linear>(1);
    CHECK(second->weight.impl() == first->weight.impl());
    // As in torch: seq[1].weight = seq[0].weight; list(seq.named_parameters()) has 3 entries.
    CHECK(names_of(seq->named_parameters()) ==
          std::vector<std::string>{"0.weight", "0.bias", "1.bias"});
    xg::Tensor x = xg::ones({1, 3});
    xg::sum((*seq)(x)).backward();
    // One gradient for the shared weight, summed over both uses: d/dW of
    // sum(W (W x + b0) + b1) = 1 (W x + b0)^T + W^T 1 x^T, by hand below.
    auto w = first->weight.data<float>();
    auto b0 = first->bias.data<float>();
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            float h_j = w(j, 0) + w(j, 1) + w(j, 2) + b0(j);
            float col_i = w(0, i) + w(1, i) + w(2, i);
            CHECK(first->weight.grad().data<float>()(i, j) == doctest::Approx(h_j + col_i));
        }
    }
}

TEST_CASE(
    "Module clone: a Parameter shared by two layers stays shared, as copy.deepcopy keeps it") {
    auto seq = tied_pair();
    auto copy = std::dynamic_pointer_cast<xg::nn::Sequential>(seq->clone());
    REQUIRE(copy != nullptr);
    CHECK(copy->parameters().size() == 3);  // copy.deepcopy(seq): 3 parameters, not 4
    auto first = copy->at<xg::nn::Linear>(0);
    auto second = copy->at<xg::nn::Linear>(1);
    CHECK(second->weight.impl() == first->weight.impl());
    CHECK(second->get_parameter("weight").impl() == first->weight.impl());
    CHECK(first->weight.impl() != seq->at<xg::nn::Linear>(0)->weight.impl());
    CHECK(mt::flat(first->weight) == mt::flat(seq->at<xg::nn::Linear>(0)->weight));
    // The copy computes what the original does, gradients included.
    xg::Tensor x = xg::ones({2, 3});
    xg::sum((*seq)(x)).backward();
    xg::sum((*copy)(x)).backward();
    CHECK(mt::flat(first->weight.grad()) == mt::flat(seq->at<xg::nn::Linear>(0)->weight.grad()));
}

// Two layers that share a weight from construction on.
struct TiedAtBirth : Module {
    TiedAtBirth() {
        a = register_module("a", std::make_shared<mt::TinyLinear>(2, 2));
        b = register_module("b", std::make_shared<mt::TinyLinear>(2, 2));
        b->register_parameter("weight", a->weight);
    }
    std::shared_ptr<Module> make_fresh() const override { return std::make_shared<TiedAtBirth>(); }
    std::shared_ptr<mt::TinyLinear> a, b;
};

TEST_CASE("Module clone: a module untied after construction is cloned untied") {
    auto tied = std::make_shared<TiedAtBirth>();
    CHECK(tied->clone()->parameters().size() == 3);
    auto untied = std::make_shared<TiedAtBirth>();
    untied->b->register_parameter("weight", mt::values({2, 2}, 0.5));
    auto copy = untied->clone();
    REQUIRE(copy->parameters().size() == 4);
    CHECK(mt::flat(copy->get_parameter("a.weight")) == mt::flat(untied->get_parameter("a.weight")));
    CHECK(mt::flat(copy->get_parameter("b.weight")) == mt::flat(untied->get_parameter("b.weight")));
}

}  // namespace nn_module_test_conversion
