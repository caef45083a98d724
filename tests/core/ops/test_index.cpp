// Tests for the indexing ops (core/ops/index.cpp): embedding's rows looked up and
// its gradient scatter-added into the rows they came from (a repeated index
// receives the sum), by hand; float64 gradchecks and gradgradchecks with respect
// to the table; and its error messages. The Embedding module is tested in
// tests/nn/test_embedding.cpp.
#include <cstdint>
#include <sstream>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_index {

using xg::Tensor;

namespace {

// A float64 table of 4 rows and 3 columns: row r is {10 r, 10 r + 1, 10 r + 2}.
Tensor table(bool requires_grad = false) {
    return test::f64({{0, 1, 2}, {10, 11, 12}, {20, 21, 22}, {30, 31, 32}}, requires_grad);
}

}  // namespace

TEST_CASE("embedding picks the indexed rows, for indices of any shape") {
    Tensor w = table();
    Tensor y = xg::embedding(w, test::i64({{2, 0}, {3, 2}}));
    CHECK(y.shape() == xg::Shape{2, 2, 3});
    CHECK_VALUES(y, (xt::xarray<double>{{{20, 21, 22}, {0, 1, 2}}, {{30, 31, 32}, {20, 21, 22}}}));
    CHECK_VALUES(xg::embedding(w, test::i64({1, 1, 3})),
                 (xt::xarray<double>{{10, 11, 12}, {10, 11, 12}, {30, 31, 32}}));
    // 0-d indices pick one row; no indices pick none.
    CHECK_VALUES(xg::embedding(w, xg::full({}, 3, xg::kInt64)), (xt::xarray<double>{30, 31, 32}));
    CHECK(xg::embedding(w, xg::zeros({0}, xg::kInt64)).shape() == xg::Shape{0, 3});
    CHECK(xg::embedding(w, xg::zeros({2, 0}, xg::kInt64)).shape() == xg::Shape{2, 0, 3});
    // The table's dtype is the output's.
    Tensor y32 = xg::embedding(w.to(xg::kFloat32), test::i64({3, 1}));
    CHECK(y32.dtype() == xg::kFloat32);
    CHECK_VALUES(y32, (xt::xarray<double>{{30, 31, 32}, {10, 11, 12}}));
}

TEST_CASE(
    "embedding's gradient adds each output row into its table row, summing repeated indices") {
    for (xg::Dtype dtype : {xg::kFloat64, xg::kFloat32}) {
        CAPTURE(xg::dtype_name(dtype));
        Tensor w = table().to(dtype).requires_grad_(true);
        // Output rows 0, 2 and 3 come from table row 1, output row 1 from table row 3.
        Tensor y = xg::embedding(w, test::i64({{1, 3}, {1, 1}}));
        CHECK(y.grad_fn_name() == "EmbeddingBackward");
        Tensor g = test::f64({{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}}).to(dtype);
        xg::sum(y * g).backward();
        CHECK(w.grad().dtype() == dtype);
        CHECK_VALUES(w.grad(),
                     (xt::xarray<double>{
                         {0, 0, 0}, {1 + 7 + 10, 2 + 8 + 11, 3 + 9 + 12}, {0, 0, 0}, {4, 5, 6}}));
    }
}

TEST_CASE("embedding's backward uses the indices as they were in the forward") {
    Tensor w = table(true);
    Tensor indices = test::i64({0, 2});
    Tensor y = xg::embedding(w, indices);
    indices.data<std::int64_t>()(0) = 3;  // edited after the forward
    xg::sum(y * test::f64({{1, 1, 1}, {2, 2, 2}})).backward();
    CHECK_VALUES(w.grad(), (xt::xarray<double>{{1, 1, 1}, {0, 0, 0}, {2, 2, 2}, {0, 0, 0}}));
}

TEST_CASE("embedding gradchecks in float64 with respect to the table") {
    // Rows 1 and 4 picked more than once, row 3 never.
    Tensor indices = test::i64({{{1, 0}, {4, 1}}, {{1, 1}, {2, 4}}});
    CHECK(test::gradcheck(
        [&](const std::vector<Tensor>& in) { return xg::embedding(in[0], indices); },
        {test::randn64({5, 3}, 21)}));
    Tensor scalar = xg::full({}, 2, xg::kInt64);
    CHECK(
        test::gradcheck([&](const std::vector<Tensor>& in) { return xg::embedding(in[0], scalar); },
                        {test::randn64({3, 4}, 22)}));
}

