// Module printing: repr() and operator<< exactly as PyTorch's repr, compared
// with strings PyTorch printed for modules of the same names and extra_repr.
#include <sstream>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/module/modules.hpp"
#include "nn/module/reference/reference_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_printing {

namespace {
struct Multi : xg::nn::Module {
    std::string extra_repr() const override { return "first=1\nsecond=2"; }
};
struct Bare : xg::nn::Module {};
}  // namespace

TEST_CASE("Module printing: leaf modules") {
    CHECK(std::make_shared<mt::TinyLinear>(3, 2)->repr() == module_ref::repr_tiny_linear);
    CHECK(std::make_shared<mt::TinyLinear>(3, 2, false)->repr() ==
          module_ref::repr_tiny_linear_nobias);
    CHECK(std::make_shared<mt::TinyTanh>()->repr() == module_ref::repr_tanh);
    // Hand-derived from PyTorch's __repr__: a multi-line extra_repr without children
    // goes on indented lines of its own.
    CHECK(std::make_shared<Multi>()->repr() == "Multi(\n  first=1\n  second=2\n)");
    CHECK(std::make_shared<Bare>()->repr() == "Bare()");
}

TEST_CASE("Module printing: nested modules match PyTorch's repr") {
    CHECK(std::make_shared<mt::Block>()->repr() == module_ref::repr_block);
    CHECK(std::make_shared<mt::Chain>()->repr() == module_ref::repr_chain);
    CHECK(std::make_shared<mt::Net>()->repr() == module_ref::repr_net);  // duplicate and None
    CHECK(std::make_shared<mt::Deep>()->repr() == module_ref::repr_deep);
}

TEST_CASE("Module printing: operator<< prints the repr; name() is the class name") {
    auto deep = std::make_shared<mt::Deep>();
    std::ostringstream out;
    out << *deep;
    CHECK(out.str() == module_ref::repr_deep);
    CHECK(deep->name() == "Deep");
    CHECK(deep->block->fc->name() == "TinyLinear");
    CHECK(std::make_shared<Bare>()->name() == "Bare");
}

}  // namespace nn_module_test_printing
