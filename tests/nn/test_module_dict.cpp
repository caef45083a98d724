// ModuleDict: insertion order, lookup, replacement, printing, clone.
#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_module_dict {

using reference::lookup;
namespace ref = reference::layers;
namespace nn = xg::nn;

TEST_CASE("ModuleDict keeps insertion order and looks modules up by name") {
    nn::ModuleDict dict{{"encoder", std::make_shared<nn::Linear>(3, 5)},
                        {"act", std::make_shared<nn::SiLU>()}};
    dict.insert("norm", std::make_shared<nn::LayerNorm>(xg::Shape{5}));
    CHECK(dict.size() == 3);
    CHECK(dict.keys() == std::vector<std::string>{"encoder", "act", "norm"});
    CHECK(dict.contains("act"));
    CHECK_FALSE(dict.contains("decoder"));
    CHECK(dict.at("act")->name() == "SiLU");
    CHECK(dict["norm"]->name() == "LayerNorm");
    CHECK(dict.at<nn::Linear>("encoder")->in_features == 3);
    CHECK_THROWS_WITH_AS(
        dict.at("decoder"),
        "ModuleDict: expected one of the keys [encoder, act, norm] (got 'decoder')", xg::Error);
    CHECK_THROWS_AS(dict.at<nn::Linear>("act"), xg::Error);
    CHECK_THROWS_AS(dict.insert("a.b", std::make_shared<nn::ReLU>()), xg::Error);
    CHECK(dict.repr() == lookup(ref::reprs, "module_dict"));
    CHECK(dict.state_dict().keys() ==
          std::vector<std::string>{"encoder.weight", "encoder.bias", "norm.weight", "norm.bias"});
}

TEST_CASE("ModuleDict: re-inserting a name replaces the module in place; clone is deep") {
    auto dict = std::make_shared<nn::ModuleDict>();
    dict->insert("a", std::make_shared<nn::ReLU>()).insert("b", std::make_shared<nn::Linear>(2, 2));
    dict->insert("a", std::make_shared<nn::Tanh>());
    CHECK(dict->keys() == std::vector<std::string>{"a", "b"});
    CHECK(dict->at("a")->name() == "Tanh");
    auto copy = std::dynamic_pointer_cast<nn::ModuleDict>(dict->clone());
    REQUIRE(copy);
    CHECK(copy->repr() == dict->repr());
    CHECK_VALUES(copy->at<nn::Linear>("b")->weight,
                 test::values(dict->at<nn::Linear>("b")->weight));
    CHECK(copy->at<nn::Linear>("b")->weight.impl() != dict->at<nn::Linear>("b")->weight.impl());
}

TEST_CASE("ModuleDict finds a module held under two keys under both, as PyTorch") {
    // torch: ModuleDict({'a': lin, 'b': lin}) has len 2, keys a, b, and d['b'] is lin.
    auto lin = std::make_shared<nn::Linear>(2, 2);
    nn::ModuleDict dict{{"a", lin}, {"b", lin}};
    CHECK(dict.size() == 2);
    CHECK(dict.keys() == std::vector<std::string>{"a", "b"});
    CHECK(dict.contains("b"));
    CHECK(dict.at("b") == lin);
    CHECK(dict.at<nn::Linear>("b") == lin);
    dict.set_submodule("b", nullptr);
    CHECK_THROWS_WITH_AS(dict.at<nn::Linear>("b"),
                         "ModuleDict: 'b' is not of the requested type (got None)", xg::Error);
}

}  // namespace nn_test_module_dict
