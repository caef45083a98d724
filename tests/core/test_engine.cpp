// Tests for the autograd engine (core/src/engine.cpp): accumulation, graph shapes,
// seeding, grad mode, tensor hooks, retain_graph and freeing of the graph.
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_test_engine {

using xg::Tensor;
using xg::autograd::Node;

TEST_CASE("gradients accumulate across backward calls") {
    Tensor x = test::f64({1.0, -2.0, 3.0}, true);
    for (int k = 0; k < 2; ++k) xg::sum(x * x).backward();          // fresh forward each time
    CHECK_VALUES(x.grad(), (xt::xarray<double>{4.0, -8.0, 12.0}));  // 2 * (2x)
}

TEST_CASE("a tensor used twice gets the sum of both gradients") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor a = x * 2.0;
    Tensor b = x * 3.0;
    xg::sum(a * b).backward();  // sum(6 x^2) -> 12 x
    CHECK_VALUES(x.grad(), (xt::xarray<double>{12.0, 24.0}));
}

TEST_CASE("a shared intermediate sends its gradient on once, after both uses reported") {
    // y feeds the loss twice; if the engine walked y before both contributions
    // arrived, x would get exp(x) (or 3 * exp(x)) instead of 2 * exp(x).
    Tensor x = test::f64({0.5, -1.0}, true);
    Tensor y = xg::exp(x);
    int calls = 0;
    auto h = y.register_hook([&](const Tensor& g) {
        ++calls;
        CHECK_VALUES(g, (xt::xarray<double>{2.0, 2.0}));
    });
    xg::sum(y + y).backward();
    CHECK(calls == 1);
    CHECK_VALUES(x.grad(), xt::xarray<double>(2.0 * xt::exp(xt::xarray<double>{0.5, -1.0})));
}

TEST_CASE("retain_grad keeps the gradient of a non-leaf") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * 3.0;
    Tensor z = x * 2.0;
    y.retain_grad();
    CHECK(y.retains_grad());
    xg::sum(y * y + z).backward();
    REQUIRE(y.grad().defined());
    CHECK_VALUES(y.grad(), (xt::xarray<double>{6.0, 12.0}));  // 2y
    CHECK_FALSE(z.grad().defined());  // non-leaves keep no gradient unless asked, as in torch
}

TEST_CASE("backward(grad) on a non-scalar output") {
    Tensor x = test::f64({{1, 2, 3}, {4, 5, 6}}, true);
    Tensor y = x * x;
    y.backward(test::f64({{1, 0, 2}, {0, -1, 1}}));
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{2, 0, 12}, {0, -10, 12}}));  // 2x * g
}

TEST_CASE("backward(grad) neither copies nor writes over the grad the caller holds") {
    // The root's pending gradient shares the caller's buffer (no copy); every
    // op that writes over grad_output, and every sum, leaves a shared one alone,
    // and a leaf's .grad is never the caller's buffer.
    Tensor x = test::f64({{1, -2, 3}, {-4, 5, -6}}, true);
    Tensor w = test::f64({{1, 2, 3}, {4, 5, 6}}, true);
    Tensor g = test::f64({{1, 0, 2}, {0, -1, 1}});
    const xt::xarray<double> g_before = test::values(g);
    Tensor y = xg::relu(x) + x * w +
               x;  // relu and mul write over a grad_output they own; add passes it on
    y.backward(g);
    CHECK_VALUES(g, g_before);
    // relu'(x) g + w g + g
    CHECK_VALUES(x.grad(), (xt::xarray<double>{{3, 0, 10}, {0, -7, 7}}));
    CHECK_VALUES(w.grad(), (xt::xarray<double>{{1, 0, 6}, {0, -5, -6}}));
    Tensor z = test::f64({{1, 2}}, true);
    Tensor h = test::f64({{3, 4}});
    (z + 0.0).backward(h);  // z's gradient is h itself, passed on
    CHECK(z.grad().data_ptr() != h.data_ptr());
    z.grad().data<double>()(0, 0) = 100.0;
    CHECK_VALUES(h, (xt::xarray<double>{{3, 4}}));
}

