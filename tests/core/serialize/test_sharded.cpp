// Hugging Face sharded checkpoints: xg::save_sharded splits as huggingface_hub
// does and writes transformers' index, xg::load reads a folder or an index one
// shard at a time, stale files go only once a new checkpoint is complete, and
// a broken index is an xg::Error naming the index, the key and the shard. The
// reference checkpoint in reference/sharded_bf16 comes from gen_sharded.py.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "serialize_io.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_sharded {

namespace fs = std::filesystem;

namespace {

const fs::path kReference = fs::path(XGRAD_SOURCE_DIR) / "tests/core/serialize/reference";
const std::string kShard1 = "model-00001-of-00002.safetensors";
const std::string kShard2 = "model-00002-of-00002.safetensors";
const std::string kIndex = "model.safetensors.index.json";

// A fresh, empty folder for one test.
fs::path scratch(const std::string& name) {
    fs::path dir =
        fs::temp_directory_path() / ("xgrad-sharded-tests-" + std::to_string(::getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::set<std::string> files_in(const fs::path& dir) {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename());
    return names;
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// 40 + 40 + 20 bytes, then 40 + 24: two shards at a limit of 100 bytes, keys
// out of alphabetical order so that the index's sorting shows.
xg::StateDict five_tensors() {
    xg::manual_seed(11);
    return {{"embed", xg::randn({10})},
            {"block.1", xg::randn({2, 5})},
            {"block.0", xg::randn({5})},
            {"head", xg::randn({10})},
            {"norm", xg::randn({3}, xg::kFloat64)}};
}

bool same_tensors(const xg::StateDict& a, const xg::StateDict& b) {
    if (a.size() != b.size()) return false;
    for (const auto& [key, t] : a) {
        if (!b.contains(key) || !test::identical(t, b.at(key))) return false;
    }
    return true;
}

// A two-shard checkpoint of five_tensors() in `dir`, whose index a test then edits.
fs::path two_shards(const std::string& name) {
    fs::path dir = scratch(name);
    xg::save_sharded(five_tensors(), dir.string(), 100);
    return dir;
}

void check_error(const fs::path& path, const std::string& expected) {
    CHECK_THROWS_WITH_AS(xg::load(path.string()), expected.c_str(), xg::Error);
}

}  // namespace

TEST_CASE("save_sharded splits greedily in key order and writes transformers' index") {
    fs::path dir = scratch("split");
    const xg::StateDict sd = five_tensors();
    xg::save_sharded(sd, dir.string(), 100);
    CHECK(files_in(dir) == std::set<std::string>{kShard1, kShard2, kIndex});
    // json.dumps(index, indent=2, sort_keys=True) + "\n", byte for byte.
    CHECK(test::read_bytes(dir / kIndex) ==
          "{\n"
          "  \"metadata\": {\n"
          "    \"total_size\": 164\n"
          "  },\n"
          "  \"weight_map\": {\n"
          "    \"block.0\": \"model-00001-of-00002.safetensors\",\n"
          "    \"block.1\": \"model-00001-of-00002.safetensors\",\n"
          "    \"embed\": \"model-00001-of-00002.safetensors\",\n"
          "    \"head\": \"model-00002-of-00002.safetensors\",\n"
          "    \"norm\": \"model-00002-of-00002.safetensors\"\n"
          "  }\n"
          "}\n");
    // Each shard keeps the keys in their order, with save_pretrained's metadata.
    CHECK(xg::load((dir / kShard1).string()).keys() ==
          std::vector<std::string>{"embed", "block.1", "block.0"});
    CHECK(xg::load((dir / kShard2).string()).keys() == std::vector<std::string>{"head", "norm"});
    CHECK(xg::load_metadata((dir / kShard2).string()) ==
          std::map<std::string, std::string>{{"format", "pt"}});
    // Loading by folder or by index gives the tensors back in the weight_map's order.
    for (const fs::path& path : {dir, dir / kIndex}) {
        CAPTURE(path);
        xg::StateDict back = xg::load(path.string());
        CHECK(back.keys() ==
              std::vector<std::string>{"block.0", "block.1", "embed", "head", "norm"});
        CHECK(same_tensors(back, sd));
        CHECK(back.at("block.1").shape() == xg::Shape{2, 5});
    }
}

TEST_CASE("a checkpoint that fits one shard is model.safetensors, with no index") {
    fs::path dir = scratch("single") / "made" / "by" / "save";  // created as needed
    const xg::StateDict sd = five_tensors();
    xg::save_sharded(sd, dir.string());
    CHECK(files_in(dir) == std::set<std::string>{"model.safetensors"});
    xg::StateDict back = xg::load(dir.string());
    CHECK(back.keys() == sd.keys());  // one file keeps the state dict's order
    CHECK(same_tensors(back, sd));
    // Exactly the limit still fits one shard; an empty state dict is an empty file.
    fs::path exact = scratch("exact");
    xg::save_sharded(sd, exact.string(), 164);
    CHECK(files_in(exact) == std::set<std::string>{"model.safetensors"});
    fs::path empty = scratch("empty");
    xg::save_sharded({}, empty.string(), 100);
    CHECK(xg::load(empty.string()).empty());
}

TEST_CASE("a tensor larger than the limit gets a shard of its own where it comes") {
    fs::path dir = scratch("big");
    xg::StateDict sd{{"a", xg::ones({10})},
                     {"big", xg::ones({100})},
                     {"b", xg::ones({10})},
                     {"c", xg::ones({25})}};
    xg::save_sharded(sd, dir.string(), 100);
    // As huggingface_hub numbers them: "big" is placed at once, while the
    // shard holding "a" stays open for "b"; "c" (exactly the limit) tips it over.
    const std::string of3 = "-of-00003.safetensors";
    CHECK(xg::load((dir / ("model-00001" + of3)).string()).keys() ==
          std::vector<std::string>{"big"});
    CHECK(xg::load((dir / ("model-00002" + of3)).string()).keys() ==
          std::vector<std::string>{"a", "b"});
    CHECK(xg::load((dir / ("model-00003" + of3)).string()).keys() == std::vector<std::string>{"c"});
    CHECK(test::read_bytes(dir / kIndex).find("\"total_size\": 580") != std::string::npos);
    CHECK(same_tensors(xg::load(dir.string()), sd));
}

TEST_CASE("save_sharded removes an earlier save's stale files once the new one is complete") {
    fs::path dir = scratch("stale");
    const xg::StateDict sd = five_tensors();
    write_text(dir / "notes.txt", "kept");
    write_text(dir / "model-00001-of-00002.safetensors.bak", "kept: not a shard name");
    xg::save_sharded(sd, dir.string(), 60);  // four shards
    CHECK(files_in(dir).count("model-00004-of-00004.safetensors") == 1);
    xg::save_sharded(sd, dir.string(), 100);
    CHECK(files_in(dir) == std::set<std::string>{kShard1, kShard2, kIndex, "notes.txt",
                                                 "model-00001-of-00002.safetensors.bak"});
    // One shard: the index and the shards go, since a reader would prefer them.
    xg::save_sharded(sd, dir.string());
    CHECK(files_in(dir) == std::set<std::string>{"model.safetensors", "notes.txt",
                                                 "model-00001-of-00002.safetensors.bak"});
    // And back: transformers reads model.safetensors before an index, so it goes.
    xg::save_sharded(sd, dir.string(), 100);
    CHECK(files_in(dir) == std::set<std::string>{kShard1, kShard2, kIndex, "notes.txt",
                                                 "model-00001-of-00002.safetensors.bak"});
    CHECK(same_tensors(xg::load(dir.string()), sd));
}

TEST_CASE("a save that fails before its index leaves the previous checkpoint readable") {
    fs::path dir = two_shards("failed");
    const std::string index = test::read_bytes(dir / kIndex);
    // A folder where the second of four shards goes: renaming onto it fails.
    fs::create_directory(dir / "model-00002-of-00004.safetensors");
    CHECK_THROWS_AS(xg::save_sharded(five_tensors(), dir.string(), 60), xg::Error);
    CHECK(files_in(dir).count("model-00001-of-00004.safetensors") == 1);
    CHECK(test::read_bytes(dir / kIndex) == index);
    CHECK(same_tensors(xg::load(dir.string()), five_tensors()));
}

TEST_CASE("is_sharded_path: a folder or an index file") {
    fs::path dir = scratch("paths");
    CHECK(xg::is_sharded_path(dir.string()));
    CHECK(xg::is_sharded_path("missing/model.safetensors.index.json"));
    CHECK(xg::is_sharded_path("pytorch_model.bin.index.json"));
    CHECK_FALSE(xg::is_sharded_path((dir / "model.safetensors").string()));
    CHECK_FALSE(xg::is_sharded_path("index.json"));
}

TEST_CASE("a key the weight_map gives another shard is taken from that shard") {
    fs::path dir = two_shards("elsewhere");
    xg::StateDict first = xg::load((dir / kShard1).string());
    first.insert_or_assign("head", xg::zeros({10}));  // a stale copy; the map says shard 2
    xg::save(first, (dir / kShard1).string());
    CHECK(test::identical(xg::load(dir.string()).at("head"), five_tensors().at("head")));
}

TEST_CASE("a broken sharded checkpoint is an error naming the index, key and shard") {
    fs::path dir = two_shards("errors");
    const fs::path index = dir / kIndex;
    const std::string path = index.string();
    auto with_map = [&](const std::string& weight_map) {
        write_text(index,
                   "{\"metadata\": {\"total_size\": 164}, \"weight_map\": " + weight_map + "}");
    };
    SUBCASE("a key in a shard that the weight_map does not name") {
        with_map(R"({"block.1": ")" + kShard1 + R"(", "embed": ")" + kShard1 + R"(", "head": ")" +
                 kShard2 + R"(", "norm": ")" + kShard2 + R"("})");
        check_error(dir, "load: '" + path + "': shard '" + kShard1 +
                             "' holds key 'block.0', which the weight_map does not name");
    }
    SUBCASE("a key missing from its shard") {
        with_map(R"({"block.0": ")" + kShard1 + R"(", "block.1": ")" + kShard1 +
                 R"(", "embed": ")" + kShard1 + R"(", "head": ")" + kShard2 + R"(", "ghost": ")" +
                 kShard2 + R"(", "norm": ")" + kShard2 + R"("})");
        check_error(
            index, "load: '" + path + "': key 'ghost' is missing from its shard '" + kShard2 + "'");
    }
    SUBCASE("a missing shard") {
        fs::remove(dir / kShard2);
        check_error(dir, "load: '" + path + "': shard '" + kShard2 +
                             "' of key 'head' is missing (expected the file '" +
                             (dir / kShard2).string() + "')");
    }
    SUBCASE("a shard name that leaves the folder or names an index") {
        for (const std::string shard :
             {"../model.safetensors", "sub/x.safetensors", "/etc/passwd", "..", ""}) {
            CAPTURE(shard);
            with_map(R"({"embed": ")" + shard + R"("})");
            check_error(dir, "load: '" + path + "': key 'embed' names shard '" + shard +
                                 "' (expected a file name in the index's folder, without '/', "
                                 "'\\' or '..')");
        }
        with_map(R"({"embed": "model.safetensors.index.json"})");
        check_error(dir, "load: '" + path +
                             "': key 'embed' names shard 'model.safetensors.index.json' "
                             "(expected a safetensors or torch file, not an index)");
    }
    SUBCASE("an index that is not one") {
        const std::string expected = "load: '" + path +
                                     "': expected an index, a JSON object whose \"weight_map\" "
                                     "maps each key to its shard file (got ";
        write_text(index, R"({"metadata": {}})");
        check_error(dir, expected + "no \"weight_map\")");
        write_text(index, R"({"weight_map": ["a"]})");
        check_error(dir, expected + "a \"weight_map\" that is a JSON array)");
        write_text(index, "[1, 2]");
        check_error(dir, expected + "a JSON array)");
        with_map(R"({"embed": 3})");
        check_error(dir, "load: '" + path +
                             "': expected the shard of key 'embed' to be a file name (got 3)");
        write_text(index, "{\"weight_map\": {");
        CHECK_THROWS_WITH_AS(xg::load(path), doctest::Contains("': the index is not valid JSON ("),
                             xg::Error);
    }
    SUBCASE("an unreadable shard") {
        write_text(dir / kShard2, "not a safetensors file");
        CHECK_THROWS_WITH_AS(
            xg::load(dir.string()),
            doctest::Contains(
                ("load: '" + path + "': cannot read shard '" + kShard2 + "' (load: ").c_str()),
            xg::Error);
    }
}

