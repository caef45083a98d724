// Hugging Face sharded checkpoints: a folder of safetensors shards and
// "model.safetensors.index.json", whose "weight_map" names the shard of each
// key. Written as huggingface_hub splits a state dict and transformers'
// save_pretrained lays out the files, so that either side reads what the other
// writes. Loading reads one shard at a time: it holds the tensors it keeps and
// at most one shard's others.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "atomic_file.hpp"
#include "serialize_io.hpp"
#include "xgrad/serialize.hpp"

namespace xg {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// ---- reading ----

struct Index {
    std::string path;
    fs::path folder;
    std::vector<std::pair<std::string, std::string>> weight_map;  // key -> shard, in file order
};

// A shard is a file beside the index: a name that could reach elsewhere
// ("../x", "/etc/x") or name an index again (loading it would recurse) is refused.
void check_shard_name(const std::string& index, const std::string& key, const std::string& shard) {
    const bool escapes = shard.empty() ||
                         shard.find_first_of(std::string("/\\\0", 3)) != std::string::npos ||
                         shard.find("..") != std::string::npos;
    check(!escapes,
          "load: '{}': key '{}' names shard '{}' (expected a file name in the index's folder, "
          "without '/', '\\' or '..')",
          index, key, shard);
    check(!shard.ends_with(".index.json"),
          "load: '{}': key '{}' names shard '{}' (expected a safetensors or torch file, not an "
          "index)",
          index, key, shard);
}

// What a JSON file that is not an index holds instead, for messages.
std::string not_an_index(const nlohmann::ordered_json& json) {
    if (!json.is_object()) return fmt::format("a JSON {}", json.type_name());
    if (!json.contains("weight_map")) return "no \"weight_map\"";
    return fmt::format("a \"weight_map\" that is a JSON {}", json.at("weight_map").type_name());
}

Index parse_index(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    check(in.good(), "load: cannot open '{}' ({})", path, std::strerror(errno));
    nlohmann::ordered_json json;
    try {
        json = nlohmann::ordered_json::parse(in);
    } catch (const nlohmann::ordered_json::exception& e) {
        fail("load: '{}': the index is not valid JSON ({})", path, e.what());
    }
    if (!json.is_object() || !json.contains("weight_map") || !json["weight_map"].is_object()) {
        fail(
            "load: '{}': expected an index, a JSON object whose \"weight_map\" maps each key "
            "to its shard file (got {})",
            path, not_an_index(json));
    }
    Index index{path, fs::path(path).parent_path(), {}};
    for (const auto& [key, shard] : json["weight_map"].items()) {
        if (!shard.is_string()) {
            fail("load: '{}': expected the shard of key '{}' to be a file name (got {})", path, key,
                 shard.dump());
        }
        index.weight_map.emplace_back(key, shard.get<std::string>());
        check_shard_name(path, key, index.weight_map.back().second);
    }
    return index;
}

// Reads `shard` (named first for `first_key`) and keeps in `tensors` the keys
// the weight map gives it. A key the map gives another shard is taken from
// there; a key the map does not name at all is an error, as it would
// otherwise vanish silently.
void load_shard(const Index& index, const std::string& shard, const std::string& first_key,
                const std::unordered_map<std::string, const std::string*>& shard_of,
                std::unordered_map<std::string, Tensor>& tensors) {
    const fs::path file = index.folder / shard;
    std::error_code error;
    check(fs::is_regular_file(file, error),
          "load: '{}': shard '{}' of key '{}' is missing (expected the file '{}')", index.path,
          shard, first_key, file.string());
    StateDict loaded;
    try {
        loaded = load(file.string());
    } catch (const Error& e) {
        fail("load: '{}': cannot read shard '{}' ({})", index.path, shard, e.what());
    }
    for (const auto& [key, t] : loaded) {
        auto it = shard_of.find(key);
        check(it != shard_of.end(),
              "load: '{}': shard '{}' holds key '{}', which the weight_map does not name",
              index.path, shard, key);
        if (*it->second == shard) tensors.emplace(key, t);
    }
}

StateDict load_index(const std::string& path) {
    const Index index = parse_index(path);
    std::unordered_map<std::string, const std::string*> shard_of;
    std::vector<std::pair<std::string, std::string>> shards;  // shard, its first key
    std::set<std::string> seen;
    for (const auto& [key, shard] : index.weight_map) {
        shard_of.emplace(key, &shard);
        if (seen.insert(shard).second) shards.emplace_back(shard, key);
    }
    std::unordered_map<std::string, Tensor> tensors;
    for (const auto& [shard, first_key] : shards)
        load_shard(index, shard, first_key, shard_of, tensors);
    StateDict out;
    for (const auto& [key, shard] : index.weight_map) {
        auto it = tensors.find(key);
        check(it != tensors.end(), "load: '{}': key '{}' is missing from its shard '{}'", path, key,
              shard);
        out.insert_or_assign(key, std::move(it->second));
    }
    return out;
}

// "a.txt, b.bin" for messages: what a folder holds instead of a checkpoint.
std::string folder_contents(const fs::path& folder) {
    std::vector<std::string> names;
    std::error_code error;
    for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error))
        names.push_back(it->path().filename().string());
    if (names.empty()) return "an empty folder";
    std::sort(names.begin(), names.end());
    constexpr std::size_t kShown = 8;
    std::string out = "a folder holding ";
    for (std::size_t i = 0; i < std::min(names.size(), kShown); ++i)
        out += (i ? ", " : "") + names[i];
    if (names.size() > kShown) out += fmt::format(" and {} more", names.size() - kShown);
    return out;
}

// ---- writing ----

