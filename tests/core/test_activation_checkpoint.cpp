// Tests for activation checkpointing (core/src/activation_checkpoint.cpp):
// values and gradients bit for bit those of the plain run (dropout and stacked
// FeedForward blocks included), parameters' gradients, multiple outputs, the
// random stream, grad mode, errors, the nodes it frees, and a gradcheck.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/activation_checkpoint.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_activation_checkpoint {

using xg::Tensor;
using xg::autograd::Node;
using xg::utils::checkpoint;
using Tensors = std::vector<Tensor>;

namespace {

// Every tensor in `actual` has exactly the bits of the one beside it in `expected`.
void check_identical(const Tensors& actual, const Tensors& expected) {
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
        CAPTURE(i);
        REQUIRE(actual[i].defined());
        REQUIRE(expected[i].defined());
        CHECK(test::identical(actual[i], expected[i]));
    }
}

// Clears .grad, so the next backward's gradients are fresh tensors.
void clear_grads(const Tensors& tensors) {
    for (const Tensor& t : tensors) t.mutable_grad() = Tensor();
}

Tensors grads_of(const Tensors& tensors) {
    Tensors grads;
    for (const Tensor& t : tensors) grads.push_back(t.grad());
    return grads;
}

// Residual blocks h + ffn(norm(h)), stacked as examples/train_ffn.cpp does.
struct Blocks {
    std::vector<std::shared_ptr<xg::nn::LayerNorm>> norms;
    std::vector<std::shared_ptr<xg::nn::FeedForward>> ffns;

    Blocks(std::size_t n, std::size_t d_model, std::size_t d_ff, double dropout) {
        xg::manual_seed(11);
        for (std::size_t i = 0; i < n; ++i) {
            norms.push_back(std::make_shared<xg::nn::LayerNorm>(xg::Shape{d_model}));
            ffns.push_back(std::make_shared<xg::nn::FeedForward>(d_model, d_ff, dropout));
            ffns.back()->train();
        }
    }
    Tensors parameters() const {
        Tensors out;
        for (std::size_t i = 0; i < ffns.size(); ++i) {
            for (const Tensor& p : norms[i]->parameters()) out.push_back(p);
            for (const Tensor& p : ffns[i]->parameters()) out.push_back(p);
        }
        return out;
    }
    Tensor block(std::size_t i, const Tensor& h) { return h + (*ffns[i])((*norms[i])(h)); }
    Tensor forward(Tensor h, bool checkpointed) {
        for (std::size_t i = 0; i < ffns.size(); ++i) {
            if (checkpointed)
                h = checkpoint([this, i](const Tensors& in) { return block(i, in[0]); }, {h});
            else
                h = block(i, h);
        }
        return h;
    }
};

// One forward and backward of an MSE loss from `seed`: the loss, the output,
// the gradients (parameters', then x's when it requires grad) and the
// generator's state afterwards.
struct Step {
    Tensor loss, output;
    Tensors grads;
    std::string rng_after;
};

Step run_step(Blocks& net, const Tensor& x, const Tensor& target, bool checkpointed,
              std::uint64_t seed) {
    Tensors leaves = net.parameters();
    if (x.requires_grad()) leaves.push_back(x);
    clear_grads(leaves);
    xg::manual_seed(seed);
    Tensor output = net.forward(x, checkpointed);
    Tensor loss = xg::mse_loss(output, target);
    loss.backward();
    return {loss.detach(), output.detach(), grads_of(leaves), xg::get_rng_state()};
}

}  // namespace

TEST_CASE("checkpointed FeedForward blocks with dropout match the plain run bit for bit") {
    // 70 tokens x d_ff 64: each dropout mask spans two 4096-element slices.
    Blocks net(3, 16, 64, 0.3);
    xg::manual_seed(5);
    Tensor x = xg::randn({70, 16});
    Tensor target = xg::randn({70, 16});
    SUBCASE("the input requires grad") { x.requires_grad_(); }
    SUBCASE("only the parameters require grad") {}

    Step plain = run_step(net, x, target, false, 42);
    Step checkpointed = run_step(net, x, target, true, 42);
    check_identical({checkpointed.loss, checkpointed.output}, {plain.loss, plain.output});
    check_identical(checkpointed.grads, plain.grads);
    // The recomputation drew forward's masks and put the caller's stream back.
    CHECK(checkpointed.rng_after == plain.rng_after);
    // Dropout is really drawing: another seed gives another loss.
    Step other = run_step(net, x, target, false, 43);
    CHECK_FALSE(test::identical(other.loss, plain.loss));
}

