// Tests for matmul (core/ops/matmul.cpp): every torch.matmul case (1-D, 2-D, batched,
// broadcast batch dims), checked against a naive triple loop and by gradcheck.
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>
#include <xtensor/xview.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_ops_test_matmul {

using xg::Shape;
using xg::Tensor;
using In = std::vector<Tensor>;

namespace {

// The textbook product of two 2-D arrays, independent of BLAS and of the library.
xt::xarray<double> naive_mm(const xt::xarray<double>& a, const xt::xarray<double>& b) {
    xt::xarray<double> c = xt::zeros<double>({a.shape(0), b.shape(1)});
    for (std::size_t i = 0; i < a.shape(0); ++i)
        for (std::size_t j = 0; j < b.shape(1); ++j)
            for (std::size_t k = 0; k < a.shape(1); ++k) c(i, j) += a(i, k) * b(k, j);
    return c;
}

Tensor mm(const In& in) { return xg::matmul(in[0], in[1]); }

}  // namespace

TEST_CASE("matmul of vectors and matrices, by hand") {
    Tensor v = test::f64({1, 2, 3});
    Tensor w = test::f64({4, -5, 6});
    Tensor m = test::f64({{1, 0, 2}, {-1, 3, 1}});   // [2, 3]
    Tensor n = test::f64({{1, 2}, {0, 1}, {4, 0}});  // [3, 2]

    Tensor dot = xg::matmul(v, w);
    CHECK(dot.shape() == Shape{});  // 1-D . 1-D is a 0-d dot product
    CHECK(dot.item<double>() == 12.0);

    CHECK_VALUES(xg::matmul(m, v), (xt::xarray<double>{7, 8}));            // [2,3].[3] -> [2]
    CHECK_VALUES(xg::matmul(v, n), (xt::xarray<double>{13, 4}));           // [3].[3,2] -> [2]
    CHECK_VALUES(xg::matmul(m, n), (xt::xarray<double>{{9, 2}, {3, 1}}));  // [2,3].[3,2]
}

TEST_CASE("matmul of larger float32 matrices agrees with a naive loop") {
    // Big enough that a BLAS path (if any) is taken; float32 tolerance.
    Tensor a = test::randn64({17, 33}, 1);
    Tensor b = test::randn64({33, 9}, 2);
    Tensor c = xg::matmul(a.to(xg::kFloat32), b.to(xg::kFloat32));
    CHECK(c.dtype() == xg::kFloat32);
    CHECK_VALUES_TOL(c, naive_mm(test::values(a), test::values(b)), 1e-4, 1e-4);
    CHECK_VALUES(xg::matmul(a, b), naive_mm(test::values(a), test::values(b)));
}

TEST_CASE("batched matmul: [2,3,4].[4,5] and [2,3,4].[2,4,5]") {
    auto a = test::values(test::randn64({2, 3, 4}, 3));
    auto b = test::values(test::randn64({4, 5}, 4));
    auto bb = test::values(test::randn64({2, 4, 5}, 5));
    Tensor c = xg::matmul(test::f64(a), test::f64(b));
    Tensor cc = xg::matmul(test::f64(a), test::f64(bb));
    REQUIRE(c.shape() == Shape{2, 3, 5});
    REQUIRE(cc.shape() == Shape{2, 3, 5});
    xt::xarray<double> expected = xt::zeros<double>({2, 3, 5});
    xt::xarray<double> expected_b = xt::zeros<double>({2, 3, 5});
    for (std::size_t i = 0; i < 2; ++i) {
        xt::xarray<double> ai = xt::view(a, i);
        xt::view(expected, i) = naive_mm(ai, b);
        xt::view(expected_b, i) = naive_mm(ai, xt::xarray<double>(xt::view(bb, i)));
    }
    CHECK_VALUES(c, expected);
    CHECK_VALUES(cc, expected_b);
}