TEST_CASE("backward() on a one-element tensor that is not 0-d seeds with one") {
    Tensor x = test::f64(test::column({2.0}), true);
    Tensor y = x * x;  // shape [1, 1]
    y.backward();
    CHECK_VALUES(x.grad(), test::column({4.0}));
}

TEST_CASE("backward errors") {
    Tensor x = test::f64({{1, 2, 3}, {4, 5, 6}}, true);
    CHECK_THROWS_WITH_AS(
        (x * 2.0).backward(),
        "backward: grad can be implicitly created only for a one-element tensor (got shape [2, 3])",
        xg::Error);
    CHECK_THROWS_WITH_AS(xg::sum(test::f64({1.0})).backward(),
                         "backward: expected a tensor that requires grad (got one that does not)",
                         xg::Error);
}

TEST_CASE("backward() on a 0-d leaf seeds its own gradient with one") {
    Tensor x = test::f64(xt::xarray<double>(3.0), true);
    x.backward();
    CHECK(x.grad().item<double>() == 1.0);
}

TEST_CASE("backward(grad) with a grad of the wrong shape throws") {
    Tensor x = test::f64({1.0, 2.0, 3.0}, true);
    CHECK_THROWS_AS((x * 2.0).backward(test::f64({1.0, 1.0})), xg::Error);
}

TEST_CASE("only inputs that require grad get one") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor c = test::f64({3.0, 4.0});
    xg::sum(x * c).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{3.0, 4.0}));
    CHECK_FALSE(c.grad().defined());
}

TEST_CASE("detach cuts the graph: no gradient flows through a detached tensor") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * x;
    xg::sum(y.detach() * x).backward();  // d/dx (const * x) = const = x^2
    CHECK_VALUES(x.grad(), (xt::xarray<double>{1.0, 4.0}));
}

TEST_CASE("float32 leaves get float32 gradients") {
    Tensor x = test::f32({1.0f, 2.0f}, true);
    xg::sum(xg::exp(x) * 2.0).backward();
    CHECK(x.grad().dtype() == xg::kFloat32);
    CHECK_VALUES_TOL(x.grad(), (xt::xarray<double>{2 * std::exp(1.0), 2 * std::exp(2.0)}), 1e-6,
                     1e-6);
}

TEST_CASE("requires_grad_ is for leaves; hooks need a tensor that requires grad") {
    // Both as in torch: a non-leaf cannot be switched off, and a hook on a tensor
    // without grad would never run.
    Tensor x = test::f64({1.0}, true);
    Tensor y = x * 2.0;
    CHECK_THROWS_AS(y.requires_grad_(false), xg::Error);
    Tensor c = test::f64({1.0});
    CHECK_THROWS_AS(c.register_hook([](const Tensor&) {}), xg::Error);
}

TEST_CASE("NoGradGuard records nothing and restores the previous mode") {
    Tensor x = test::f64({1.0, 2.0}, true);
    CHECK(xg::GradMode::is_enabled());
    {
        xg::NoGradGuard guard;
        CHECK_FALSE(xg::GradMode::is_enabled());
        Tensor y = x * 2.0;
        CHECK_FALSE(y.requires_grad());
        CHECK(y.grad_fn_name() == "");
        CHECK(y.is_leaf());
        {
            xg::NoGradGuard nested;
            CHECK_FALSE(xg::GradMode::is_enabled());
        }
        CHECK_FALSE(xg::GradMode::is_enabled());  // the inner guard restores "off", not "on"
    }
    CHECK(xg::GradMode::is_enabled());
    CHECK((x * 2.0).requires_grad());
}

TEST_CASE("a void hook observes the gradient without changing it") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * 3.0;
    xt::xarray<double> seen;
    auto h = y.register_hook([&](const Tensor& g) { seen = test::values(g); });
    xg::sum(y * y).backward();
    CHECK(test::close(seen, xt::xarray<double>{6.0, 12.0}));   // 2y
    CHECK_VALUES(x.grad(), (xt::xarray<double>{18.0, 36.0}));  // 3 * 2y
}

TEST_CASE("a hook returning a tensor replaces the gradient downstream") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * 2.0;
    auto h = y.register_hook([](const Tensor& g) { return g * 10.0; });
    xg::sum(y).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{20.0, 20.0}));
}

