// Module conversion: to(dtype) for parameters, buffers and grads with handles
// kept valid; devices other than the CPU refused; to_empty; deep clone().
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"

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

TEST_CASE("Module clone: a child replaced after construction is cloned as what it is now") {
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
