// TransformerEncoderLayer and TransformerEncoder against PyTorch 1.13
// (gen_transformer.py): outputs and every gradient with each mask kind,
// batch_first and norm_first both ways, relu and gelu, the FeedForward flavour
// (SwiGLU, GeGLU, ReLU), PyTorch's own .pt files loaded strictly; then structure.
#include <filesystem>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "nn/transformer_cases.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace nn_test_transformer_encoder_layer {

namespace nn = xg::nn;
namespace ref = reference::transformer;
using namespace transformer_test;

namespace {

std::shared_ptr<nn::Module> build(const ref::LayerCase& c) {
    const std::size_t d = ref::embed_dim, h = ref::num_heads, ff = ref::dim_feedforward;
    if (c.kind == "feed_forward_layer") {
        std::shared_ptr<nn::FeedForward> block =
            c.ffn_variant == "swiglu"  ? nn::FeedForward::swiglu(d, ff, 0.1)
            : c.ffn_variant == "geglu" ? nn::FeedForward::geglu(d, ff, 0.1)
                                       : std::make_shared<nn::FeedForward>(d, ff, 0.1);
        return std::make_shared<nn::TransformerEncoderLayer>(d, h, block, 0.1, 1e-5, c.batch_first,
                                                             c.norm_first);
    }
    auto layer = std::make_shared<nn::TransformerEncoderLayer>(d, h, ff, 0.1, c.activation, 1e-5,
                                                               c.batch_first, c.norm_first);
    if (c.kind == "encoder_layer") return layer;
    std::shared_ptr<nn::Module> norm;
    if (c.final_norm) norm = std::make_shared<nn::LayerNorm>(xg::Shape{d});
    return std::make_shared<nn::TransformerEncoder>(layer, c.num_layers, norm);
}

}  // namespace

TEST_CASE("TransformerEncoderLayer and TransformerEncoder: outputs and gradients match PyTorch") {
    for (const ref::LayerCase& c : ref::layer_cases) {
        CAPTURE(c.name);
        CAPTURE(c.float32);
        const xg::Dtype dtype = dtype_of(c.float32);
        auto model = build(c);
        model->to(dtype);
        load(*model, c.state_dict, dtype);
        model->eval();
        xg::Tensor src = c.src.tensor(dtype, true);
        xg::Tensor src_mask = mask(c.src_mask_kind, c.src_mask, dtype);
        xg::Tensor padding = mask(c.src_key_padding_mask_kind, c.src_key_padding_mask, dtype);
        // Through a Module handle with PyTorch's keyword names for the masks.
        const char* mask_name = c.kind == "encoder" ? "mask" : "src_mask";
        nn::Value out_value =
            model->call({src}, {{mask_name, src_mask}, {"src_key_padding_mask", padding}});
        xg::Tensor out = out_value.tensor();
        CHECK(error(out, c.out) < tolerance(c.float32));
        xg::sum(out * c.upstream.tensor(dtype)).backward();
        CHECK(error(src.grad(), c.grad_src) < tolerance(c.float32));
        check_grads(*model, c.grads, c.float32);
    }
}

TEST_CASE("TransformerEncoderLayer: PyTorch's torch.save files load strictly and agree") {
    const std::filesystem::path dir =
        std::filesystem::path(XGRAD_SOURCE_DIR) / "tests/nn/reference";
    int loaded = 0;
    for (const ref::LayerCase& c : ref::layer_cases) {
        if (std::string(c.fixture).empty() || !c.float32) continue;
        CAPTURE(c.fixture);
        auto model = build(c);
        model->load_state_dict(xg::load((dir / c.fixture).string()), /*strict=*/true);
        model->eval();
        xg::Tensor src = c.src.tensor(xg::kFloat32);
        xg::Tensor out =
            model
                ->call({src, mask(c.src_mask_kind, c.src_mask, xg::kFloat32),
                        mask(c.src_key_padding_mask_kind, c.src_key_padding_mask, xg::kFloat32)})
                .tensor();
        CHECK(error(out, c.out) < tolerance(true));
        ++loaded;
    }
    CHECK(loaded == 2);
}

