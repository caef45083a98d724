// Sequential: order, naming, indexing, hooks, state_dict keys, printing, clone.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_sequential {

using reference::lookup;
namespace ref = reference::layers;
namespace nn = xg::nn;

TEST_CASE("Sequential runs its children in order") {
    xg::manual_seed(1);
    auto first = std::make_shared<nn::Linear>(3, 4);
    auto act = std::make_shared<nn::Tanh>();
    auto second = std::make_shared<nn::Linear>(4, 2);
    nn::Sequential seq{first, act, second};
    xg::Tensor x = xg::randn({5, 3});
    CHECK_VALUES(seq(x), test::values((*second)((*act)((*first)(x)))));
    CHECK(nn::Sequential()(x).impl() == x.impl());  // empty: the identity
}

TEST_CASE("Sequential names children 0, 1, ... and grows with push_back") {
    nn::Sequential seq{std::make_shared<nn::Linear>(2, 3), std::make_shared<nn::ReLU>()};
    CHECK(seq.size() == 2);
    seq.push_back(std::make_shared<nn::Linear>(3, 1, false));
    CHECK(seq.size() == 3);
    CHECK(test::child_names(seq) == std::vector<std::string>{"0", "1", "2"});
    CHECK(seq.state_dict().keys() == std::vector<std::string>{"0.weight", "0.bias", "2.weight"});
    CHECK(seq[1]->name() == "ReLU");
    CHECK(seq.at<nn::Linear>(2)->out_features == 1);
    CHECK_THROWS_WITH_AS(seq[3], "Sequential: expected an index in [0, 3) (got 3)", xg::Error);
    CHECK_THROWS_AS(seq.at<nn::Linear>(1), xg::Error);
    CHECK_THROWS_AS(seq.push_back(nullptr), xg::Error);
}

TEST_CASE("Sequential calls children through operator(), so their hooks fire") {
    auto relu = std::make_shared<nn::ReLU>();
    nn::Sequential seq{std::make_shared<nn::Identity>(), relu};
    int calls = 0;
    auto handle = relu->register_forward_hook(
        [&](nn::Module&, const xg::Tensor&, const xg::Tensor&) { ++calls; });
    seq(xg::ones({2}));
    CHECK(calls == 1);
}

TEST_CASE("Sequential follows set_submodule replacements") {
    nn::Sequential seq{std::make_shared<nn::Identity>(), std::make_shared<nn::ReLU>()};
    seq.set_submodule("1", std::make_shared<nn::Sigmoid>());
    CHECK_VALUES(seq(xg::zeros({2}, xg::kFloat64)), (xt::xarray<double>{0.5, 0.5}));
}

TEST_CASE("Sequential runs a module appended twice twice, and counts it twice, as PyTorch") {
    // torch: Sequential(lin, tanh, lin) has len 3 and state_dict keys 0.* and 2.*;
    // append gives "3".
    xg::manual_seed(3);
    auto lin = std::make_shared<nn::Linear>(2, 2);
    auto tanh = std::make_shared<nn::Tanh>();
    nn::Sequential seq{lin, tanh, lin};
    xg::Tensor x = xg::randn({4, 2});
    CHECK_VALUES(seq(x), test::values((*lin)((*tanh)((*lin)(x)))));
    CHECK(seq.size() == 3);
    CHECK(seq[2] == lin);
    CHECK(seq.state_dict().keys() ==
          std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
    seq.push_back(std::make_shared<nn::ReLU>());
    CHECK(seq.size() == 4);
    CHECK(seq.at<nn::ReLU>(3));
    CHECK(seq[2] == lin);
}

TEST_CASE("Sequential with a None child says which one it cannot call") {
    nn::Sequential seq{std::make_shared<nn::Identity>(), std::make_shared<nn::ReLU>()};
    seq.set_submodule("1", nullptr);
    CHECK(seq.size() == 2);
    CHECK_THROWS_WITH_AS(seq(xg::ones({2})), "Sequential: child 1 is None and cannot be called",
                         xg::Error);
}

TEST_CASE("Sequential gradchecks in float64") {
    auto seq = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::GELU>(),
        std::make_shared<nn::LayerNorm>(xg::Shape{4}), std::make_shared<nn::Linear>(4, 2)});
    seq->to(xg::kFloat64);
    CHECK(test::gradcheck([&](const std::vector<xg::Tensor>& in) { return (*seq)(in[0]); },
                          {test::randn64({2, 3}, 7)}));
}

TEST_CASE("Sequential prints as PyTorch") {
    nn::Sequential seq{std::make_shared<nn::Linear>(4, 8), std::make_shared<nn::ReLU>(),
                       std::make_shared<nn::Dropout>(0.1), std::make_shared<nn::Linear>(8, 2)};
    CHECK(seq.repr() == lookup(ref::reprs, "sequential"));
    CHECK(nn::Sequential().repr() == lookup(ref::reprs, "sequential_empty"));
    nn::Sequential nested{
        std::make_shared<nn::LayerNorm>(xg::Shape{4}),
        std::make_shared<nn::FeedForward>(4, 16, 0.1),
        std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
            std::make_shared<nn::Linear>(4, 4), std::make_shared<nn::Tanh>()})};
    CHECK(nested.repr() == lookup(ref::reprs, "sequential_nested"));
}

TEST_CASE("Sequential clone is a deep copy that computes the same function") {
    auto seq = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::SiLU>(),
        std::make_shared<nn::Linear>(4, 2)});
    auto copy = std::dynamic_pointer_cast<nn::Sequential>(seq->clone());
    REQUIRE(copy);
    CHECK(copy->repr() == seq->repr());
    xg::Tensor x = xg::randn({2, 3});
    CHECK_VALUES((*copy)(x), test::values((*seq)(x)));
    CHECK(copy->at<nn::Linear>(0)->weight.impl() != seq->at<nn::Linear>(0)->weight.impl());
    copy->at<nn::Linear>(0)->weight.data<float>().fill(0.0f);
    CHECK(xt::any(xt::not_equal(seq->at<nn::Linear>(0)->weight.data<float>(), 0.0f)));
}

TEST_CASE("Sequential clone keeps a module held twice one module, as copy.deepcopy does") {
    // torch: c = copy.deepcopy(Sequential(lin, tanh, lin)); c[0] is c[2] and not lin.
    auto lin = std::make_shared<nn::Linear>(3, 3);
    auto seq = std::make_shared<nn::Sequential>(
        std::initializer_list<std::shared_ptr<nn::Module>>{lin, std::make_shared<nn::Tanh>(), lin});
    auto copy = std::dynamic_pointer_cast<nn::Sequential>(seq->clone());
    REQUIRE(copy);
    CHECK((*copy)[0] == (*copy)[2]);
    CHECK((*copy)[0] != lin);
    CHECK(copy->parameters().size() == 2);
    xg::Tensor x = xg::randn({2, 3});
    CHECK_VALUES((*copy)(x), test::values((*seq)(x)));
}

}  // namespace nn_test_sequential
