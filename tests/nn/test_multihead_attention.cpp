// MultiheadAttention against PyTorch 1.13 (gen_transformer.py): outputs, attention
// weights and every gradient for self- and cross-attention, bool and float masks,
// batch_first both ways, per-head weights, no bias; then structure, init and errors.
#include <cmath>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/transformer_cases.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_multihead_attention {

namespace nn = xg::nn;
namespace ref = reference::transformer;
using namespace transformer_test;

TEST_CASE("MultiheadAttention: outputs, weights and gradients match PyTorch") {
    for (const ref::MhaCase& c : ref::mha_cases) {
        CAPTURE(c.name);
        CAPTURE(c.float32);
        const xg::Dtype dtype = dtype_of(c.float32);
        auto mha = std::make_shared<nn::MultiheadAttention>(ref::embed_dim, ref::num_heads, 0.0,
                                                            c.bias, c.batch_first);
        mha->to(dtype);
        load(*mha, c.state_dict, dtype);
        mha->eval();
        xg::Tensor q = c.query.tensor(dtype, true);
        xg::Tensor k = c.self_attention ? q : c.key.tensor(dtype, true);
        xg::Tensor v = c.self_attention ? q : c.value.tensor(dtype, true);
        auto [out, weights] = (*mha)(
            q, k, v, mask(c.key_padding_mask_kind, c.key_padding_mask, dtype), c.need_weights,
            mask(c.attn_mask_kind, c.attn_mask, dtype), c.average_attn_weights);
        CHECK(error(out, c.out) < tolerance(c.float32));
        xg::Tensor loss = xg::sum(out * c.upstream_out.tensor(dtype));
        if (c.need_weights) {
            CHECK(error(weights, c.weights) < tolerance(c.float32));
            loss = loss + xg::sum(weights * c.upstream_weights.tensor(dtype));
        } else {
            CHECK_FALSE(weights.defined());
        }
        loss.backward();
        CHECK(error(q.grad(), c.grad_query) < tolerance(c.float32));
        if (!c.self_attention) {
            CHECK(error(k.grad(), c.grad_key) < tolerance(c.float32));
            CHECK(error(v.grad(), c.grad_value) < tolerance(c.float32));
        }
        check_grads(*mha, c.grads, c.float32);
    }
}

TEST_CASE("MultiheadAttention: parameters, initialisation and printing follow PyTorch") {
    xg::manual_seed(3);
    nn::MultiheadAttention mha(8, 2);
    CHECK(test::parameter_names(mha) == std::vector<std::string>{"in_proj_weight", "in_proj_bias",
                                                                 "out_proj.weight",
                                                                 "out_proj.bias"});
    CHECK(mha.in_proj_weight.shape() == xg::Shape{24, 8});
    // xavier_uniform_ over [24, 8]: |w| <= sqrt(6 / 32); biases start at zero.
    auto w = test::values(mha.in_proj_weight);
    CHECK(xt::amax(xt::abs(w))() <= std::sqrt(6.0 / 32.0));
    CHECK(xt::amax(xt::abs(w))() > 0.5 * std::sqrt(6.0 / 32.0));
    CHECK(xt::all(xt::equal(test::values(mha.in_proj_bias), 0.0)));
    CHECK(xt::all(xt::equal(test::values(mha.out_proj->bias), 0.0)));
    CHECK(mha.repr() == reference::lookup(ref::reprs, "mha"));
    nn::MultiheadAttention plain(8, 2, 0.0, false, true);
    CHECK(test::parameter_names(plain) ==
          std::vector<std::string>{"in_proj_weight", "out_proj.weight"});
    CHECK(plain.repr() == reference::lookup(ref::reprs, "mha_nobias_batch_first"));
    auto copy = std::dynamic_pointer_cast<nn::MultiheadAttention>(mha.clone());
    REQUIRE(copy);
    CHECK(copy->out_proj == copy->get_submodule("out_proj"));
    CHECK(test::values(copy->in_proj_weight) == test::values(mha.in_proj_weight));
}

