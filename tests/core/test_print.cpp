// operator<< for Tensor against the text PyTorch's repr prints for the same tensors
// (reference/print_values.hpp, from reference/gen_print.py).
#include <sstream>
#include <string>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "core/reference/print_values.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_print {

namespace {

double case_value(const print_ref::Case& c, std::size_t i) {
    if (!c.values.empty()) return c.values[i];
    const auto& f = c.formula;
    return static_cast<double>(static_cast<std::int64_t>(i) * f.mult % f.mod + f.offset) / f.div;
}

template <class T>
xg::Tensor build_as(const print_ref::Case& c) {
    auto a = xt::xarray<T>::from_shape(c.shape);
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<T>(case_value(c, i));
    xg::Tensor t = xg::tensor<T>(std::move(a), c.requires_grad || c.times_two);
    return c.times_two ? t * 2.0 : t;
}

xg::Tensor build(const print_ref::Case& c) {
    std::string dtype = c.dtype;
    if (dtype == "float64") return build_as<double>(c);
    if (dtype == "int64") return build_as<std::int64_t>(c);
    return build_as<float>(c);
}

std::string printed(const xg::Tensor& t) {
    std::ostringstream out;
    out << t;
    return out.str();
}

// PyTorch's node is MulBackward0; xgrad names the same node MulBackward.
std::string with_our_node_name(std::string expected, const xg::Tensor& t) {
    const std::string torch_name = "grad_fn=<MulBackward0>";
    auto at = expected.find(torch_name);
    if (at != std::string::npos)
        expected.replace(at, torch_name.size(), "grad_fn=<" + t.grad_fn_name() + ">");
    return expected;
}

}  // namespace

TEST_CASE("Tensor printing matches PyTorch's repr for every reference case") {
    REQUIRE(print_ref::cases.size() >= 40);
    for (const auto& c : print_ref::cases) {
        std::string name = c.name;
        CAPTURE(name);
        xg::Tensor t = build(c);
        REQUIRE(t.shape() == xg::Shape(c.shape));
        if (c.times_two) CHECK(t.grad_fn_name() == "MulBackward");
        CHECK(printed(t) == with_our_node_name(c.expected, t));
    }
}

TEST_CASE("Tensor printing: an undefined tensor says so") {
    CHECK(printed(xg::Tensor()) == "tensor(undefined)");
}

}  // namespace core_test_print