TEST_CASE("a hook returning an undefined tensor keeps the gradient") {
    Tensor x = test::f64({1.0, 2.0}, true);
    Tensor y = x * 2.0;
    int calls = 0;
    auto h = y.register_hook([&](const Tensor&) {
        ++calls;
        return Tensor();
    });
    xg::sum(y).backward();
    CHECK(calls == 1);
    CHECK_VALUES(x.grad(), (xt::xarray<double>{2.0, 2.0}));
}

TEST_CASE("hooks run in registration order, each seeing the previous one's result") {
    Tensor x = test::f64({1.0}, true);
    Tensor y = x * 1.0;
    std::vector<std::string> order;
    std::vector<double> seen;
    auto h1 = y.register_hook([&](const Tensor& g) {
        order.push_back("first");
        seen.push_back(g.item<double>());
        return g * 2.0;
    });
    auto h2 = y.register_hook([&](const Tensor& g) {
        order.push_back("second");
        seen.push_back(g.item<double>());
        return g + 1.0;
    });
    xg::sum(y).backward();
    CHECK(order == std::vector<std::string>{"first", "second"});
    CHECK(seen == std::vector<double>{1.0, 2.0});
    CHECK(x.grad().item<double>() == 3.0);  // (1 * 2) + 1
}

TEST_CASE("remove() detaches a hook; removing twice is harmless") {
    Tensor x = test::f64({1.0}, true);
    Tensor y = x * 1.0;
    int calls = 0;
    auto h = y.register_hook([&](const Tensor& g) {
        ++calls;
        return g * 100.0;
    });
    h.remove();
    h.remove();
    xg::sum(y).backward();
    CHECK(calls == 0);
    CHECK(x.grad().item<double>() == 1.0);
}

TEST_CASE("a hook on a leaf sees the total gradient once") {
    Tensor x = test::f64({1.0, 2.0}, true);
    int calls = 0;
    xt::xarray<double> seen;
    auto h = x.register_hook([&](const Tensor& g) {
        ++calls;
        seen = test::values(g);
    });
    xg::sum(x * 2.0 + x * 3.0).backward();
    CHECK(calls == 1);
    CHECK(test::close(seen, xt::xarray<double>{5.0, 5.0}));
    CHECK_VALUES(x.grad(), (xt::xarray<double>{5.0, 5.0}));
}

TEST_CASE("a leaf hook sees each backward's gradient, not the accumulated one") {
    Tensor x = test::f64({1.0}, true);
    std::vector<double> seen;
    auto h = x.register_hook([&](const Tensor& g) { seen.push_back(g.item<double>()); });
    xg::sum(x * 5.0).backward();
    xg::sum(x * 5.0).backward();
    CHECK(seen == std::vector<double>{5.0, 5.0});
    CHECK(x.grad().item<double>() == 10.0);
}

TEST_CASE("a replacing hook on a leaf changes what is accumulated into grad") {
    Tensor x = test::f64({1.0, 2.0}, true);
    auto h = x.register_hook([](const Tensor& g) { return g * -1.0; });
    xg::sum(x * 4.0).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{-4.0, -4.0}));
}

TEST_CASE("a hook may not change the gradient's shape or dtype (PyTorch refuses both)") {
    // torch: "hook '<lambda>' has changed the size of value", and "... has changed
    // the type of value (was torch.FloatTensor got torch.DoubleTensor)".
    Tensor leaf = xg::ones({3}).requires_grad_();
    auto grow = leaf.register_hook([](const Tensor&) { return xg::ones({4}); });
    CHECK_THROWS_WITH_AS(xg::sum(leaf * 2.0).backward(),
                         "backward: hook 0 has changed the size of value (was [3] got [4])",
                         xg::Error);
    CHECK_FALSE(leaf.grad().defined());  // nothing accumulated
    grow.remove();

    auto widen = leaf.register_hook([](const Tensor& g) { return g.to(xg::kFloat64); });
    CHECK_THROWS_WITH_AS(xg::sum(leaf * 2.0).backward(),
                         "backward: hook 1 has changed the type of value (was float32 got float64)",
                         xg::Error);
    widen.remove();

    // On a non-leaf the bad gradient would reach the next backward: refused there too.
    Tensor b = xg::ones({3}).requires_grad_();
    Tensor c = b * 2.0;
    auto h = c.register_hook([](const Tensor&) { return xg::ones({4}); });
    CHECK_THROWS_WITH_AS(xg::sum(c).backward(),
                         "backward: hook 0 has changed the size of value (was [3] got [4])",
                         xg::Error);
    CHECK_FALSE(b.grad().defined());
}