TEST_CASE("MultiheadAttention: called by keyword, through a Module handle, and unbatched") {
    xg::manual_seed(4);
    auto mha = std::make_shared<nn::MultiheadAttention>(8, 2);
    xg::Tensor x = test::randn64({4, 2, 8}).to(xg::kFloat32);
    auto [out, weights] = (*mha)(x, x, x);
    std::shared_ptr<nn::Module> handle = mha;
    nn::Value value = handle->call({x, x, x}, {{"need_weights", false}});
    REQUIRE(value.is_list());
    CHECK(test::close(test::values(value.list()[0].tensor()), test::values(out), 1e-5, 1e-6));
    CHECK(value.list()[1].is_none());
    // Unbatched [L, E] is the batched call on one sequence.
    xg::Tensor one = xg::narrow(x, 1, 0, 1);
    auto [single, single_weights] =
        (*mha)(xg::squeeze(one, 1), xg::squeeze(one, 1), xg::squeeze(one, 1));
    CHECK(single.shape() == xg::Shape{4, 8});
    CHECK(single_weights.shape() == xg::Shape{4, 4});
    CHECK(test::close(test::values(single), test::values(xg::squeeze(xg::narrow(out, 1, 0, 1), 1)),
                      1e-5, 1e-6));
}

TEST_CASE("MultiheadAttention: bad arguments name the module, the signature and the call") {
    nn::MultiheadAttention mha(8, 2);
    xg::Tensor x = xg::zeros({4, 2, 8});
    CHECK_THROWS_WITH_AS(
        mha(x, x),
        "MultiheadAttention: forward() missing 1 required positional argument: 'value' (expected "
        "forward(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor = None, "
        "need_weights: bool = True, attn_mask: Tensor = None, average_attn_weights: bool = True); "
        "got (Tensor[4, 2, 8] float32, Tensor[4, 2, 8] float32))",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        mha(x, x, x, xg::Tensor(), 3.5),
        "MultiheadAttention: forward(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: "
        "Tensor = None, need_weights: bool = True, attn_mask: Tensor = None, average_attn_weights: "
        "bool = True): argument 'need_weights' (position 5) must be bool (got 3.5)",
        xg::Error);
    CHECK_THROWS_WITH_AS(
        mha.call({x, x, x}, {{"needweights", false}}),
        doctest::Contains("forward() got an unexpected keyword argument 'needweights'"), xg::Error);
    CHECK_THROWS_WITH_AS(mha.call({x, x, x, xg::Tensor()}, {{"key_padding_mask", xg::Tensor()}}),
                         doctest::Contains("got multiple values for argument 'key_padding_mask'"),
                         xg::Error);
    CHECK_THROWS_WITH_AS(mha.call({x, x, x, xg::Tensor(), true, xg::Tensor(), true, 1}),
                         doctest::Contains("takes 7 positional arguments but 8 were given"),
                         xg::Error);
    CHECK_THROWS_WITH_AS(mha(x, x, xg::zeros({4, 2, 6})),
                         "MultiheadAttention: expected query [L, N, 8] and key, value [S, N, 8] "
                         "(got [4, 2, 8], [4, 2, 8] and [4, 2, 6])",
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        nn::MultiheadAttention(8, 3),
        "MultiheadAttention: expected embed_dim divisible by num_heads (got 8 and 3)", xg::Error);
    CHECK_THROWS_WITH_AS(
        mha(x, x, x, xg::zeros({2, 4}, xg::kInt64)),
        "MultiheadAttention: expected key_padding_mask to be bool or float32 (got int64)",
        xg::Error);
}

TEST_CASE("MultiheadAttention: a float64 gradcheck through masks and both paths") {
    xg::manual_seed(5);
    auto mha = std::make_shared<nn::MultiheadAttention>(4, 2, 0.0, true, true);
    mha->to(xg::kFloat64);
    xt::xarray<bool> padding = {{false, false, true}, {false, true, false}};
    xg::Tensor kpm = xg::tensor<bool>(padding);
    for (bool need_weights : {true, false}) {
        CAPTURE(need_weights);
        CHECK(test::gradcheck(
            [&](const std::vector<xg::Tensor>& in) {
                auto [out, w] = (*mha)(in[0], in[1], in[1], kpm, need_weights);
                return need_weights ? xg::sum(out) + xg::sum(w * w) : out;
            },
            {test::randn64({2, 2, 4}, 1), test::randn64({2, 3, 4}, 2)}));
    }
}

}  // namespace nn_test_multihead_attention
