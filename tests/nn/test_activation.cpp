// Activation modules: each is its op, gradchecks in float64, prints as PyTorch, clones.
#include <functional>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_activation {

using reference::lookup;
namespace ref = reference::layers;

namespace {
struct Row {
    const char* repr_key;
    std::function<std::shared_ptr<xg::nn::Module>()> make;
    std::function<xg::Tensor(const xg::Tensor&)> op;
};

std::vector<Row> rows() {
    using namespace xg::nn;
    return {
        {"relu", [] { return std::make_shared<ReLU>(); },
         [](const xg::Tensor& x) { return xg::relu(x); }},
        {"gelu", [] { return std::make_shared<GELU>(); },
         [](const xg::Tensor& x) { return xg::gelu(x); }},
        {"gelu_tanh", [] { return std::make_shared<GELU>("tanh"); },
         [](const xg::Tensor& x) { return xg::gelu(x, "tanh"); }},
        {"silu", [] { return std::make_shared<SiLU>(); },
         [](const xg::Tensor& x) { return xg::silu(x); }},
        {"sigmoid", [] { return std::make_shared<Sigmoid>(); },
         [](const xg::Tensor& x) { return xg::sigmoid(x); }},
        {"tanh", [] { return std::make_shared<Tanh>(); },
         [](const xg::Tensor& x) { return xg::tanh(x); }},
        {"identity", [] { return std::make_shared<Identity>(); },
         [](const xg::Tensor& x) { return x; }},
    };
}
}  // namespace

TEST_CASE("each activation module computes its op, on any shape, in both dtypes") {
    for (const auto& row : rows()) {
        CAPTURE(row.repr_key);
        auto module = row.make();
        CHECK(module->parameters().empty());
        for (const xg::Shape& shape : {xg::Shape{7}, xg::Shape{2, 3, 4}}) {
            xg::Tensor x = test::randn64(shape, 4);
            CHECK_VALUES((*module)(x), test::values(row.op(x)));
            CHECK_VALUES((*module)(x.to(xg::kFloat32)), test::values(row.op(x.to(xg::kFloat32))));
        }
    }
}

TEST_CASE("each activation module gradchecks in float64") {
    for (const auto& row : rows()) {
        CAPTURE(row.repr_key);
        auto module = row.make();
        // Away from ReLU's kink at 0, where the one-sided difference disagrees.
        xg::Tensor x = test::randn64({3, 5}, 6) + 0.01;
        CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return (*module)(in[0]); },
                              {x}));
    }
}

TEST_CASE("activation modules print as PyTorch and clone to the same class") {
    for (const auto& row : rows()) {
        CAPTURE(row.repr_key);
        auto module = row.make();
        CHECK(module->repr() == lookup(ref::reprs, row.repr_key));
        auto copy = module->clone();
        CHECK(copy->repr() == module->repr());
        CHECK(copy.get() != module.get());
    }
}

TEST_CASE("GELU accepts only 'none' and 'tanh'") {
    CHECK_THROWS_WITH_AS(xg::nn::GELU("erf"),
                         "GELU: expected approximate 'none' or 'tanh' (got 'erf')", xg::Error);
    CHECK(xg::nn::GELU("tanh").approximate == "tanh");
}

}  // namespace nn_test_activation