TEST_CASE("a second backward through a freed graph throws; retain_graph keeps it") {
    Tensor x = test::f64({1.0, 2.0}, true);
    {
        Tensor loss = xg::sum(xg::exp(x) * x);
        loss.backward();
        CHECK_THROWS_AS(loss.backward(), xg::Error);
    }
    x.mutable_grad() = Tensor();
    Tensor loss = xg::sum(x * x);
    loss.backward(Tensor(), /*retain_graph=*/true);
    loss.backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{4.0, 8.0}));  // two times 2x
}

// The graph is owned by the tensors that hold it; when the last handle dies (or
// backward walks it), every node must go. Node::live_count() makes leaks visible.
TEST_CASE("the graph is freed when its tensors die") {
    const long baseline = Node::live_count();
    Tensor x = test::f64({1.0, 2.0, 3.0}, true);
    {
        Tensor y = xg::exp(x);
        Tensor z = y * y;  // mul saves y for its backward
        Tensor loss = xg::sum(z);
        CHECK(Node::live_count() > baseline);
    }
    CHECK(Node::live_count() == baseline);
}

TEST_CASE("a hook capturing other tensors does not keep the graph alive") {
    // y's hook holds x and the loss; the loss holds the nodes, whose backward needs y.
    // If a node saved y's handle (with its hooks) this would be a cycle and leak.
    const long baseline = Node::live_count();
    Tensor x = test::f64({1.0, 2.0, 3.0}, true);
    {
        Tensor y = xg::exp(x);
        Tensor loss = xg::sum(y * y);
        auto h = y.register_hook([x, loss](const Tensor& g) { return g * 1.0; });
        CHECK(Node::live_count() > baseline);
    }
    CHECK(Node::live_count() == baseline);
}

TEST_CASE("the graph is freed after backward, hook capturing the loss included") {
    const long baseline = Node::live_count();
    Tensor x = test::f64({1.0, 2.0, 3.0}, true);
    {
        Tensor y = xg::tanh(x * 2.0);
        Tensor loss = xg::mean(y * y);
        int calls = 0;
        auto h = y.register_hook([x, loss, &calls](const Tensor&) { ++calls; });
        loss.backward();
        CHECK(calls == 1);
    }
    CHECK(Node::live_count() == baseline);
    REQUIRE(x.grad().defined());  // the leaf's gradient outlives the graph
}

TEST_CASE("backward frees the graph as it walks it, even while the loss is alive") {
    // Only the loss's own node may survive: released nodes drop their edges, so the
    // rest of the chain (and what it saved) is gone before the loss handle dies.
    const long baseline = Node::live_count();
    Tensor x = test::f64({1.0, 2.0, 3.0}, true);
    Tensor loss;
    {
        Tensor y = xg::exp(x * 2.0);
        loss = xg::sum(xg::sqrt(y) * y);
    }
    CHECK(Node::live_count() == baseline + 5);  // mul, exp, sqrt, mul, sum
    loss.backward();
    CHECK(Node::live_count() <= baseline + 1);
    loss = Tensor();
    CHECK(Node::live_count() == baseline);
}

// A leaf keeps its accumulator: each step's graph reuses the node instead of
// making one, so training allocates no node per parameter and step.
TEST_CASE("a leaf's accumulator outlives the graph and serves the next one") {
    Tensor x = test::f64({1.0, 2.0}, true);
    std::weak_ptr<Node> first;
    {
        Tensor y = x * 2.0;
        first = y.grad_fn()->next[0];
        CHECK(first.lock()->is_accumulator);
        xg::sum(y).backward();
    }
    REQUIRE_FALSE(first.expired());
    Tensor z = x * 3.0;
    CHECK(z.grad_fn()->next[0] == first.lock());
    xg::sum(z).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{5.0, 5.0}));
    x = Tensor();
    z = Tensor();
    CHECK(first.expired());  // and it goes with its leaf and the last graph using it
}

