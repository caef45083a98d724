// Embedding (and the xg::embedding op): lookup and scatter-add gradient vs PyTorch,
// index checks, init statistics, printing.
#include <cmath>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

#include "helpers.hpp"
#include "nn/reference/layers_reference.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_embedding {

using reference::lookup;
namespace ref = reference::layers;

namespace {
xg::Tensor reference_indices() {
    return xg::tensor<std::int64_t>(
        xt::cast<std::int64_t>(lookup(ref::embedding, "indices").array()));
}
}  // namespace

TEST_CASE("Embedding matches PyTorch: rows looked up, repeated rows' gradients summed") {
    const auto& r = ref::embedding;
    xg::nn::Embedding emb(5, 3);
    emb.to(xg::kFloat64);
    emb.load_state_dict({{"weight", lookup(r, "weight").tensor()}});
    xg::Tensor y = emb(reference_indices());
    CHECK(y.shape() == xg::Shape{2, 3, 3});
    CHECK_VALUES(y, lookup(r, "output").array());
    xg::sum(y * lookup(r, "upstream").tensor()).backward();
    CHECK_VALUES(emb.weight.grad(), lookup(r, "grad_weight").array());
    CHECK(y.grad_fn_name() == "EmbeddingBackward");
}

TEST_CASE("Embedding takes indices of any shape, including 0-d") {
    xg::nn::Embedding emb(4, 2);
    CHECK(emb(xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{3, 0, 3})).shape() ==
          xg::Shape{3, 2});
    xg::Tensor scalar = xg::full({}, 2, xg::kInt64);
    xg::Tensor row = emb(scalar);
    CHECK(row.shape() == xg::Shape{2});
    CHECK_VALUES(row, xt::xarray<double>(xt::row(test::values(emb.weight), 2)));
    CHECK(emb(xg::zeros({0, 5}, xg::kInt64)).shape() == xg::Shape{0, 5, 2});
}

TEST_CASE("Embedding rejects out-of-range and non-int64 indices") {
    xg::nn::Embedding emb(10, 4);
    CHECK_THROWS_WITH_AS(
        emb(xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{1, 10})),
        "embedding: expected every index in [0, 10) for a table of 10 rows (got index 10)",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        emb(xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{-1})),
        "embedding: expected every index in [0, 10) for a table of 10 rows (got index -1)",
        xg::Error);
    CHECK_THROWS_WITH_AS(emb(xg::zeros({2})), "embedding: expected int64 indices (got float32)",
                         xg::Error);
    CHECK_THROWS_AS(xg::embedding(xg::ones({3}), xg::zeros({1}, xg::kInt64)), xg::Error);
}

TEST_CASE("Embedding gradchecks in float64 with respect to the table") {
    xg::Tensor indices = xg::tensor<std::int64_t>(xt::xarray<std::int64_t>{{1, 1, 0}, {3, 1, 2}});
    CHECK(test::gradcheck(
        [](const std::vector<xg::Tensor>& in) { return xg::embedding(in[0], in[1]); },
        {test::randn64({4, 3}, 1), indices}));
    auto emb = std::make_shared<xg::nn::Embedding>(4, 3);
    emb->to(xg::kFloat64);
    CHECK(test::gradcheck(
        [&](const std::vector<xg::Tensor>& in) {
            emb->weight = in[0];
            return (*emb)(indices);
        },
        {test::randn64({4, 3}, 2)}));
}

TEST_CASE("Embedding weight is N(0, 1) and reproducible under manual_seed") {
    xg::manual_seed(17);
    xg::nn::Embedding a(100, 50);
    auto w = test::values(a.weight);
    CHECK(std::abs(xt::mean(w)()) < 0.05);
    CHECK(std::abs(xt::stddev(w)() - 1.0) < 0.05);
    xg::manual_seed(17);
    xg::nn::Embedding b(100, 50);
    CHECK_VALUES(b.weight, w);
}

TEST_CASE("Embedding prints as PyTorch and clones") {
    CHECK(xg::nn::Embedding(10, 4).repr() == lookup(ref::reprs, "embedding"));
    auto emb = std::make_shared<xg::nn::Embedding>(6, 2);
    auto copy = std::dynamic_pointer_cast<xg::nn::Embedding>(emb->clone());
    REQUIRE(copy);
    CHECK(copy->num_embeddings == 6);
    CHECK_VALUES(copy->weight, test::values(emb->weight));
    CHECK(copy->weight.impl() != emb->weight.impl());
}

}  // namespace nn_test_embedding