// huggingface_hub's split: greedy in key order, a new shard when the next
// tensor would take the current one past the limit. A tensor larger than the
// limit gets a shard of its own, placed where it comes, while the current
// shard stays open for the keys after it (as huggingface_hub numbers them).
std::vector<StateDict> plan_shards(const StateDict& state_dict, std::uint64_t max_bytes,
                                   std::uint64_t& total_bytes) {
    std::vector<StateDict> shards;
    StateDict current;
    std::uint64_t current_bytes = 0;
    for (const auto& [key, t] : state_dict) {
        check(t.defined(), "save_sharded: tensor '{}' is undefined", key);
        const std::uint64_t bytes = t.numel() * element_size(t.dtype());
        total_bytes += bytes;
        if (bytes > max_bytes) {
            shards.push_back(StateDict{{key, t}});
            continue;
        }
        if (current_bytes + bytes > max_bytes) {
            shards.push_back(std::exchange(current, StateDict()));
            current_bytes = 0;
        }
        current.insert_or_assign(key, t);
        current_bytes += bytes;
    }
    if (!current.empty() || shards.empty()) shards.push_back(std::move(current));
    return shards;
}

// As transformers writes it: keys sorted at every level, two-space indent,
// ASCII only, a final newline.
void write_index(const fs::path& path, std::uint64_t total_bytes,
                 std::vector<std::pair<std::string, std::string>> weight_map) {
    // ordered_json keeps insertion order, so the keys go in sorted (the one
    // JSON type the library instantiates: each costs seconds of compile time).
    std::sort(weight_map.begin(), weight_map.end());
    nlohmann::ordered_json index;
    index["metadata"]["total_size"] = total_bytes;
    index["weight_map"] = nlohmann::ordered_json::object();
    for (const auto& [key, shard] : weight_map) index["weight_map"][key] = shard;
    const std::string text = index.dump(2, ' ', true) + "\n";
    detail::write_atomically(path.string(), "save_sharded", [&](std::FILE* file) {
        return std::fwrite(text.data(), 1, text.size(), file) == text.size();
    });
}

// Once the new checkpoint is complete: the files of an older save in `folder`
// that it does not name. Both layouts never stay side by side, since readers
// disagree on which wins (transformers takes model.safetensors, xgrad the
// index). Best effort: a file left behind is one no index names.
// "model-<5 or more digits>-of-<5 or more digits>.safetensors", as huggingface_hub names shards.
bool is_shard_name(std::string_view name) {
    auto digits = [&](std::size_t at) {
        std::size_t end = at;
        while (end < name.size() && name[end] >= '0' && name[end] <= '9') ++end;
        return end - at >= 5 ? end : std::string_view::npos;
    };
    if (!name.starts_with("model-")) return false;
    const std::size_t first = digits(6);
    if (first == std::string_view::npos || name.substr(first, 4) != "-of-") return false;
    const std::size_t second = digits(first + 4);
    return second != std::string_view::npos && name.substr(second) == ".safetensors";
}

void remove_stale_files(const fs::path& folder, const std::set<std::string>& shards) {
    std::error_code error;
    fs::remove(folder / (shards.empty() ? kIndexName : kSingleName), error);
    std::vector<fs::path> stale;
    for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
        const std::string name = it->path().filename().string();
        if (is_shard_name(name) && shards.count(name) == 0) stale.push_back(it->path());
    }
    for (const fs::path& path : stale) fs::remove(path, error);
}

}  // namespace

bool is_sharded_path(const std::string& path) {
    std::error_code error;
    return fs::is_directory(path, error) || path.ends_with(".index.json");
}

StateDict load_sharded(const std::string& path) {
    std::error_code error;
    if (!fs::is_directory(path, error)) return load_index(path);
    const fs::path folder(path);
    if (fs::is_regular_file(folder / kIndexName, error))
        return load_index((folder / kIndexName).string());
    if (fs::is_regular_file(folder / kSingleName, error))
        return load((folder / kSingleName).string());
    fail("load: '{}': expected a folder holding '{}' or '{}' (got {})", path, kIndexName,
         kSingleName, folder_contents(folder));
}

// Shards first, the index last, stale files after that: a reader sees the old
// checkpoint or the new one. (Not quite when a shard's name repeats from the
// old save: it is replaced, atomically, before the new index is in place.)
void save_sharded(const StateDict& state_dict, const std::string& dir,
                  std::uint64_t max_shard_bytes) {
    std::uint64_t total_bytes = 0;
    const std::vector<StateDict> shards = plan_shards(state_dict, max_shard_bytes, total_bytes);
    const fs::path folder(dir);
    std::error_code error, ignored;
    fs::create_directories(folder, error);
    if (!fs::is_directory(folder, ignored)) {
        fail("save_sharded: cannot create the folder '{}' ({})", dir,
             error ? error.message() : "a file of that name exists");
    }
    // What save_pretrained writes into every shard; transformers checks that a
    // file with metadata names a framework it knows.
    const std::map<std::string, std::string> metadata{{"format", "pt"}};
    if (shards.size() == 1) {
        save(shards.front(), (folder / kSingleName).string(), metadata);
        remove_stale_files(folder, {});
        return;
    }
    std::set<std::string> names;
    std::vector<std::pair<std::string, std::string>> weight_map;
    for (std::size_t i = 0; i < shards.size(); ++i) {
        const std::string name =
            fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
        save(shards[i], (folder / name).string(), metadata);
        names.insert(name);
        for (const auto& entry : shards[i]) weight_map.emplace_back(entry.first, name);
    }
    write_index(folder / kIndexName, total_bytes, weight_map);
    remove_stale_files(folder, names);
}

}  // namespace xg
