// Calls with any inputs: binding (positional, keyword, defaults, Python's errors),
// typed results, and hooks over multi-input, tuple-output modules, checked
// against what PyTorch 1.13's hooks see on nn.MultiheadAttention (gen_transformer.py).
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/transformer_cases.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_module_test_calls {

namespace nn = xg::nn;
namespace ref = reference::transformer;
using namespace transformer_test;
using xg::Tensor;

namespace {

// A module author's typed forward: every kind of parameter, defaults last.
class Block : public nn::Module {
public:
    using Module::forward;
    Tensor forward(const Tensor& x, const Tensor& mask, double scale, std::int64_t repeat,
                   const std::string& mode, bool negate) {
        Tensor y = mask.defined() ? x * mask : x;
        for (std::int64_t i = 1; i < repeat; ++i) y = y + x;
        y = mode == "square" ? y * y : y;
        return (negate ? -y : y) * scale;
    }
    template <class... A>
    Tensor operator()(const A&... args) {
        return call_as<Tensor>(args...);
    }
    nn::Value forward_args(const nn::Args& args, const nn::Kwargs& kwargs) override {
        static const nn::Signature signature{
            "x",           {"mask", nn::Value()}, {"scale", 1.0},
            {"repeat", 1}, {"mode", "plain"},     {"negate", false}};
        return nn::invoke_forward<Block>(*this, &Block::forward, signature, args, kwargs);
    }
};

std::shared_ptr<nn::MultiheadAttention> loaded_mha(const ref::HookCase& c) {
    auto mha = std::make_shared<nn::MultiheadAttention>(ref::embed_dim, ref::num_heads);
    mha->to(xg::kFloat64);
    load(*mha, c.state_dict, xg::kFloat64);
    mha->eval();
    return mha;
}

std::vector<bool> defined(const std::vector<Tensor>& tensors) {
    std::vector<bool> flags;
    for (const Tensor& t : tensors) flags.push_back(t.defined());
    return flags;
}

}  // namespace

TEST_CASE("Calls: arguments bind by position, by keyword and by default, as in Python") {
    Block block;
    Tensor x = test::f64({1.0, 2.0});
    Tensor mask = test::f64({0.0, 1.0});
    CHECK(test::values(block(x)) == test::values(x));
    CHECK(test::values(block(x, mask, 2)) == xt::xarray<double>{0.0, 4.0});
    CHECK(test::values(block(x, Tensor(), 1.0, 3, "square", true)) ==
          xt::xarray<double>{-9.0, -36.0});
    nn::Value by_name = block.call({x}, {{"negate", true}, {"mode", "square"}});
    CHECK(test::values(by_name.tensor()) == xt::xarray<double>{-1.0, -4.0});
    std::shared_ptr<nn::Module> handle = std::make_shared<Block>();
    CHECK(test::values((*handle)(x, mask).tensor()) == xt::xarray<double>{0.0, 2.0});
    CHECK_THROWS_WITH_AS(
        block(x, mask, "big"),
        "Block: forward(x: Tensor, mask: Tensor = None, scale: float = 1.0, repeat: int = 1, "
        "mode: str = 'plain', negate: bool = False): argument 'scale' (position 3) must be float "
        "(got 'big')",
        xg::Error);
    CHECK_THROWS_WITH_AS(block.call({}, {{"mask", mask}}),
                         doctest::Contains("Block: forward() missing 1 required positional "
                                           "argument: 'x' (expected forward(x: Tensor"),
                         xg::Error);
    CHECK_THROWS_WITH_AS(block(x, mask, 1.0, 2.5),
                         doctest::Contains("argument 'repeat' (position 4) must be int (got 2.5)"),
                         xg::Error);
}

TEST_CASE("Calls: a Sequential entry with a typed forward takes one tensor with its defaults") {
    nn::Sequential chain{std::make_shared<Block>(), std::make_shared<nn::ReLU>()};
    Tensor x = test::f64({-1.0, 2.0});
    CHECK(test::values(chain(x)) == xt::xarray<double>{0.0, 2.0});
    nn::Sequential attention{std::make_shared<nn::MultiheadAttention>(4, 2)};
    CHECK_THROWS_WITH_AS(attention(xg::zeros({3, 1, 4})),
                         doctest::Contains("MultiheadAttention: forward() missing 2 required "
                                           "positional arguments: 'key' and 'value'"),
                         xg::Error);
    CHECK_THROWS_WITH_AS(nn::ModuleList{}.call({x}), "ModuleList: forward is not implemented",
                         xg::Error);
}

TEST_CASE("Calls: hooks over MultiheadAttention see what PyTorch's hooks see") {
    for (const ref::HookCase& c : ref::hook_cases) {
        CAPTURE(c.name);
        auto mha = loaded_mha(c);
        Tensor q = c.query.tensor(xg::kFloat64, c.query_requires_grad);
        Tensor k = c.key.tensor(xg::kFloat64, c.key_requires_grad);
        Tensor v = c.value.tensor(xg::kFloat64, c.value_requires_grad);
        nn::Args args{q, k, v};
        if (c.key_padding_mask_positional)
            args.push_back(mask("bool", c.key_padding_mask, xg::kFloat64));
        nn::Kwargs kwargs;
        if (!c.need_weights) kwargs.emplace_back("need_weights", false);

        int pre_args = -1, backward_calls = 0;
        std::vector<std::string> pre_kwargs;
        std::vector<bool> output_defined, grad_in, grad_out;
        bool triple = false;
        mha->register_forward_pre_hook(
            [&](nn::Module&, const nn::Args& a, const nn::Kwargs& kw) {
                pre_args = static_cast<int>(a.size());
                for (const auto& [name, value] : kw) pre_kwargs.push_back(name);
            },
            false, /*with_kwargs=*/true);
        mha->register_forward_hook([&](nn::Module&, const nn::Args&, const nn::Value& out) {
            output_defined.clear();
            for (const nn::Value& entry : out.list()) output_defined.push_back(!entry.is_none());
        });
        mha->register_full_backward_hook(
            [&](nn::Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>& go) {
                ++backward_calls;
                grad_in = defined(gi);
                grad_out = defined(go);
                std::vector<Tensor> tripled;
                for (const Tensor& g : gi) tripled.push_back(g.defined() ? g * 3.0 : g);
                return triple ? tripled : std::vector<Tensor>{};
            });
        auto run = [&] {
            auto [out, weights] =
                xg::nn::result_as<std::pair<Tensor, Tensor>>(*mha, mha->call(args, kwargs));
            Tensor loss = xg::sum(out * c.upstream_out.tensor(xg::kFloat64));
            if (c.weights_in_loss)
                loss = loss + xg::sum(weights * c.upstream_weights.tensor(xg::kFloat64));
            loss.backward();
        };
        run();
        CHECK(pre_args == c.pre_hook_args);
        CHECK(pre_kwargs == c.pre_hook_kwargs);
        CHECK(output_defined == c.forward_hook_output_defined);
        CHECK(backward_calls == c.backward_hook_calls);
        CHECK(grad_out == c.grad_output_defined);
        // PyTorch 1.13 hands an all-zero tensor for an input that needs no grad
        // (grad_input_zero_filled); xgrad leaves it undefined, as documented.
        std::vector<bool> expected_in = c.grad_input_defined;
        for (std::size_t i = 0; i < expected_in.size(); ++i)
            if (c.grad_input_zero_filled[i]) expected_in[i] = false;
        CHECK(grad_in == expected_in);
        if (!c.query_requires_grad) continue;
        CHECK(error(q.grad(), c.grad_query) < 1e-10);
        q.mutable_grad() = Tensor();
        triple = true;
        run();
        // Where PyTorch raised (the bool mask's zero-filled gradient tripled into a
        // long tensor), the floating entries tripled are what is expected.
        CHECK(error(q.grad(), c.grad_query_replaced) < 1e-10);
    }
}

TEST_CASE("Calls: pre hooks may replace args and kwargs, forward hooks a tuple output") {
    xg::manual_seed(7);
    auto mha = std::make_shared<nn::MultiheadAttention>(4, 2);
    Tensor x = test::randn64({3, 1, 4}).to(xg::kFloat32);
    auto plain = (*mha)(x, x, x);
    auto pre = mha->register_forward_pre_hook(
        [](nn::Module&, const nn::Args& args, const nn::Kwargs&) {
            return nn::CallInputs{args, {{"need_weights", false}}};
        },
        false, true);
    auto [out, weights] = (*mha)(x, x, x);
    CHECK_FALSE(weights.defined());
    CHECK(test::close(test::values(out), test::values(plain.first), 1e-5, 1e-6));
    pre.remove();
    auto swap = mha->register_forward_hook([](nn::Module&, const nn::Args&, const nn::Value& o) {
        return std::make_pair(o.list()[1].tensor(), o.list()[0].tensor());
    });
    auto [first, second] = (*mha)(x, x, x);
    CHECK(test::values(first) == test::values(plain.second));
    swap.remove();
    // A single-tensor hook cannot take MultiheadAttention's call.
    auto single = mha->register_forward_pre_hook([](nn::Module&, const Tensor&) {});
    CHECK_THROWS_WITH_AS((*mha)(x, x, x),
                         "MultiheadAttention: a forward pre hook taking one Tensor input was given "
                         "(Tensor[3, 1, 4] float32, Tensor[3, 1, 4] float32, Tensor[3, 1, 4] "
                         "float32); register one taking (Module&, const Args&) for calls with "
                         "other arguments",
                         xg::Error);
    single.remove();
    CHECK_THROWS_WITH_AS(
        mha->register_forward_pre_hook([](nn::Module&, const nn::Args&, const nn::Kwargs&) {}),
        "register_forward_pre_hook: a hook taking Kwargs needs with_kwargs = true", xg::Error);
}

TEST_CASE("Calls: backward hooks over a tuple output, with wrong arities refused") {
    xg::manual_seed(8);
    auto mha = std::make_shared<nn::MultiheadAttention>(4, 2);
    mha->to(xg::kFloat64);
    Tensor q = test::randn64({3, 1, 4}, 1).requires_grad_(true);
    Tensor kv = test::randn64({5, 1, 4}, 2);
    // A backward pre hook doubles grad_output: every gradient doubles.
    auto [out, w] = (*mha)(q, kv, kv);
    xg::sum(out).backward();
    xt::xarray<double> base = test::values(q.grad());
    q.mutable_grad() = Tensor();
    auto pre = mha->register_full_backward_pre_hook([](nn::Module&, const std::vector<Tensor>& go) {
        CHECK(go.size() == 2);
        CHECK_FALSE(go[1].defined());
        return std::vector<Tensor>{go[0] * 2.0, go[1]};
    });
    auto [out2, w2] = (*mha)(q, kv, kv);
    xg::sum(out2).backward();
    CHECK(test::close(test::values(q.grad()), base * 2.0));
    pre.remove();
    auto bad = mha->register_full_backward_hook(
        [](nn::Module&, const std::vector<Tensor>& gi, const std::vector<Tensor>&) {
            return std::vector<Tensor>{gi[0]};
        });
    auto [out3, w3] = (*mha)(q, kv, kv);
    CHECK_THROWS_WITH_AS(xg::sum(out3).backward(),
                         "MultiheadAttention: backward hook returned an invalid number of "
                         "grad_input, got 1, but expected 3",
                         xg::Error);
}

}  // namespace nn_module_test_calls