TEST_CASE("floating outputs get a CheckpointBackward node; integer outputs pass through") {
    Tensor x = test::f64({1.0, -2.0, 3.0}, true);
    Tensors out = checkpoint(
        [](const Tensors& in) -> Tensors {
            return {xg::exp(in[0]), xg::argmax(in[0])};
        },
        {x});
    REQUIRE(out.size() == 2);
    CHECK(out[0].requires_grad());
    CHECK(out[0].grad_fn_name() == "CheckpointBackward");
    CHECK(out[1].dtype() == xg::kInt64);
    CHECK_FALSE(out[1].requires_grad());
    CHECK(out[1].item<std::int64_t>() == 2);
}

TEST_CASE("parameters used inside fn get gradients even when no input requires grad") {
    Tensor w = test::randn64({3, 2}, 1);
    w.requires_grad_();
    Tensor x = test::randn64({4, 3}, 2);
    auto fn = [&w](const Tensors& in) { return xg::tanh(xg::matmul(in[0], w)); };
    Tensor plain = fn({x});
    xg::sum(plain * plain).backward();
    const Tensor expected = w.grad();
    w.mutable_grad() = Tensor();

    const long baseline = Node::live_count();
    Tensor y = checkpoint(fn, {x});
    CHECK(y.requires_grad());
    // CheckpointBackward, CheckpointRecompute and w's AccumulateGrad: the graph
    // of the run that found w is gone.
    CHECK(Node::live_count() <= baseline + 3);
    xg::sum(y * y).backward();
    REQUIRE(w.grad().defined());
    CHECK(test::identical(w.grad(), expected));
    CHECK_FALSE(x.grad().defined());
}

TEST_CASE("without anything requiring grad, checkpoint returns fn's outputs with no history") {
    int calls = 0;
    Tensor x = test::f64({1.0, 2.0});
    const long baseline = Node::live_count();
    Tensor y = checkpoint(
        [&calls](const Tensors& in) {
            ++calls;
            return in[0] * 2.0;
        },
        {x});
    CHECK(calls == 1);
    CHECK_FALSE(y.requires_grad());
    CHECK(Node::live_count() == baseline);
    CHECK_VALUES(y, (xt::xarray<double>{2.0, 4.0}));
}

TEST_CASE("inputs that do not require grad get no gradient; the others get theirs") {
    Tensor x = test::randn64({5}, 3);
    x.requires_grad_();
    Tensor c = test::randn64({5}, 4);
    auto fn = [](const Tensors& in) { return xg::tanh(in[0] * in[1]) * in[0]; };
    xg::sum(fn({x, c})).backward();
    const Tensor expected = x.grad();
    x.mutable_grad() = Tensor();

    xg::sum(checkpoint(fn, {x, c})).backward();
    REQUIRE(x.grad().defined());
    CHECK(test::identical(x.grad(), expected));
    CHECK_FALSE(c.grad().defined());
}

TEST_CASE("fn returning one of its inputs leaves that input a leaf") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = checkpoint([](const Tensors& in) { return in[0]; }, {x});
    CHECK(x.is_leaf());
    CHECK(y.grad_fn_name() == "CheckpointBackward");
    y.backward(test::f64({3.0, 4.0}));
    CHECK_VALUES(x.grad(), (xt::xarray<double>{3.0, 4.0}));
}