TEST_CASE("TransformerEncoderLayer: children, typed calls, clones and printing follow PyTorch") {
    nn::TransformerEncoderLayer layer(8, 2, 16);
    std::vector<std::string> children;
    for (const auto& [name, child] : layer.named_children()) children.push_back(name);
    CHECK(children == std::vector<std::string>{"self_attn", "linear1", "dropout", "linear2",
                                               "norm1", "norm2", "dropout1", "dropout2"});
    CHECK(layer.repr() == reference::lookup(ref::reprs, "encoder_layer"));
    nn::TransformerEncoderLayer gelu(8, 2, 16, 0.1, "gelu", 1e-5, false, true);
    CHECK(gelu.repr() == reference::lookup(ref::reprs, "encoder_layer_gelu_norm_first"));
    CHECK_THROWS_WITH_AS(nn::TransformerEncoderLayer(8, 2, 16, 0.1, "tanh"),
                         "TransformerEncoderLayer: activation should be relu/gelu, not tanh",
                         xg::Error);

    auto swiglu = std::make_shared<nn::TransformerEncoderLayer>(
        8, 2, nn::FeedForward::swiglu(8, 16, 0.1), 0.1, 1e-5, true, true);
    children.clear();
    for (const auto& [name, child] : swiglu->named_children()) children.push_back(name);
    CHECK(children == std::vector<std::string>{"self_attn", "feed_forward", "norm1", "norm2",
                                               "dropout1", "dropout2"});
    swiglu->eval();
    xg::Tensor x = test::randn64({2, 5, 8}).to(xg::kFloat32);
    xt::xarray<bool> causal = xt::zeros<bool>({5, 5});
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = i + 1; j < 5; ++j) causal(i, j) = true;
    xg::Tensor typed = (*swiglu)(x, xg::tensor<bool>(causal));
    // A clone computes the same and shares nothing.
    auto copy = swiglu->clone();
    xg::Tensor cloned = copy->call({x, xg::tensor<bool>(causal)}).tensor();
    CHECK(test::values(typed) == test::values(cloned));
    // Causal: the first position sees only itself, so later tokens cannot change it.
    xg::Tensor changed = xg::cat({xg::narrow(x, 1, 0, 1), xg::zeros({2, 4, 8})}, 1);
    xg::Tensor first = xg::narrow((*swiglu)(changed, xg::tensor<bool>(causal)), 1, 0, 1);
    CHECK(test::close(test::values(first), test::values(xg::narrow(typed, 1, 0, 1)), 1e-6, 1e-6));
}

// Without hooks, (*layer)(x) and self_attn run forward directly, building no
// argument lists; with hooks the same calls reach them as PyTorch makes them.
TEST_CASE("TransformerEncoderLayer: direct calls without hooks match the hooked calls") {
    auto layer = std::make_shared<nn::TransformerEncoderLayer>(8, 2, 16);
    layer->eval();
    xg::Tensor x = test::randn64({5, 2, 8}).to(xg::kFloat32);
    xg::Tensor direct = (*layer)(x);
    CHECK(test::values(direct) == test::values(layer->call({x}).tensor()));
    CHECK(test::values(direct) == test::values(layer->forward(x, xg::Tensor(), xg::Tensor())));

    int layer_calls = 0;
    std::vector<std::string> keywords;
    auto on_layer = layer->register_forward_pre_hook([&](nn::Module&, const xg::Tensor& input) {
        ++layer_calls;
        CHECK(input.impl() == x.impl());
    });
    auto on_attention = layer->self_attn->register_forward_pre_hook(
        [&](nn::Module&, const nn::Args& args, const nn::Kwargs& kwargs) {
            CHECK(args.size() == 3);
            for (const auto& [name, value] : kwargs) keywords.push_back(name);
        },
        false, true);
    xg::Tensor hooked = (*layer)(x);
    CHECK(layer_calls == 1);
    CHECK(keywords == std::vector<std::string>{"attn_mask", "key_padding_mask", "need_weights"});
    CHECK(test::values(hooked) == test::values(direct));
    on_layer.remove();
    on_attention.remove();
    (*layer)(x);
    CHECK(layer_calls == 1);
    CHECK(keywords.size() == 3);
}

TEST_CASE("TransformerEncoder: layers are clones, printed and keyed as PyTorch's") {
    auto layer = std::make_shared<nn::TransformerEncoderLayer>(8, 2, 16);
    nn::TransformerEncoder encoder(layer, 2, std::make_shared<nn::LayerNorm>(xg::Shape{8}));
    CHECK(encoder.repr() == reference::lookup(ref::reprs, "encoder"));
    auto keys = encoder.state_dict().keys();
    CHECK(keys.front() == "layers.0.self_attn.in_proj_weight");
    CHECK(keys.back() == "norm.bias");
    auto first = encoder.get_parameter("layers.0.linear1.weight");
    auto second = encoder.get_parameter("layers.1.linear1.weight");
    CHECK(first.impl() != second.impl());
    CHECK(test::values(first) == test::values(second));
    CHECK(test::values(first) == test::values(layer->linear1->weight));
}

}  // namespace nn_test_transformer_encoder_layer
