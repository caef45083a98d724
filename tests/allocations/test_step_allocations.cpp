// A steady-state FeedForward training step (forward, MSE loss, backward, Adam,
// zero_grad) makes no heap allocation: every buffer, graph node, closure and
// tensor handle it needs comes back from a cache or pool the previous step
// filled. This binary counts every operator new (its own executable, so the
// rest of the suite keeps the standard allocator; not built under
// AddressSanitizer, which owns operator new and where the pool is off).
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include <doctest/doctest.h>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

namespace {
std::atomic<long> allocations{0};
}

// The replacements below pair malloc with free; GCC's check assumes the
// standard operator new and flags every inlined delete as mismatched.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

void* operator new(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

// Allocations per step over `steps` steps after `warmup` steps.
long allocations_per_step(xg::nn::Module& ffn, const xg::Shape& x_shape, int warmup, int steps) {
    xg::Tensor x = xg::randn(x_shape).requires_grad_();
    xg::Tensor target = xg::randn(x_shape);
    xg::optim::Adam adam(ffn.parameters(), xg::optim::AdamOptions(1e-3));
    auto step = [&] {
        xg::Tensor loss = xg::mse_loss(ffn(x), target);
        loss.backward();
        adam.step();
        adam.zero_grad();
        x.mutable_grad() = xg::Tensor();
    };
    for (int i = 0; i < warmup; ++i) step();
    long before = allocations.load();
    for (int i = 0; i < steps; ++i) step();
    return (allocations.load() - before) / steps;
}

}  // namespace

TEST_CASE("a steady-state FeedForward training step allocates nothing, every variant") {
    using FF = xg::nn::FeedForward;
    const std::vector<std::pair<std::string, std::shared_ptr<FF>>> blocks = {
        {"relu", std::make_shared<FF>(16, 64, 0.1)},
        {"gelu", std::make_shared<FF>(16, 64, 0.1, std::make_shared<xg::nn::GELU>())},
        {"swiglu", FF::swiglu(16, 64, 0.1)},
        {"geglu", FF::geglu(16, 64, 0.1)},
        {"reglu", FF::reglu(16, 64, 0.1)},
        {"glu", FF::glu(16, 64, 0.1)},
        {"bilinear", FF::bilinear(16, 64, 0.1)}};
    for (const auto& [name, ffn] : blocks) {
        const std::string& block = name;  // CAPTURE's lambda cannot name a binding in clang 14
        CAPTURE(block);
        CHECK(allocations_per_step(*ffn, {32, 16}, 3, 5) == 0);    // small arrays
        CHECK(allocations_per_step(*ffn, {1024, 16}, 3, 3) == 0);  // cached large ones
    }
}

TEST_CASE(
    "a steady-state step through separate Linear, ReLU and Dropout modules allocates nothing") {
    // The unfused path: the dropout op remakes its mask in backward from its key.
    namespace nn = xg::nn;
    nn::Sequential block{std::make_shared<nn::Linear>(16, 64), std::make_shared<nn::ReLU>(),
                         std::make_shared<nn::Dropout>(0.1), std::make_shared<nn::Linear>(64, 16)};
    CHECK(allocations_per_step(block, {32, 16}, 3, 5) == 0);
    CHECK(allocations_per_step(block, {1024, 16}, 3, 3) == 0);
}

TEST_CASE("a steady-state TransformerEncoderLayer training step allocates nothing") {
    // Attention, LayerNorm and the feed-forward part, with node names past
    // std::string's 15 inline characters (LayerNormBackward and others).
    auto layer = std::make_shared<xg::nn::TransformerEncoderLayer>(16, 4, 32, 0.1);
    CHECK(allocations_per_step(*layer, {6, 2, 16}, 3, 5) == 0);
    CHECK(allocations_per_step(*layer, {128, 8, 16}, 3, 3) == 0);  // cached large buffers
}

TEST_CASE("a custom loss of elementwise ops, sum and mean allocates nothing once warm") {
    // The ops a hand-written loss is made of, forward and backward: binary rows
    // of one shape and with a broadcast row, unary rows, and reductions over
    // some dims and over all.
    const std::vector<int> rows{1};  // built once: the dims argument is the caller's vector
    xg::Tensor y = xg::randn({8, 16}).requires_grad_();
    xg::Tensor target = xg::randn({8, 16});
    xg::Tensor shift = xg::randn({16}).requires_grad_();
    auto step = [&] {
        xg::Tensor d = y - target + shift;
        xg::Tensor loss = xg::mean(xg::sum(xg::abs(d) * d + xg::exp(d), rows)) + xg::sum(d * d);
        loss.backward();
        y.mutable_grad() = xg::Tensor();
        shift.mutable_grad() = xg::Tensor();
    };
    for (int i = 0; i < 3; ++i) step();
    long before = allocations.load();
    for (int i = 0; i < 5; ++i) step();
    CHECK(allocations.load() - before == 0);
}

TEST_CASE("the counter sees allocations, so zero above means none") {
    long before = allocations.load();
    auto* p = new std::string(100, 'x');
    delete p;
    CHECK(allocations.load() - before >= 2);
}