TEST_CASE("several outputs: one recomputation per backward, with every output's gradient") {
    int calls = 0;
    auto fn = [&calls](const Tensors& in) -> Tensors {
        ++calls;
        return {in[0] * in[1], xg::tanh(in[0]) + in[1]};
    };
    Tensor x = test::randn64({6}, 5);
    Tensor w = test::randn64({6}, 6);
    x.requires_grad_();
    w.requires_grad_();
    bool only_first = false;
    SUBCASE("both outputs used") {}
    SUBCASE("only the first output used") { only_first = true; }
    auto loss_of = [&](const Tensors& out) {
        Tensor first = xg::sum(out[0] * out[0]);
        return only_first ? first : first + xg::sum(out[1]);
    };

    loss_of(fn({x, w})).backward();
    const Tensors expected = grads_of({x, w});
    clear_grads({x, w});
    calls = 0;

    Tensors out = checkpoint(fn, {x, w});
    CHECK(calls == 1);
    loss_of(out).backward();
    CHECK(calls == 2);
    check_identical(grads_of({x, w}), expected);
}

TEST_CASE("backward leaves the caller's random stream where it was") {
    auto fn = [](const Tensors& in) { return xg::dropout(in[0], 0.5, true) * 2.0; };
    Tensor x = test::randn64({300}, 7);
    x.requires_grad_();
    xg::manual_seed(9);
    xg::sum(fn({x})).backward();
    const Tensor expected = x.grad();
    x.mutable_grad() = Tensor();

    xg::manual_seed(9);
    Tensor y = checkpoint(fn, {x});
    const std::string before = xg::get_rng_state();
    xg::sum(y).backward();
    CHECK(xg::get_rng_state() == before);
    REQUIRE(x.grad().defined());
    CHECK(test::identical(x.grad(), expected));  // forward's mask, not a fresh one
}

TEST_CASE("preserve_rng_state=false recomputes from the caller's stream") {
    Tensor x = test::randn64({300}, 8);
    x.requires_grad_();
    SUBCASE("a deterministic fn is unaffected") {
        auto fn = [](const Tensors& in) { return xg::exp(in[0]) * in[0]; };
        xg::sum(fn({x})).backward();
        const Tensor expected = x.grad();
        x.mutable_grad() = Tensor();
        xg::sum(checkpoint(fn, {x}, /*preserve_rng_state=*/false)).backward();
        CHECK(test::identical(x.grad(), expected));
    }
    SUBCASE("dropout draws a new mask in backward, advancing the stream") {
        auto fn = [](const Tensors& in) { return xg::dropout(in[0], 0.5, true); };
        xg::manual_seed(9);
        xg::sum(fn({x})).backward();
        const Tensor expected = x.grad();
        x.mutable_grad() = Tensor();

        xg::manual_seed(9);
        Tensor y = checkpoint(fn, {x}, /*preserve_rng_state=*/false);
        const std::string before = xg::get_rng_state();
        xg::sum(y).backward();
        CHECK(xg::get_rng_state() != before);
        CHECK_FALSE(test::identical(x.grad(), expected));
    }
}

TEST_CASE("under NoGradGuard checkpoint just runs fn and records nothing") {
    int calls = 0;
    Tensor x = test::f64({1.0, 2.0}, true);
    const long baseline = Node::live_count();
    {
        xg::NoGradGuard no_grad;
        Tensor y = checkpoint(
            [&calls](const Tensors& in) {
                ++calls;
                return xg::exp(in[0]) * in[0];
            },
            {x});
        CHECK_FALSE(y.requires_grad());
        CHECK(Node::live_count() == baseline);
    }
    CHECK(calls == 1);
}

TEST_CASE("a deep fn leaves a constant number of nodes, all freed by backward") {
    auto deep = [](const Tensors& in) {
        Tensor h = in[0];
        for (int i = 0; i < 40; ++i) h = xg::tanh(h * 1.01 + 0.1);
        return h;
    };
    Tensor x = test::randn64({4, 4}, 9);
    x.requires_grad_();
    const long baseline = Node::live_count();
    {
        Tensor plain = deep({x});
        CHECK(Node::live_count() >= baseline + 40);  // at least a tanh per step
    }
    CHECK(Node::live_count() == baseline);

    Tensor y = checkpoint(deep, {x});
    // CheckpointBackward, CheckpointRecompute and x's AccumulateGrad; none of
    // fn's nodes (and none of the values they would save) is kept.
    CHECK(Node::live_count() <= baseline + 3);
    xg::sum(y).backward();
    y = Tensor();
    CHECK(Node::live_count() == baseline);
    CHECK(x.grad().defined());
}

