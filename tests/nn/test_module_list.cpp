// ModuleList: registration, indexing, traversal, printing, clone.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_module_list {

using reference::lookup;
namespace ref = reference::layers;
namespace nn = xg::nn;

namespace {
// A stack of layers held in a ModuleList and applied by the owner.
struct Stack : nn::Module {
    std::shared_ptr<nn::ModuleList> layers =
        register_module("layers", std::make_shared<nn::ModuleList>());
    xg::Tensor forward(const xg::Tensor& x) override {
        xg::Tensor h = x;
        for (const auto& layer : *layers) h = (*layer)(h);
        return h;
    }
};
}  // namespace

TEST_CASE("ModuleList registers children 0, 1, ... so their parameters are found") {
    nn::ModuleList list{std::make_shared<nn::Linear>(2, 2), std::make_shared<nn::GELU>()};
    list.push_back(nn::FeedForward::swiglu(2, 4));
    CHECK(list.size() == 3);
    CHECK_FALSE(list.empty());
    CHECK(test::child_names(list) == std::vector<std::string>{"0", "1", "2"});
    CHECK(test::parameter_names(list) ==
          std::vector<std::string>{"0.weight", "0.bias", "2.layer1.weight", "2.layer2.weight",
                                   "2.linear_v.weight"});
    CHECK(list[1]->name() == "GELU");
    CHECK(list.at<nn::FeedForward>(2)->is_gated);
    CHECK_THROWS_WITH_AS(list[5], "ModuleList: expected an index in [0, 3) (got 5)", xg::Error);
    CHECK_THROWS_AS(list.forward(xg::ones({2})), xg::Error);  // no forward of its own
    CHECK(list.repr() == lookup(ref::reprs, "module_list"));
}

TEST_CASE("ModuleList inside a module: traversal and clone") {
    auto stack = std::make_shared<Stack>();
    stack->layers->push_back(std::make_shared<nn::Linear>(3, 3));
    stack->layers->push_back(std::make_shared<nn::Tanh>());
    CHECK(stack->state_dict().keys() ==
          std::vector<std::string>{"layers.0.weight", "layers.0.bias"});
    auto copy = std::dynamic_pointer_cast<nn::ModuleList>(stack->layers->clone());
    REQUIRE(copy);
    CHECK(copy->repr() == stack->layers->repr());
    CHECK_VALUES(copy->at<nn::Linear>(0)->weight,
                 test::values(stack->layers->at<nn::Linear>(0)->weight));
    CHECK(copy->at<nn::Linear>(0)->weight.impl() !=
          stack->layers->at<nn::Linear>(0)->weight.impl());
}

TEST_CASE("ModuleList holds a module appended twice as two entries, as PyTorch") {
    // torch: ModuleList([lin, lin]).append(tanh) has len 3 and children "0", "1", "2".
    auto lin = std::make_shared<nn::Linear>(2, 2);
    auto tanh = std::make_shared<nn::Tanh>();
    nn::ModuleList list{lin, lin};
    list.push_back(tanh);
    CHECK(list.size() == 3);
    CHECK(list[1] == lin);
    CHECK(list[2] == tanh);  // appended as "2", not over "1"
    std::vector<std::shared_ptr<nn::Module>> iterated(list.begin(), list.end());
    CHECK(iterated == std::vector<std::shared_ptr<nn::Module>>{lin, lin, tanh});
    CHECK(test::child_names(list) == std::vector<std::string>{"0", "2"});  // named_children dedups
    CHECK(list.parameters().size() == 2);
    CHECK(list.state_dict().keys() ==
          std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias"});
}

TEST_CASE("ModuleList: a None entry is counted and indexed, and named in errors") {
    nn::ModuleList list{std::make_shared<nn::Tanh>(), std::make_shared<nn::ReLU>()};
    list.set_submodule("0", nullptr);
    CHECK(list.size() == 2);
    CHECK(list[0] == nullptr);
    CHECK_THROWS_WITH_AS(list.at<nn::Tanh>(0),
                         "ModuleList: child 0 is not of the requested type (got None)", xg::Error);
    CHECK_THROWS_WITH_AS(list.at<nn::Tanh>(1),
                         "ModuleList: child 1 is not of the requested type (got ReLU)", xg::Error);
    CHECK_THROWS_WITH_AS(list.push_back(nullptr),
                         "ModuleList.push_back: expected a module (got nullptr)", xg::Error);
}

}  // namespace nn_test_module_list
