// Property: random small compositions of ops (elementwise, broadcasting,
// reductions, matmul, shape ops, softmax, losses) pass gradcheck in float64.
// Each case is a little program over two inputs, a [2, 3] and a broadcastable
// second one, replayed by gradcheck for every finite difference.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "property/property.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace property_test_gradcheck_property {

namespace {

using property::Rng;
using xg::Tensor;

constexpr int kCases = 200;

// Ops that keep a [2, 3]-shaped value [2, 3] and are smooth on all of R
// (log and sqrt see only positive arguments). relu and abs are left out:
// finite differences across their kink would fail for the wrong reason.
Tensor unary(int op, const Tensor& x) {
    switch (op) {
        case 0: return xg::tanh(x);
        case 1: return xg::sigmoid(x);
        case 2: return xg::silu(x);
        case 3: return xg::gelu(x);
        case 4: return xg::gelu(x, "tanh");
        case 5: return xg::exp(x * 0.5);
        case 6: return xg::log(x * x + 0.5);
        case 7: return xg::sqrt(x * x + 0.5);
        case 8: return xg::pow(x * x + 0.5, 1.5);
        case 9: return xg::softmax(x, -1);
        case 10: return xg::log_softmax(x, 0);
        case 11: return xg::transpose(xg::reshape(x, {3, 2}), 0, 1);
        case 12: return xg::squeeze(xg::unsqueeze(x, 1), 1);
        case 13: return xg::sum(x, {1}, true) - x;
        case 14: return xg::mean(x, {0}, true) * x;
        case 15: return xg::sum(xg::matmul(x, xg::transpose(x, 0, 1)), {1}, true) * 0.1 + x;
        default: return 2.0 / (x * x + 1.0) - x;
    }
}

// Binary ops between the running value [2, 3] and the second input (any
// shape broadcastable to [2, 3]).
Tensor binary(int op, const Tensor& x, const Tensor& y) {
    switch (op) {
        case 0: return x + y;
        case 1: return x - y;
        case 2: return x * y;
        case 3: return x / (y * y + 1.0);
        case 4: return xg::mean(xg::cat({x, x * y}, 0), {0}, true) + x;
        default: return xg::mse_loss(x, y + xg::zeros_like(x), "none");
    }
}

// The program: a list of (is_binary, op) steps, then a final reduction.
struct Program {
    std::vector<std::pair<bool, int>> steps;
    int reduction = 0;
    std::string text;

    Tensor operator()(const std::vector<Tensor>& in) const {
        Tensor x = in[0];
        for (auto [is_binary, op] : steps) x = is_binary ? binary(op, x, in[1]) : unary(op, x);
        switch (reduction) {
            case 0: return xg::sum(x);
            case 1: return xg::mean(x * x);
            case 2: return std::get<0>(xg::max(x, 1)) * 1.0;  // smooth away from ties
            default: return x;                                // gradcheck seeds every output
        }
    }
};

Program random_program(Rng& rng) {
    Program p;
    int n = rng.integer(1, 4);
    for (int i = 0; i < n; ++i) {
        bool is_binary = rng.coin();
        int op = is_binary ? rng.integer(0, 5) : rng.integer(0, 16);
        p.steps.emplace_back(is_binary, op);
        p.text += fmt::format("{}{} ", is_binary ? "b" : "u", op);
    }
    p.reduction = rng.integer(0, 3);
    p.text += fmt::format("r{}", p.reduction);
    return p;
}

}  // namespace

TEST_CASE("property: random compositions of ops pass gradcheck in float64") {
    Rng rng(20240906);
    const xg::Shape second_shapes[] = {{2, 3}, {3}, {1, 3}, {2, 1}, {}};
    for (int c = 0; c < kCases; ++c) {
        Program program = random_program(rng);
        xg::Shape second = second_shapes[rng.integer(0, 4)];
        Tensor a = xg::tensor<double>(rng.values({2, 3}), true);
        Tensor b = xg::tensor<double>(rng.values(second), true);
        CAPTURE(c);
        CAPTURE(program.text);
        CAPTURE(xg::shape_str(second));
        CHECK(xg::autograd::gradcheck(program, {a, b}, 1e-6, 1e-5, 1e-3));
    }
}

}  // namespace property_test_gradcheck_property