// The orders are PyTorch 1.13's (tests/core/reference/gen_engine_order.py): a
// leaf's hook runs when its accumulator does, which is as soon as every
// gradient for the leaf arrived, however long ago the accumulator was made.
TEST_CASE("a leaf's accumulator runs as soon as it is ready") {
    Tensor w = test::f64({0.5, 0.25}, true);
    std::vector<std::string> order;
    auto record = [&order](const char* name) {
        return [&order, name](const Tensor&) { order.push_back(name); };
    };
    SUBCASE("used in an earlier graph") {
        Tensor x = test::f64({1.0, 2.0}, true);
        auto hx = x.register_hook(record("x"));
        xg::sum(x * 3.0).backward();
        order.clear();
        Tensor n = xg::exp(w);
        auto hn = n.register_hook(record("n"));
        Tensor c = x * 5.0;
        (xg::sum(n) + xg::sum(c)).backward();
        CHECK(order == std::vector<std::string>{"x", "n"});
    }
    SUBCASE("first used before the other chain") {
        Tensor x = test::f64({1.0, 2.0}, true);
        auto hx = x.register_hook(record("x"));
        Tensor a = x * 2.0;
        Tensor n = xg::exp(w);
        auto hn = n.register_hook(record("n"));
        Tensor c = a * 5.0;
        (xg::sum(n) + xg::sum(c)).backward();
        CHECK(order == std::vector<std::string>{"n", "x"});
    }
}

TEST_CASE("a hook may run a backward pass of its own inside another") {
    Tensor x = test::f64({1.0, 2.0}, true), w = test::f64({5.0}, true);
    Tensor y = x * x;
    y.register_hook([&](const Tensor&) {
        xg::GradMode::set_enabled(true);  // backward runs hooks in no-grad mode, as PyTorch does
        xg::sum(w * 3.0).backward();
        xg::GradMode::set_enabled(false);
    });
    xg::sum(y).backward();
    CHECK_VALUES(x.grad(), (xt::xarray<double>{2.0, 4.0}));
    CHECK_VALUES(w.grad(), (xt::xarray<double>{3.0}));
}

TEST_CASE("a graph of thousands of nodes, then a small one, get exact gradients") {
    // Thousands of nodes make the engine's per-pass table grow; the small pass
    // after it runs on the table the big one left behind.
    Tensor x = test::f64({1.0}, true);
    Tensor total = x * 0.0;
    double expected = 0;
    for (int i = 1; i <= 3000; ++i) {
        total = total + x * double(i);
        expected += i;
    }
    total.backward();
    CHECK(x.grad().item<double>() == expected);
    x.mutable_grad() = Tensor();
    xg::sum(x * 2.0).backward();
    CHECK(x.grad().item<double>() == 2.0);
}

TEST_CASE("BackwardFn holds small closures inline and large ones on the heap, and frees both") {
    using xg::autograd::BackwardFn;
    auto tracked = std::make_shared<int>(0);
    std::array<double, 40> big{};  // 320 bytes: past the inline buffer
    big[39] = 2.0;
    BackwardFn small = [tracked](const Tensor& g) { return std::vector<Tensor>{g * 3.0}; };
    BackwardFn large = [tracked, big](const Tensor& g) {
        return xg::autograd::Gradients{g * big[39]};
    };
    CHECK(tracked.use_count() == 3);
    Tensor g = test::f64({1.0, 2.0});
    CHECK_VALUES(small(g)[0], (xt::xarray<double>{3.0, 6.0}));
    CHECK_VALUES(large(g)[0], (xt::xarray<double>{2.0, 4.0}));

    BackwardFn moved = std::move(small);  // the closure moves out of the inline buffer
    CHECK_FALSE(small);
    CHECK(moved);
    CHECK_VALUES(moved(g)[0], (xt::xarray<double>{3.0, 6.0}));
    moved = std::move(large);  // the first closure is destroyed
    CHECK(tracked.use_count() == 2);
    CHECK_VALUES(moved(g)[0], (xt::xarray<double>{2.0, 4.0}));
    moved = nullptr;
    CHECK_FALSE(moved);
    CHECK(tracked.use_count() == 1);
}

}  // namespace core_test_engine
