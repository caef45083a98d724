// Module registration: parameters, buffers and children kept in registration
// order, re-registration in place, and the names PyTorch refuses.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_registration {

using mt::names_of;
using xg::nn::Module;

namespace {
struct Bag : Module {};
}  // namespace

TEST_CASE("Module registration: parameters, buffers and children keep registration order") {
    auto m = std::make_shared<Bag>();
    m->register_parameter("w", xg::zeros({2}));
    m->register_parameter("b", xg::zeros({1}));
    m->register_parameter("c", xg::zeros({3}));
    m->register_buffer("z", xg::zeros({1}));
    m->register_buffer("y", xg::zeros({1}), /*persistent=*/false);
    m->register_module("second", std::make_shared<Bag>());
    m->register_module("first", std::make_shared<Bag>());
    CHECK(names_of(m->named_parameters()) == std::vector<std::string>{"w", "b", "c"});
    CHECK(names_of(m->named_buffers()) == std::vector<std::string>{"z", "y"});
    CHECK(names_of(m->named_children()) == std::vector<std::string>{"second", "first"});
}

TEST_CASE("Module registration: re-registering a name replaces it in place") {
    auto m = std::make_shared<Bag>();
    m->register_parameter("w", xg::zeros({2}));
    m->register_parameter("b", xg::zeros({1}));
    m->register_parameter("c", xg::zeros({3}));
    xg::Tensor replacement = xg::ones({5});
    m->register_parameter("b", replacement);
    CHECK(names_of(m->named_parameters()) == std::vector<std::string>{"w", "b", "c"});
    CHECK(m->get_parameter("b").impl() == replacement.impl());
    CHECK(m->get_parameter("b").shape() == xg::Shape{5});

    auto first = std::make_shared<Bag>(), second = std::make_shared<Bag>();
    m->register_module("x", first);
    m->register_module("y", std::make_shared<Bag>());
    m->register_module("x", second);
    CHECK(names_of(m->named_children()) == std::vector<std::string>{"x", "y"});
    CHECK(m->get_submodule("x") == second);

    // A buffer re-registered as non-persistent leaves the state_dict but keeps its place.
    m->register_buffer("p", xg::zeros({1}));
    m->register_buffer("q", xg::zeros({1}));
    m->register_buffer("p", xg::ones({1}), /*persistent=*/false);
    CHECK(names_of(m->named_buffers()) == std::vector<std::string>{"p", "q"});
    CHECK_FALSE(m->state_dict().contains("p"));
    CHECK(m->state_dict().contains("q"));
}

TEST_CASE("Module registration: parameters are leaves that require grad") {
    auto m = std::make_shared<Bag>();
    xg::Tensor w = xg::zeros({2});
    CHECK_FALSE(w.requires_grad());
    xg::Tensor& stored = m->register_parameter("w", w);
    CHECK(stored.requires_grad());
    CHECK(w.requires_grad());  // the same tensor, not a copy
    CHECK(stored.impl() == w.impl());

    m->register_parameter("frozen", xg::zeros({2}), /*requires_grad=*/false);
    CHECK_FALSE(m->get_parameter("frozen").requires_grad());

    xg::Tensor leaf = xg::ones({2}, xg::kFloat64);
    leaf.requires_grad_(true);
    xg::Tensor made = leaf * 2.0;
    CHECK_THROWS_AS(m->register_parameter("made", made), xg::Error);

    // An undefined parameter (PyTorch's None) is registered but never listed.
    m->register_parameter("none", xg::Tensor());
    CHECK(names_of(m->named_parameters()) == std::vector<std::string>{"w", "frozen"});
    CHECK_FALSE(m->state_dict().contains("none"));
}

TEST_CASE(
    "Module registration: register_module returns the typed pointer; add_module is an alias") {
    auto m = std::make_shared<Bag>();
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    std::shared_ptr<mt::TinyLinear> same = m->register_module("lin", lin);
    CHECK(same == lin);
    CHECK(same->in_features == 3);
    auto added = m->add_module("tanh", std::make_shared<mt::TinyTanh>());
    CHECK(m->get_submodule("tanh") == added);
    CHECK(names_of(m->named_children()) == std::vector<std::string>{"lin", "tanh"});
}

TEST_CASE("Module registration: invalid names throw") {
    auto m = std::make_shared<Bag>();
    CHECK_THROWS_WITH_AS(m->register_parameter("", xg::zeros({1})),
                         "register_parameter: expected a non-empty name (got \"\")", xg::Error);
    CHECK_THROWS_WITH_AS(m->register_buffer("a.b", xg::zeros({1})),
                         "register_buffer: expected a name without '.' (got 'a.b')", xg::Error);
    CHECK_THROWS_WITH_AS(m->register_module("", std::make_shared<Bag>()),
                         "register_module: expected a non-empty name (got \"\")", xg::Error);
    CHECK_THROWS_WITH_AS(m->register_module("x.y", std::make_shared<Bag>()),
                         "register_module: expected a name without '.' (got 'x.y')", xg::Error);

    m->register_parameter("w", xg::zeros({1}));
    m->register_buffer("buf", xg::zeros({1}));
    m->register_module("child", std::make_shared<Bag>());
    CHECK_THROWS_WITH_AS(
        m->register_buffer("w", xg::zeros({1})),
        "register_buffer: expected a name not used by another member of Bag (got 'w')", xg::Error);
    CHECK_THROWS_WITH_AS(
        m->register_module("w", std::make_shared<Bag>()),
        "register_module: expected a name not used by another member of Bag (got 'w')", xg::Error);
    CHECK_THROWS_WITH_AS(
        m->register_parameter("buf", xg::zeros({1})),
        "register_parameter: expected a name not used by another member of Bag (got 'buf')",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        m->register_parameter("child", xg::zeros({1})),
        "register_parameter: expected a name not used by another member of Bag (got 'child')",
        xg::Error);
    CHECK_THROWS_AS(m->register_buffer("child", xg::zeros({1})), xg::Error);
    CHECK_THROWS_AS(m->register_module("buf", std::make_shared<Bag>()), xg::Error);
    // The failed calls added nothing.
    CHECK(names_of(m->named_parameters()) == std::vector<std::string>{"w"});
    CHECK(names_of(m->named_buffers()) == std::vector<std::string>{"buf"});
    CHECK(names_of(m->named_children()) == std::vector<std::string>{"child"});
}

TEST_CASE("Module registration: layer members and the registry are the same tensors") {
    auto lin = std::make_shared<mt::TinyLinear>(3, 2);
    CHECK(lin->get_parameter("weight").impl() == lin->weight.impl());
    CHECK(lin->get_parameter("bias").impl() == lin->bias.impl());
    CHECK(lin->get_buffer("running_mean").impl() == lin->running_mean.impl());
    CHECK(lin->get_buffer("scratch").impl() == lin->scratch.impl());
}

}  // namespace nn_module_test_registration