TEST_CASE("matmul broadcasts batch dims: [2,1,3,4].[5,4,2] and [3,4].[2,4,5]") {
    auto a = test::values(test::randn64({2, 1, 3, 4}, 6));
    auto b = test::values(test::randn64({5, 4, 2}, 7));
    Tensor c = xg::matmul(test::f64(a), test::f64(b));
    REQUIRE(c.shape() == Shape{2, 5, 3, 2});
    xt::xarray<double> expected = xt::zeros<double>({2, 5, 3, 2});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 5; ++j)
            xt::view(expected, i, j) =
                naive_mm(xt::xarray<double>(xt::view(a, i, 0)), xt::xarray<double>(xt::view(b, j)));
    CHECK_VALUES(c, expected);

    auto m = test::values(test::randn64({3, 4}, 8));
    auto bb = test::values(test::randn64({2, 4, 5}, 9));
    Tensor d = xg::matmul(test::f64(m), test::f64(bb));
    REQUIRE(d.shape() == Shape{2, 3, 5});
    for (std::size_t j = 0; j < 2; ++j) {
        CAPTURE(j);
        CHECK(test::close(xt::xarray<double>(xt::view(test::values(d), j)),
                          naive_mm(m, xt::xarray<double>(xt::view(bb, j)))));
    }
}

TEST_CASE("batched matmul with a 1-D operand, as torch.matmul") {
    // [2,3,4].[4] -> [2,3] and [4].[2,4,5] -> [2,5]: the vector gets a dim that is removed after.
    auto a = test::values(test::randn64({2, 3, 4}, 10));
    auto v = test::values(test::randn64({4}, 11));
    Tensor c = xg::matmul(test::f64(a), test::f64(v));
    REQUIRE(c.shape() == Shape{2, 3});
    xt::xarray<double> col = v;
    col.reshape({4, 1});
    for (std::size_t i = 0; i < 2; ++i) {
        xt::xarray<double> expected =
            xt::view(naive_mm(xt::xarray<double>(xt::view(a, i)), col), xt::all(), 0);
        CHECK(test::close(xt::xarray<double>(xt::view(test::values(c), i)), expected));
    }
    Tensor d = xg::matmul(test::f64(v), test::f64(test::values(test::randn64({2, 4, 5}, 12))));
    CHECK(d.shape() == Shape{2, 5});
}

TEST_CASE("gradcheck: matmul in every form") {
    struct Row {
        const char* name;
        Shape a, b;
    };
    std::vector<Row> rows = {
        {"1-D . 1-D", {4}, {4}},
        {"2-D . 1-D", {3, 4}, {4}},
        {"1-D . 2-D", {4}, {4, 2}},
        {"2-D . 2-D", {3, 4}, {4, 2}},
        {"[2,3,4] . [4,5]", {2, 3, 4}, {4, 5}},
        {"[2,3,4] . [2,4,5]", {2, 3, 4}, {2, 4, 5}},
        {"[2,1,3,4] . [5,4,2]", {2, 1, 3, 4}, {5, 4, 2}},
        {"[3,4] . [2,4,5]", {3, 4}, {2, 4, 5}},
        {"[2,3,4] . [4]", {2, 3, 4}, {4}},
        {"[4] . [2,4,5]", {4}, {2, 4, 5}},
    };
    std::uint64_t seed = 100;
    for (const auto& row : rows) {
        CAPTURE(row.name);
        CHECK(test::gradcheck(mm, {test::randn64(row.a, seed), test::randn64(row.b, seed + 1)}));
        seed += 2;
    }
    // The same tensor on both sides: both gradients must be added.
    CHECK(test::gradcheck([](const In& in) { return xg::matmul(in[0], in[0]); },
                          {test::randn64({3, 3}, 200)}));
}

TEST_CASE("matmul gradients come back in float32 for float32 inputs") {
    Tensor a = test::randn64({3, 4}, 300).to(xg::kFloat32);
    Tensor b = test::randn64({4, 2}, 301).to(xg::kFloat32);
    a.requires_grad_();
    b.requires_grad_();
    xg::sum(xg::matmul(a, b)).backward();
    CHECK(a.grad().dtype() == xg::kFloat32);
    // d sum(A B) / dA = 1 B^T: each row of A's gradient is B's row sums.
    auto bv = test::values(b);
    xt::xarray<double> row = xt::sum(bv, {1});
    CHECK_VALUES_TOL(a.grad(), xt::xarray<double>(xt::broadcast(row, {3, 4})), 1e-6, 1e-6);
}

