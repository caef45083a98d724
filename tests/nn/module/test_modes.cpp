// Module modes and gradients: train/eval propagation, requires_grad_, zero_grad
// in both modes, and apply's order (children first, then self).
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"
#include "nn/module/reference/reference_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_modes {

TEST_CASE("Module modes: train and eval reach every descendant") {
    auto deep = std::make_shared<mt::Deep>();
    for (auto& m : deep->modules()) CHECK(m->is_training());
    xg::nn::Module& same = deep->eval();
    CHECK(&same == deep.get());
    for (auto& m : deep->modules()) CHECK_FALSE(m->is_training());
    deep->train();
    for (auto& m : deep->modules()) CHECK(m->is_training());
    deep->train(false);
    for (auto& m : deep->modules()) CHECK_FALSE(m->is_training());
    // A child's mode can differ until the parent sets it again.
    deep->block->train();
    CHECK(deep->block->fc->is_training());
    CHECK_FALSE(deep->chain->is_training());
    deep->eval();
    CHECK_FALSE(deep->block->fc->is_training());

    auto net = std::make_shared<mt::Net>();  // a shared child and an empty slot
    net->eval();
    for (auto& [path, m] : net->named_modules("", false)) CHECK_FALSE(m->is_training());
}

TEST_CASE("Module modes: requires_grad_ switches every parameter, not buffers") {
    auto deep = std::make_shared<mt::Deep>();
    xg::nn::Module& same = deep->requires_grad_(false);
    CHECK(&same == deep.get());
    for (auto& p : deep->parameters()) CHECK_FALSE(p.requires_grad());
    xg::Tensor x = mt::values({2, 3});
    CHECK_FALSE((*deep->chain)(x).requires_grad());
    deep->requires_grad_();
    for (auto& p : deep->parameters()) CHECK(p.requires_grad());
    for (auto& b : deep->buffers()) CHECK_FALSE(b.requires_grad());
    CHECK((*deep->chain)(x).requires_grad());
}

TEST_CASE("Module modes: zero_grad sets grads to none by default, or zeroes them in place") {
    auto chain = std::make_shared<mt::Chain>();
    auto run = [&] { xg::sum((*chain)(mt::values({2, 3}, 0.3))).backward(); };
    run();
    for (auto& p : chain->parameters()) REQUIRE(p.grad().defined());
    chain->zero_grad();
    for (auto& p : chain->parameters()) CHECK_FALSE(p.grad().defined());

    run();
    xg::Tensor w = chain->get_parameter("0.weight");
    xg::Tensor before = w.grad();
    chain->zero_grad(/*set_to_none=*/false);
    for (auto& p : chain->parameters()) {
        REQUIRE(p.grad().defined());
        for (double v : mt::flat(p.grad())) CHECK(v == 0.0);
        CHECK_FALSE(p.grad().requires_grad());
    }
    // In place, as PyTorch's grad.zero_(): a handle taken earlier sees the zeros.
    for (double v : mt::flat(before)) CHECK(v == 0.0);
    // And gradients accumulate from zero again.
    run();
    xg::Tensor once = w.grad().detach().clone();
    chain->zero_grad(false);
    run();
    CHECK(mt::flat(w.grad()) == mt::flat(once));
}

TEST_CASE("Module modes: apply visits children first, then self, and returns *this") {
    auto deep = std::make_shared<mt::Deep>();
    std::vector<std::string> visited;
    xg::nn::Module& same = deep->apply([&](xg::nn::Module& m) { visited.push_back(m.name()); });
    CHECK(&same == deep.get());
    CHECK(visited == module_ref::deep_apply_order);

    // The typical use: re-initialise every TinyLinear.
    deep->apply([](xg::nn::Module& m) {
        if (auto* lin = dynamic_cast<mt::TinyLinear*>(&m)) lin->weight.data<double>().fill(0.5);
    });
    for (double v : mt::flat(deep->block->fc->weight)) CHECK(v == 0.5);
    for (double v : mt::flat(deep->head->weight)) CHECK(v == 0.5);
}

}  // namespace nn_module_test_modes