TEST_CASE("double backward: embedding in float64") {
    // Rows picked more than once and a row never picked; the output squared, so
    // the second derivative runs through the lookup and its recorded backward.
    Tensor indices = test::i64({{1, 0}, {4, 1}, {1, 4}});
    CHECK(test::gradgradcheck(
        [&](const std::vector<Tensor>& in) {
            Tensor y = xg::embedding(in[0], indices);
            return y * y;
        },
        {test::randn64({5, 3}, 150)}));
    Tensor scalar = xg::full({}, 2, xg::kInt64);
    CHECK(test::gradgradcheck(
        [&](const std::vector<Tensor>& in) {
            return xg::embedding(in[0], scalar) * xg::embedding(in[0], indices);
        },
        {test::randn64({5, 3}, 151)}));
}

TEST_CASE("embedding error messages") {
    Tensor w = table();
    CHECK_THROWS_WITH_AS(
        xg::embedding(w, test::i64({0, 4})),
        "embedding: expected every index in [0, 4) for a table of 4 rows (got index 4)", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::embedding(w, test::i64({{1, -2}})),
        "embedding: expected every index in [0, 4) for a table of 4 rows (got index -2)",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::embedding(xg::zeros({0, 3}, xg::kFloat64), test::i64({0})),
        "embedding: expected every index in [0, 0) for a table of 0 rows (got index 0)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::embedding(w, xg::zeros({2})),
                         "embedding: expected int64 indices (got float32)", xg::Error);
    CHECK_THROWS_WITH_AS(xg::embedding(w, test::f64({0, 1})),
                         "embedding: expected int64 indices (got float64)", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::embedding(test::f64({0, 1, 2}), test::i64({0})),
        "embedding: expected a 2-d weight [num_embeddings, embedding_dim] (got [3])", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::embedding(xg::zeros({2, 3, 4}), test::i64({0})),
        "embedding: expected a 2-d weight [num_embeddings, embedding_dim] (got [2, 3, 4])",
        xg::Error);
    CHECK_THROWS_WITH_AS(xg::embedding(xg::zeros({4, 3}, xg::kInt64), test::i64({0})),
                         "embedding: expected a floating-point tensor (got int64)", xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::embedding(Tensor(), test::i64({0})),
        "embedding: expected a defined weight and defined indices (got an undefined tensor)",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::embedding(w, Tensor()),
        "embedding: expected a defined weight and defined indices (got an undefined tensor)",
        xg::Error);
}

TEST_CASE("masked_fill and where: PyTorch's values, broadcasting and float64 gradchecks") {
    xt::xarray<bool> flags = {{true, false, false}, {false, false, true}};
    xg::Tensor mask = xg::tensor<bool>(flags);
    CHECK(mask.dtype() == xg::kBool);
    xg::Tensor x = test::arange234();  // [2, 3, 4] of 0..23
    xg::Tensor row_mask = xg::tensor<bool>(xt::xarray<bool>{true, false, false, true});
    xt::xarray<double> filled = test::values(xg::masked_fill(x, row_mask, -1.0));
    CHECK(filled(0, 0, 0) == -1.0);
    CHECK(filled(0, 0, 1) == 1.0);
    CHECK(filled(1, 2, 3) == -1.0);
    xg::Tensor a = test::f64({{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}});
    xg::Tensor b = test::f64({10.0, 20.0, 30.0});
    CHECK(test::values(xg::where(mask, a, b)) ==
          xt::xarray<double>{{1.0, 20.0, 30.0}, {10.0, 20.0, 6.0}});
    CHECK(test::gradcheck(
        [&](const std::vector<xg::Tensor>& in) { return xg::masked_fill(in[0], mask, 7.0); },
        {test::randn64({2, 3})}));
    CHECK(test::gradcheck(
        [&](const std::vector<xg::Tensor>& in) { return xg::where(mask, in[0], in[1]); },
        {test::randn64({2, 3}, 1), test::randn64({3}, 2)}));
    CHECK_THROWS_WITH_AS(xg::masked_fill(a, a, 0.0),
                         "masked_fill: expected a bool mask (got float64)", xg::Error);
}

TEST_CASE("kBool tensors: one byte each, converted both ways, printed as PyTorch prints them") {
    xg::Tensor flags = xg::tensor<bool>(xt::xarray<bool>{true, false, true});
    CHECK(xg::dtype_name(flags.dtype()) == "bool");
    CHECK_FALSE(xg::is_floating_point(xg::kBool));
    CHECK(sizeof(flags.data<bool>()(0)) == 1);
    CHECK(test::values(flags.to(xg::kFloat32)) == xt::xarray<double>{1.0, 0.0, 1.0});
    CHECK(test::values(test::f64({0.0, -2.5, 3.0}).to(xg::kBool)) ==
          xt::xarray<double>{0.0, 1.0, 1.0});
    std::ostringstream printed;
    printed << flags;
    CHECK(printed.str() == "tensor([ True, False,  True])");
}

}  // namespace core_ops_test_index