TEST_CASE("a folder that holds neither an index nor model.safetensors is an error") {
    fs::path dir = scratch("neither");
    const std::string expected = "load: '" + dir.string() +
                                 "': expected a folder holding 'model.safetensors.index.json' "
                                 "or 'model.safetensors' (got ";
    check_error(dir, expected + "an empty folder)");
    write_text(dir / "pytorch_model.bin", "");
    write_text(dir / "config.json", "{}");
    check_error(dir, expected + "a folder holding config.json, pytorch_model.bin)");
}

TEST_CASE("a bfloat16 checkpoint sharded as Hugging Face writes one loads and re-saves the same") {
    const fs::path dir = kReference / "sharded_bf16";
    const xg::StateDict expected =
        xg::load((kReference / "sharded_bf16_expected.safetensors").string());
    const xg::StateDict loaded = xg::load(dir.string());
    CHECK(loaded.keys() == std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                                    "model.layers.0.input_layernorm.weight",
                                                    "model.layers.0.mlp.down_proj.weight",
                                                    "model.layers.0.mlp.gate_proj.weight",
                                                    "model.layers.0.mlp.up_proj.weight",
                                                    "model.norm.weight"});
    // The model's own order (the expected file's), as save_pretrained would see it.
    xg::StateDict model;
    for (const auto& [key, t] : expected) {
        if (key.starts_with("mlp.")) continue;  // the MLP's input and output
        REQUIRE(loaded.contains(key));
        CHECK(loaded.at(key).dtype() == xg::kBFloat16);
        CHECK(test::identical(loaded.at(key).to(xg::kFloat32), t));
        model.insert_or_assign(key, loaded.at(key));
    }
    CHECK(model.size() == loaded.size());
    // Split again at the generator's limit: the same shards, the same index to the byte.
    fs::path again = scratch("bf16");
    xg::save_sharded(model, again.string(), 800);
    CHECK(files_in(again) == files_in(dir));
    CHECK(test::read_bytes(again / kIndex) == test::read_bytes(dir / kIndex));
    for (const std::string& shard : {kShard1, kShard2}) {
        const std::vector<std::string> ours = xg::load((again / shard).string()).keys();
        const std::vector<std::string> theirs = xg::load((dir / shard).string()).keys();
        CHECK(std::set<std::string>(ours.begin(), ours.end()) ==
              std::set<std::string>(theirs.begin(), theirs.end()));
    }
}

}  // namespace core_serialize_test_sharded
