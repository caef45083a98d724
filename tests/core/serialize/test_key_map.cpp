// xg::KeyMap: each rule kind, rules chained in order, optional rules, the text
// of every error, and the llama_mlp preset loading separate, fused and
// Hugging Face (reference/sharded_bf16, from gen_sharded.py) MLP weights into
// FeedForward::swiglu.
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_key_map {

namespace fs = std::filesystem;
using Keys = std::vector<std::string>;

namespace {

const fs::path kReference = fs::path(XGRAD_SOURCE_DIR) / "tests/core/serialize/reference";

// One float32 tensor per key, holding its position: [i, i].
xg::StateDict numbered(const Keys& keys) {
    xg::StateDict sd;
    for (std::size_t i = 0; i < keys.size(); ++i)
        sd.insert_or_assign(keys[i], xg::full({2}, static_cast<double>(i)));
    return sd;
}

// [rows, 2] with rows 0, 1, 2, ...: row r is {2r, 2r + 1}.
xg::Tensor rows(std::size_t n, bool requires_grad = false) {
    auto a = xt::xarray<float>::from_shape({n, 2});
    for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(i);
    return xg::tensor(std::move(a), requires_grad);
}

void check_fails(const xg::KeyMap& map, const xg::StateDict& sd, const std::string& expected) {
    CHECK_THROWS_WITH_AS(map(sd), expected.c_str(), xg::Error);
}

// A Llama MLP's three weights for d_model 8, d_ff 16, and a swiglu FeedForward
// holding them, set by hand: gate -> layer1, up -> linear_v, down -> layer2.
struct LlamaMlp {
    xg::Tensor gate = xg::randn({16, 8}), up = xg::randn({16, 8}), down = xg::randn({8, 16});
    std::shared_ptr<xg::nn::FeedForward> by_hand = xg::nn::FeedForward::swiglu(8, 16, 0.0);

    LlamaMlp() {
        by_hand->layer1->weight.set_data(gate.clone());
        by_hand->linear_v->weight.set_data(up.clone());
        by_hand->layer2->weight.set_data(down.clone());
    }

    // A FeedForward loaded from `checkpoint` through the preset gives by_hand's output.
    void check_loads(const xg::StateDict& checkpoint, const std::string& prefix) const {
        auto ffn = xg::nn::FeedForward::swiglu(8, 16, 0.0);
        ffn->load_state_dict(xg::KeyMap::llama_mlp(prefix)(checkpoint));
        CHECK(test::identical(ffn->layer1->weight, gate));
        CHECK(test::identical(ffn->linear_v->weight, up));
        CHECK(test::identical(ffn->layer2->weight, down));
        const xg::Tensor x = xg::randn({3, 8});
        CHECK(test::identical((*ffn)(x), (*by_hand)(x)));
    }
};

}  // namespace

TEST_CASE("strip_prefix and add_prefix rename in place and keep every tensor") {
    const xg::StateDict sd = numbered({"model.a", "other", "model.b"});
    const xg::StateDict out = xg::KeyMap().strip_prefix("model.").add_prefix("net.")(sd);
    CHECK(out.keys() == Keys{"net.a", "net.other", "net.b"});
    // The same tensors, not copies.
    CHECK(out.at("net.a").impl() == sd.at("model.a").impl());
    CHECK(out.at("net.other").impl() == sd.at("other").impl());
    CHECK(sd.keys() == Keys{"model.a", "other", "model.b"});  // the input is unchanged
}

TEST_CASE("rename matches whole keys with a regex and substitutes its groups") {
    const xg::StateDict sd = numbered({"layers.0.attn.w", "head.w", "layers.12.attn.w", "attn.w"});
    xg::KeyMap map;
    map.rename(R"(layers\.(\d+)\.attn\.w)", "blocks.$1.attention.weight")
        .rename(R"(attn\.w)", "old.$&");
    const xg::StateDict out = map(sd);
    CHECK(out.keys() ==
          Keys{"blocks.0.attention.weight", "head.w", "blocks.12.attention.weight", "old.attn.w"});
    CHECK_VALUES(out.at("blocks.12.attention.weight"), (xt::xarray<double>{2, 2}));
    // "w" matches no whole key, though every key ends with it.
    check_fails(xg::KeyMap().rename("w", "weight"), sd,
                "KeyMap: rename 'w' -> 'weight' matched no key (keys: layers.0.attn.w, head.w, "
                "layers.12.attn.w, attn.w)");
}

TEST_CASE("select keeps and drop removes the keys a regex matches") {
    const xg::StateDict sd = numbered({"model.layers.0.mlp.w", "model.layers.0.attn.w",
                                       "model.layers.1.mlp.w", "rotary.inv_freq"});
    CHECK(xg::KeyMap().select(R"(model\.layers\.\d+\.mlp\..*)")(sd).keys() ==
          Keys{"model.layers.0.mlp.w", "model.layers.1.mlp.w"});
    CHECK(xg::KeyMap().drop(R"(.*inv_freq)")(sd).keys() ==
          Keys{"model.layers.0.mlp.w", "model.layers.0.attn.w", "model.layers.1.mlp.w"});
    check_fails(xg::KeyMap().drop("mlp"), sd,
                "KeyMap: drop 'mlp' matched no key (keys: model.layers.0.mlp.w, "
                "model.layers.0.attn.w, model.layers.1.mlp.w, rotary.inv_freq)");
}

TEST_CASE("split cuts a tensor into equal parts or given sizes, in the key's place") {
    xg::StateDict sd{{"first", xg::ones({1})}, {"qkv", rows(4, true)}, {"last", xg::ones({1})}};
    xg::StateDict equal = xg::KeyMap().split("qkv", 0, {"q", "kv"})(sd);
    CHECK(equal.keys() == Keys{"first", "q", "kv", "last"});
    CHECK_VALUES(equal.at("q"), (xt::xarray<double>{{0, 1}, {2, 3}}));
    CHECK_VALUES(equal.at("kv"), (xt::xarray<double>{{4, 5}, {6, 7}}));
    // Checkpoint values, without history even when the source requires grad.
    CHECK_FALSE(equal.at("q").requires_grad());
    CHECK(equal.at("q").grad_fn_name().empty());
    xg::StateDict sized = xg::KeyMap().split("qkv", 0, {2, 1, 1}, {"q", "k", "v"})(sd);
    CHECK(sized.keys() == Keys{"first", "q", "k", "v", "last"});
    CHECK_VALUES(sized.at("k"), (xt::xarray<double>{{4, 5}}));
    CHECK_VALUES(sized.at("v"), (xt::xarray<double>{{6, 7}}));
    // Negative dims count from the end.
    xg::StateDict columns = xg::KeyMap().split("qkv", -1, {"a", "b"})(sd);
    CHECK_VALUES(columns.at("b"), test::column({1, 3, 5, 7}));
}

TEST_CASE("join concatenates tensors where the first of them is") {
    xg::StateDict sd{{"other", xg::ones({1})},
                     {"k", rows(1) + 10.0},
                     {"q", rows(1, true)},
                     {"v", rows(1) + 20.0}};
    xg::StateDict out = xg::KeyMap().join({"q", "k", "v"}, 0, "qkv")(sd);
    CHECK(out.keys() == Keys{"other", "qkv"});
    CHECK_VALUES(out.at("qkv"), (xt::xarray<double>{{0, 1}, {10, 11}, {20, 21}}));
    CHECK_FALSE(out.at("qkv").requires_grad());
    CHECK_VALUES(xg::KeyMap().join({"q", "k"}, 1, "qk")(sd).at("qk"),
                 (xt::xarray<double>{{0, 1, 10, 11}}));
}

TEST_CASE("rules apply in order, each to the result of the one before") {
    xg::StateDict sd{{"mlp.gate_up", rows(4)}, {"mlp.down", rows(2)}};
    xg::KeyMap map;
    map.strip_prefix("mlp.").split("gate_up", 0, {"gate", "up"}).join({"up", "gate"}, 0, "up_gate");
    xg::StateDict out = map(sd);
    CHECK(out.keys() == Keys{"up_gate", "down"});
    CHECK_VALUES(out.at("up_gate"), (xt::xarray<double>{{4, 5}, {6, 7}, {0, 1}, {2, 3}}));
    // The split's key is the stripped one: in the other order it matches nothing.
    check_fails(xg::KeyMap().split("gate_up", 0, {"gate", "up"}).strip_prefix("mlp."), sd,
                "KeyMap: split 'gate_up' along dim 0 into [gate, up] matched no key (keys: "
                "mlp.gate_up, mlp.down)");
}

TEST_CASE("an optional rule that matches nothing does nothing") {
    const xg::StateDict sd = numbered({"alpha", "beta"});
    xg::KeyMap map;
    map.rename("x", "y").optional().split("x", 0, {"y", "z"}).optional();
    map.join({"x", "y"}, 0, "xy").optional().rename("alpha", "gamma");
    CHECK(map(sd).keys() == Keys{"gamma", "beta"});
    // An optional join with some of its keys is still an error.
    check_fails(xg::KeyMap().join({"alpha", "x"}, 0, "ax").optional(), sd,
                "KeyMap: join [alpha, x] along dim 0 -> 'ax': missing 'x' (no similar keys)");
    CHECK_THROWS_WITH_AS(xg::KeyMap().optional(),
                         "KeyMap: optional() marks the rule added last (got no rule)", xg::Error);
}

TEST_CASE("KeyMap errors name the rule, the keys and what was expected") {
    SUBCASE("a rule that matched nothing lists the first 20 keys") {
        Keys keys;
        for (int i = 0; i < 25; ++i) keys.push_back("k" + std::to_string(i));
        std::string listed;
        for (int i = 0; i < 20; ++i) listed += (i ? ", k" : "k") + std::to_string(i);
        check_fails(
            xg::KeyMap().strip_prefix("model."), numbered(keys),
            "KeyMap: strip_prefix 'model.' matched no key (keys: " + listed + ", ... (5 more))");
        check_fails(xg::KeyMap().add_prefix("x."), {},
                    "KeyMap: add_prefix 'x.' matched no key (keys: none)");
    }
    SUBCASE("two tensors given one name") {
        check_fails(xg::KeyMap().rename(R"(.*\.(w))", "$1"), numbered({"a.w", "b.w"}),
                    "KeyMap: rename '.*\\.(w)' -> '$1' gives two tensors the name 'w' (from 'a.w' "
                    "and 'b.w')");
        check_fails(xg::KeyMap().strip_prefix("m."), numbered({"w", "m.w"}),
                    "KeyMap: strip_prefix 'm.' gives two tensors the name 'w' (from 'w' and "
                    "'m.w')");
        check_fails(xg::KeyMap().split("ab", 0, {"a", "b"}), {{"ab", rows(2)}, {"b", rows(1)}},
                    "KeyMap: split 'ab' along dim 0 into [a, b] gives two tensors the name 'b' "
                    "(from 'ab' and 'b')");
        check_fails(xg::KeyMap().strip_prefix("a"), numbered({"a"}),
                    "KeyMap: strip_prefix 'a' gives 'a' an empty name");
    }
    SUBCASE("a split that does not fit the tensor") {
        const xg::StateDict sd{{"w", xg::zeros({3, 4})}};
        check_fails(xg::KeyMap().split("w", 0, {"a", "b"}), sd,
                    "KeyMap: split 'w' along dim 0 into [a, b]: expected dim 0 of 'w' (shape [3, "
                    "4]) to divide into 2 equal parts (got size 3)");
        check_fails(xg::KeyMap().split("w", 2, {"a", "b"}), sd,
                    "KeyMap: split 'w' along dim 2 into [a, b]: expected a dim in [-2, 2) for 'w' "
                    "of shape [3, 4] (got 2)");
        check_fails(xg::KeyMap().split("w", 0, {1, 1}, {"a", "b"}), sd,
                    "KeyMap: split 'w' along dim 0 into [a, b] of sizes [1, 1]: expected sizes "
                    "summing to 3, dim 0 of 'w' (shape [3, 4]) (got 2)");
        CHECK_THROWS_WITH_AS(xg::KeyMap().split("w", 0, {"a", "a"}),
                             "KeyMap: split 'w' along dim 0 into [a, a]: expected distinct names "
                             "(got 'a' twice)",
                             xg::Error);
        CHECK_THROWS_WITH_AS(xg::KeyMap().split("w", 0, {1, 2, 3}, {"a", "b"}),
                             "KeyMap: split 'w' along dim 0 into [a, b] of sizes [1, 2, 3]: "
                             "expected one size per name (got 3 sizes for 2 names)",
                             xg::Error);
    }
    SUBCASE("a join with missing keys suggests similar ones") {
        const xg::StateDict sd = numbered({"attn.q.weight", "attn.k.weight", "mlp.w", "v.weight"});
        check_fails(xg::KeyMap().join({"q.weight", "k.weight", "v.weight"}, 0, "qkv"), sd,
                    "KeyMap: join [q.weight, k.weight, v.weight] along dim 0 -> 'qkv': missing "
                    "'q.weight', 'k.weight' (similar keys: 'attn.q.weight', 'attn.k.weight')");
    }
    SUBCASE("a join of tensors that do not fit together") {
        check_fails(xg::KeyMap().join({"a", "b"}, 0, "ab"),
                    {{"a", rows(1)}, {"b", rows(1).to(xg::kFloat64)}},
                    "KeyMap: join [a, b] along dim 0 -> 'ab': expected tensors of one dtype (got "
                    "'a' [1, 2] float32, 'b' [1, 2] float64)");
        CHECK_THROWS_WITH_AS(
            xg::KeyMap().join({"a", "b"}, 0, "ab")({{"a", rows(1)}, {"b", xg::zeros({1, 3})}}),
            doctest::Contains("KeyMap: join [a, b] along dim 0 -> 'ab': cannot join 'a' [1, 2] "
                              "float32, 'b' [1, 3] float32 (cat: "),
            xg::Error);
    }
    SUBCASE("an invalid regex, when the rule is added") {
        CHECK_THROWS_WITH_AS(xg::KeyMap().rename("(", "x"),
                             doctest::Contains("KeyMap: rename '(' -> 'x': expected a valid regex "
                                               "(got '(': "),
                             xg::Error);
    }
}

TEST_CASE("llama_mlp loads separate gate, up and down projections into FeedForward::swiglu") {
    xg::manual_seed(31);
    const LlamaMlp mlp;
    // A whole model's keys: only the prefix's are kept.
    const xg::StateDict llama{{"model.embed_tokens.weight", xg::randn({12, 8})},
                              {"model.layers.0.mlp.gate_proj.weight", mlp.gate},
                              {"model.layers.0.mlp.up_proj.weight", mlp.up},
                              {"model.layers.0.mlp.down_proj.weight", mlp.down},
                              {"model.layers.1.mlp.gate_proj.weight", xg::randn({16, 8})},
                              {"model.norm.weight", xg::ones({8})}};
    mlp.check_loads(llama, "model.layers.0.mlp.");
    // Without a prefix: the MLP's keys alone.
    mlp.check_loads({{"gate_proj.weight", mlp.gate},
                     {"up_proj.weight", mlp.up},
                     {"down_proj.weight", mlp.down}},
                    "");
    CHECK(xg::KeyMap::llama_mlp("model.layers.0.mlp.")(llama).keys() ==
          Keys{"layer1.weight", "linear_v.weight", "layer2.weight"});
    check_fails(xg::KeyMap::llama_mlp("model.layers.7.mlp."), llama,
                "KeyMap: select 'model\\.layers\\.7\\.mlp\\..*' matched no key (keys: "
                "model.embed_tokens.weight, model.layers.0.mlp.gate_proj.weight, "
                "model.layers.0.mlp.up_proj.weight, model.layers.0.mlp.down_proj.weight, "
                "model.layers.1.mlp.gate_proj.weight, model.norm.weight)");
}

TEST_CASE("llama_mlp splits Phi-3's fused gate_up_proj, gate rows first") {
    xg::manual_seed(32);
    const LlamaMlp mlp;
    const xg::StateDict phi3{
        {"model.layers.0.mlp.gate_up_proj.weight", xg::cat({mlp.gate, mlp.up}, 0)},
        {"model.layers.0.mlp.down_proj.weight", mlp.down}};
    mlp.check_loads(phi3, "model.layers.0.mlp.");
    // Both layouts at once would give layer1 twice.
    xg::StateDict both = phi3;
    both.insert_or_assign("model.layers.0.mlp.gate_proj.weight", mlp.gate);
    CHECK_THROWS_WITH_AS(xg::KeyMap::llama_mlp("model.layers.0.mlp.")(both),
                         doctest::Contains("gives two tensors the name 'layer1.weight'"),
                         xg::Error);
}

TEST_CASE("llama_mlp loads the Hugging Face reference checkpoint and matches PyTorch") {
    const xg::StateDict expected =
        xg::load((kReference / "sharded_bf16_expected.safetensors").string());
    auto ffn = xg::nn::FeedForward::swiglu(8, 16, 0.0);
    // bfloat16 weights, converted to the module's float32 by load_state_dict.
    ffn->load_state_dict(xg::KeyMap::llama_mlp("model.layers.0.mlp.")(
        xg::load((kReference / "sharded_bf16").string())));
    CHECK_VALUES_TOL((*ffn)(expected.at("mlp.input")), test::values(expected.at("mlp.output")),
                     1e-5, 1e-6);
}

}  // namespace core_serialize_test_key_map
