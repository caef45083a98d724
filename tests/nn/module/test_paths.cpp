// Module paths: get_submodule, set_submodule, get_parameter and get_buffer,
// and errors that name the missing part (PyTorch's "<Class> has no attribute").
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_paths {

using mt::names_of;

TEST_CASE("Module paths: get_submodule walks dotted paths") {
    auto deep = std::make_shared<mt::Deep>();
    CHECK(deep->get_submodule("") == deep);
    CHECK(deep->get_submodule("block") == deep->block);
    CHECK(deep->get_submodule("block.fc") == deep->block->fc);
    CHECK(deep->get_submodule("chain.2")->name() == "TinyLinear");
}

TEST_CASE("Module paths: get_submodule errors name the missing part") {
    auto deep = std::make_shared<mt::Deep>();
    CHECK_THROWS_WITH_AS(deep->get_submodule("foo"), "Deep has no attribute 'foo'", xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_submodule("block.nope"), "Block has no attribute 'nope'",
                         xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_submodule("block.fc.deeper"),
                         "TinyLinear has no attribute 'deeper'", xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_submodule("block.gain"), "get_submodule: 'gain' is not a Module",
                         xg::Error);
    // An empty slot (PyTorch's None) is there, but is not a Module.
    auto net = std::make_shared<mt::Net>();
    CHECK_THROWS_WITH_AS(net->get_submodule("empty"), "get_submodule: 'empty' is not a Module",
                         xg::Error);
    CHECK(net->get_submodule("a2") == net->a);
}

TEST_CASE("Module paths: get_parameter and get_buffer") {
    auto deep = std::make_shared<mt::Deep>();
    CHECK(deep->get_parameter("block.fc.weight").impl() == deep->block->fc->weight.impl());
    CHECK(deep->get_parameter("block.gain").impl() == deep->block->gain.impl());
    CHECK(deep->get_buffer("block.fc.running_mean").impl() == deep->block->fc->running_mean.impl());
    CHECK(deep->get_buffer("block.tmp").shape() == xg::Shape{1});  // non-persistent too

    CHECK_THROWS_WITH_AS(deep->get_parameter("block.fc.foo"), "TinyLinear has no attribute 'foo'",
                         xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_parameter("nothing.weight"), "Deep has no attribute 'nothing'",
                         xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_parameter("zz"), "Deep has no attribute 'zz'", xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_parameter("block.count"),
                         "get_parameter: 'count' is not a parameter", xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_parameter("block.fc"), "get_parameter: 'fc' is not a parameter",
                         xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_buffer("block.gain"), "get_buffer: 'gain' is not a buffer",
                         xg::Error);
    CHECK_THROWS_WITH_AS(deep->get_buffer("head.nope"), "TinyLinear has no attribute 'nope'",
                         xg::Error);
}

TEST_CASE("Module paths: set_submodule replaces in place and can add") {
    auto deep = std::make_shared<mt::Deep>();
    auto replacement = std::make_shared<mt::TinyLinear>(4, 4, false);
    deep->set_submodule("block.fc", replacement);
    CHECK(deep->get_submodule("block.fc") == replacement);
    CHECK(names_of(deep->block->named_children()) == std::vector<std::string>{"fc"});
    CHECK(names_of(deep->named_parameters()) ==
          std::vector<std::string>{"chain.0.weight", "chain.0.bias", "chain.2.weight",
                                   "chain.2.bias", "block.gain", "block.fc.weight", "head.weight"});

    auto tanh = std::make_shared<mt::TinyTanh>();
    deep->set_submodule("chain.1", tanh);
    CHECK(names_of(deep->chain->named_children()) == std::vector<std::string>{"0", "1", "2"});
    CHECK(deep->get_submodule("chain.1") == tanh);

    // PyTorch's default (strict=False) adds a missing last part.
    deep->set_submodule("block.extra", std::make_shared<mt::TinyTanh>());
    CHECK(names_of(deep->block->named_children()) == std::vector<std::string>{"fc", "extra"});

    CHECK_THROWS_WITH_AS(deep->set_submodule("nowhere.fc", tanh), "Deep has no attribute 'nowhere'",
                         xg::Error);
    CHECK_THROWS_AS(deep->set_submodule("block.gain", tanh), xg::Error);  // a parameter
    CHECK_THROWS_AS(deep->set_submodule("", tanh), xg::Error);
}

TEST_CASE("Module paths: a module outside any shared_ptr resolves paths from itself") {
    mt::Deep deep;  // on the stack: it has no handle of its own to give out
    CHECK(deep.get_submodule("") == nullptr);
    CHECK(deep.get_submodule("block.fc") == deep.block->fc);
    CHECK(deep.get_parameter("block.gain").impl() == deep.block->gain.impl());
    CHECK(deep.get_buffer("head.running_mean").impl() == deep.head->running_mean.impl());
    CHECK_THROWS_WITH_AS(deep.get_parameter("weight"), "Deep has no attribute 'weight'", xg::Error);
    auto tanh = std::make_shared<mt::TinyTanh>();
    deep.set_submodule("extra", tanh);
    CHECK(deep.get_submodule("extra") == tanh);
}

TEST_CASE("Module paths: get_parameter and get_buffer walk through modules only") {
    // Every part before the last goes through get_submodule's walk, with its errors.
    auto net = std::make_shared<mt::Net>();
    CHECK_THROWS_WITH_AS(net->get_parameter("tied.weight"), "get_submodule: 'tied' is not a Module",
                         xg::Error);
    CHECK_THROWS_WITH_AS(net->get_buffer("empty.running_mean"),
                         "get_submodule: 'empty' is not a Module", xg::Error);
    CHECK_THROWS_WITH_AS(net->set_submodule("b.count.x", std::make_shared<mt::TinyTanh>()),
                         "get_submodule: 'count' is not a Module", xg::Error);
    CHECK(net->get_parameter("a2.weight").impl() == net->a->weight.impl());
}

}  // namespace nn_module_test_paths