TEST_CASE("nested checkpoints match the plain run") {
    auto inner = [](const Tensors& in) { return xg::tanh(in[0]) * in[0]; };
    auto outer_plain = [&](const Tensors& in) {
        Tensor h = inner(in);
        return xg::exp(h) * h;
    };
    auto outer_checkpointed = [&](const Tensors& in) {
        Tensor h = checkpoint(inner, in);
        return xg::exp(h) * h;
    };
    Tensor x = test::randn64({7}, 10);
    x.requires_grad_();
    xg::sum(outer_plain({x})).backward();
    const Tensor expected = x.grad();
    x.mutable_grad() = Tensor();

    xg::sum(checkpoint(outer_checkpointed, {x})).backward();
    REQUIRE(x.grad().defined());
    CHECK(test::identical(x.grad(), expected));
}

TEST_CASE("retain_graph: a second backward recomputes again and accumulates") {
    int calls = 0;
    auto fn = [&calls](const Tensors& in) {
        ++calls;
        return xg::sin(in[0]) * in[0];
    };
    Tensor x = test::randn64({4}, 12);
    x.requires_grad_();
    Tensor g = test::randn64({4}, 13);
    fn({x}).backward(g);
    const xt::xarray<double> once = test::values(x.grad());
    x.mutable_grad() = Tensor();
    calls = 0;

    Tensor y = checkpoint(fn, {x});
    y.backward(g, true);
    y.backward(g);
    CHECK(calls == 3);
    CHECK_VALUES(x.grad(), xt::xarray<double>(2.0 * once));
}

TEST_CASE("checkpoint errors") {
    Tensor x = test::f64({1.0, 2.0, 3.0}, true);
    auto twice = [](const Tensors& in) { return in[0] * 2.0; };
    CHECK_THROWS_WITH_AS(checkpoint([](const Tensors&) { return Tensors{}; }, {x}),
                         "checkpoint: expected fn to return at least one tensor (got none)",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        checkpoint(twice, {x, Tensor()}),
        "checkpoint: expected every input to be a defined tensor (got an undefined one at index 1)",
        xg::Error);
    CHECK_THROWS_WITH_AS(checkpoint(xg::utils::CheckpointFn(), {x}),
                         "checkpoint: expected a function (got an empty std::function)", xg::Error);

    SUBCASE("a second backward without retain_graph") {
        Tensor y = checkpoint(twice, {x});
        Tensor g = xg::ones_like(y);
        y.backward(g);
        CHECK_THROWS_WITH_AS(y.backward(g), doctest::Contains("CheckpointBackward"), xg::Error);
        CHECK_THROWS_WITH_AS(y.backward(g), doctest::Contains("retain_graph=true"), xg::Error);
    }
    SUBCASE("a recomputation that returns another shape") {
        int calls = 0;
        auto shifty = [&calls](const Tensors& in) {
            return ++calls == 1 ? in[0] * 2.0 : xg::cat({in[0], in[0]});
        };
        Tensor y = checkpoint(shifty, {x});
        CHECK_THROWS_WITH_AS(xg::sum(y).backward(),
                             "checkpoint: expected the recomputed output 0 to have shape [3] and "
                             "dtype float64, as in forward (got [6] and float64)",
                             xg::Error);
    }
}

TEST_CASE("gradcheck through checkpoint (float64)") {
    auto inner = [](const Tensors& in) { return xg::tanh(in[0] * in[1]) + in[0] * in[0]; };
    CHECK(test::gradcheck([&](const Tensors& in) { return checkpoint(inner, in); },
                          {test::randn64({3, 2}, 14), test::randn64({3, 2}, 15)}));
}

}  // namespace core_test_activation_checkpoint