TEST_CASE("matmul error messages") {
    CHECK_THROWS_WITH_AS(xg::matmul(xg::zeros({2, 3}), xg::zeros({4, 5})),
                         "matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 != 4)",
                         xg::Error);
    // Batch dims 2 and 3 do not broadcast.
    CHECK_THROWS_AS(xg::matmul(xg::zeros({2, 3, 4}), xg::zeros({3, 4, 5})), xg::Error);
    CHECK_THROWS_AS(xg::matmul(xg::zeros({3}), xg::zeros({4})), xg::Error);
    CHECK_THROWS_AS(xg::matmul(xg::zeros({2, 3}), xg::zeros({3, 2}, xg::kFloat64)), xg::Error);
}

TEST_CASE("linear's input gradient goes over its saved input only when nobody else holds it") {
    // dX = dY W may take X's buffer once dW has read X (grad_buffers.hpp): the
    // step's peak then holds one activation less. Never when the input is held
    // elsewhere, or when retain_graph keeps the graph for a second backward.
    Tensor leaf = test::randn64({5, 4}, 1).requires_grad_();
    Tensor w = test::randn64({3, 4}, 2).requires_grad_();
    Tensor b = test::randn64({3}, 3).requires_grad_();
    const xt::xarray<double> expected_x = test::values(leaf) * 2.0;
    auto run = [&](bool hold_x, bool retain) {
        // x is an op's output (2 * leaf) whose backward notes where dX lives.
        const double* got = nullptr;
        Tensor x = xg::autograd::make_result(leaf.detach() * 2.0, "ProbeBackward", {leaf},
                                             [&got](const Tensor& g) {
                                                 got = g.data<double>().data();
                                                 return std::vector<Tensor>{g * 2.0};
                                             });
        const double* buffer = x.data<double>().data();
        Tensor loss = xg::sum(xg::linear(x, w, b));
        Tensor kept = hold_x ? x : Tensor();
        x = Tensor();
        loss.backward(Tensor(), retain);
        const bool reused = got == buffer;
        if (hold_x) CHECK(xt::all(xt::equal(test::values(kept), expected_x)));
        if (retain) {  // the saved input is intact: a second pass gives the same gradients
            xt::xarray<double> first = test::values(w.grad());
            w.mutable_grad() = Tensor();
            loss.backward();
            CHECK(xt::all(xt::equal(test::values(w.grad()), first)));
        }
        w.mutable_grad() = Tensor();
        return reused;
    };
    CHECK(run(false, false));
    CHECK_FALSE(run(true, false));
    CHECK_FALSE(run(false, true));
    // dX = dY W, with dY all ones, when it went over X (which nobody holds here).
    leaf.mutable_grad() = Tensor();
    xg::sum(xg::linear(leaf * 2.0, w, b)).backward();
    xt::xarray<double> column_sums = xt::sum(test::values(w), {0});
    for (std::size_t r = 0; r < 5; ++r)
        for (std::size_t c = 0; c < 4; ++c)
            CHECK(leaf.grad().data<double>()(r, c) == doctest::Approx(2.0 * column_sums(c)));
}

TEST_CASE("linear adds its bias to every row, however many rows there are") {
    // The bias seeds the output rows before the gemm, copied in doubling runs
    // and then in blocks of 16 KiB: 1500 rows of 3 doubles or floats cross
    // several blocks, and odd counts end on a partial run.
    for (std::size_t rows : {1, 2, 5, 7, 1500}) {
        for (std::size_t n : {3, 64}) {
            CAPTURE(rows);
            CAPTURE(n);
            Tensor x = test::randn64({rows, 4}, 1);
            Tensor w = test::randn64({n, 4}, 2);
            Tensor b = test::randn64({n}, 3);
            xt::xarray<double> expected =
                naive_mm(test::values(x), xt::transpose(test::values(w))) + test::values(b);
            CHECK_VALUES(xg::linear(x, w, b), expected);
            Tensor y32 = xg::linear(x.to(xg::kFloat32), w.to(xg::kFloat32), b.to(xg::kFloat32));
            CHECK_VALUES_TOL(y32, expected, 1e-5, 1e-5);
        }
    }
}

}  // namespace core_ops_test_matmul
