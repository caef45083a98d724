// The bodies of the fuzz targets, shared by the libFuzzer entry points
// (tests/fuzz/fuzz_target.cpp) and by the regression test that replays every input in
// tests/fuzz/regressions/ (tests/core/serialize/test_fuzz_regressions.cpp).
//
// Each body feeds bytes to a loader and accepts two outcomes only: success or
// xg::Error. Anything else (another exception, a sanitizer report, a broken
// invariant, which aborts) is a bug.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <unistd.h>
#include <xgrad/xgrad.hpp>
#include <zip.h>

namespace xg {
// load() on bytes in memory (core/src/safetensors.cpp); not part of the public API.
StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes);
}  // namespace xg

namespace fuzz {

inline void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz: invariant broken: %s\n", what);
        std::abort();
    }
}

// Every loaded tensor must be whole: its storage holds exactly numel values.
inline void check_loaded(const xg::StateDict& state) {
    for (const auto& [key, t] : state) {
        require(t.defined(), "a loaded tensor is undefined");
        std::size_t numel = 1;
        for (std::size_t d : t.shape()) numel *= d;
        require(t.numel() == numel, "a loaded tensor's numel disagrees with its shape");
    }
}

// Target "safetensors": the input is a whole file (a zip goes to the .pt reader).
inline void safetensors(const std::uint8_t* data, std::size_t size) {
    try {
        check_loaded(xg::load_from_bytes("fuzz.safetensors", {data, data + size}));
    } catch (const xg::Error&) {
    }
}

// A stored (uncompressed) zip holding `files`, made with libzip in memory.
inline std::vector<char> make_zip(const std::vector<std::pair<std::string, std::string>>& files) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
    require(buffer != nullptr, "zip_source_buffer_create");
    zip_source_keep(buffer);
    zip_t* archive = zip_open_from_source(buffer, ZIP_TRUNCATE, &error);
    require(archive != nullptr, "zip_open_from_source");
    for (const auto& [name, bytes] : files) {
        zip_source_t* entry = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
        zip_int64_t index = zip_file_add(archive, name.c_str(), entry, ZIP_FL_OVERWRITE);
        require(index >= 0, "zip_file_add");
        zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
    }
    require(zip_close(archive) == 0, "zip_close");
    zip_error_fini(&error);
    std::vector<char> out;
    require(zip_source_open(buffer) == 0, "zip_source_open");
    char chunk[4096];
    for (zip_int64_t n; (n = zip_source_read(buffer, chunk, sizeof chunk)) > 0;) {
        out.insert(out.end(), chunk, chunk + n);
    }
    zip_source_close(buffer);
    zip_source_free(buffer);
    return out;
}

// Target "torch_pt": the first byte picks a mode. Even: the rest is a whole
// file, so libFuzzer can attack the zip layer. Odd: the rest is data.pkl,
// wrapped in a valid zip next to storages "0".."7" of 4096 bytes each, so
// mutations reach the unpickler and the tensor rebuild instead of failing a CRC.
inline void torch_pt(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return;
    std::vector<char> file;
    if (data[0] % 2 == 0) {
        file.assign(data + 1, data + size);
    } else {
        std::vector<std::pair<std::string, std::string>> files{
            {"archive/data.pkl", std::string(data + 1, data + size)}};
        for (int k = 0; k < 8; ++k) {
            std::string storage(4096, '\0');
            for (std::size_t i = 0; i < storage.size(); ++i)
                storage[i] = static_cast<char>((i * 7 + k) % 61);
            files.emplace_back("archive/data/" + std::to_string(k), storage);
        }
        file = make_zip(files);
    }
    try {
        check_loaded(xg::load_from_bytes("fuzz.pt", file));
    } catch (const xg::Error&) {
    }
}

// The fixed module tree the load_state_dict target loads into:
// 0.weight [6, 4], 0.bias [6], 1.weight [6], 1.bias [6], 2.layer1.{weight [12, 6], bias [12]},
// 2.layer2.{weight [6, 12], bias [6]}, 2.linear_v.weight [12, 6]: 222 floats, 888 bytes.
inline std::shared_ptr<xg::nn::Sequential> make_model() {
    xg::manual_seed(0);
    auto ffn = std::make_shared<xg::nn::FeedForward>(6, 12, 0.0, std::make_shared<xg::nn::SiLU>(),
                                                     true, true, true, false);
    return std::make_shared<xg::nn::Sequential>(
        std::initializer_list<std::shared_ptr<xg::nn::Module>>{
            std::make_shared<xg::nn::Linear>(4, 6),
            std::make_shared<xg::nn::LayerNorm>(xg::Shape{6}), ffn});
}

inline bool same_state(xg::nn::Module& model, const xg::StateDict& expected) {
    xg::StateDict now = model.state_dict();
    if (now.size() != expected.size()) return false;
    for (const auto& [key, t] : now) {
        if (!expected.contains(key) || t.data<float>() != expected.at(key).data<float>()) {
            return false;
        }
    }
    return true;
}

// The data section a safetensors header asks for: up to the largest end offset
// it names, at most 1024 bytes. Tensors must tile the data exactly, so fixed
// padding would make every header fail before it reaches load_state_dict.
inline std::size_t data_size_for(const std::uint8_t* data, std::size_t size) {
    std::uint64_t end = 0;
    auto header = nlohmann::json::parse(data, data + size, nullptr, false);
    if (!header.is_object()) return 1024;
    for (const auto& [key, entry] : header.items()) {
        if (!entry.is_object() || !entry.contains("data_offsets")) continue;
        const auto& offsets = entry["data_offsets"];
        if (offsets.is_array() && offsets.size() == 2 && offsets[1].is_number_unsigned())
            end = std::max(end, offsets[1].get<std::uint64_t>());
    }
    return static_cast<std::size_t>(std::min<std::uint64_t>(end, 1024));
}

// Target "load_state_dict": the input is a safetensors JSON header; the data
// section is up to 1024 fixed bytes, as many as the header asks for. Whatever loads is offered to
// load_state_dict in every (strict, assign) mode: it either succeeds, and the model still runs, or
// throws xg::Error and leaves the model exactly as it was.
inline void load_state_dict(const std::uint8_t* data, std::size_t size) {
    static auto model = make_model();
    static const xg::StateDict original = [] {
        xg::StateDict copy;
        for (const auto& [key, t] : model->state_dict()) copy.insert_or_assign(key, t.clone());
        return copy;
    }();
    std::vector<char> file;  // built by push_back: g++ 12 misreads an insert as an overflow
    const std::size_t data_size = data_size_for(data, size);
    file.reserve(8 + size + data_size);
    for (int i = 0; i < 8; ++i)
        file.push_back(static_cast<char>((std::uint64_t{size} >> (8 * i)) & 0xff));
    for (std::size_t i = 0; i < size; ++i) file.push_back(static_cast<char>(data[i]));
    for (std::size_t i = 0; i < data_size; ++i)
        file.push_back(static_cast<char>(i % 7 == 0 ? 0x3f : i % 13));
    xg::StateDict state;
    try {
        state = xg::load_from_bytes("fuzz.safetensors", file);
    } catch (const xg::Error&) {
        return;
    }
    check_loaded(state);
    for (bool strict : {true, false}) {
        for (bool assign : {false, true}) {
            try {
                model->load_state_dict(state, strict, assign);
            } catch (const xg::Error&) {
                require(same_state(*model, original), "a failed load_state_dict changed the model");
                continue;
            }
            xg::NoGradGuard no_grad;
            xg::Tensor out = (*model)(xg::ones({2, 4}));
            require(out.shape() == xg::Shape({2, 6}), "the loaded model's output shape changed");
            model->load_state_dict(original);  // back to the start for the next mode
            require(same_state(*model, original), "restoring the model failed");
        }
    }
}

// The folder the sharded_index target loads, made at its first input: this
// process's own, so fuzzers running side by side never share one. It holds the
// two shards whose keys the seeds in tests/fuzz/corpus/sharded_index/ name, and
// is removed when the process exits normally.
class ShardFolder {
public:
    ShardFolder()
        : path_(std::filesystem::temp_directory_path() /
                ("xgrad-fuzz-sharded-" + std::to_string(::getpid()))) {
        std::filesystem::create_directories(path_);
        const xg::StateDict first{{"a.weight", xg::full({2, 3}, -1.5, xg::kFloat16)},
                                  {"a.bias", xg::arange(-1, 2, 1, xg::kInt8)}};
        const xg::StateDict second{{"b.weight", xg::full({3}, 0.25, xg::kBFloat16)},
                                   {"b.mask", xg::ones({2}, xg::kBool)}};
        xg::save(first, (path_ / "model-00001-of-00002.safetensors").string());
        xg::save(second, (path_ / "model-00002-of-00002.safetensors").string());
    }
    ~ShardFolder() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    ShardFolder(const ShardFolder&) = delete;
    ShardFolder& operator=(const ShardFolder&) = delete;

    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// Target "sharded_index": the input is "model.safetensors.index.json", written
// beside the shards model-00001-of-00002.safetensors ("a.weight" float16 [2, 3],
// "a.bias" int8 [3]) and model-00002-of-00002.safetensors ("b.weight" bfloat16
// [3], "b.mask" bool [2]); then the folder is loaded, as xg::load(dir) loads a
// Hugging Face checkpoint.
inline void sharded_index(const std::uint8_t* data, std::size_t size) {
    static const ShardFolder folder;
    {
        std::ofstream out(folder.path() / "model.safetensors.index.json",
                          std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
        require(out.good(), "writing the index");
    }
    try {
        check_loaded(xg::load(folder.path().string()));
    } catch (const xg::Error&) {
    }
}

}  // namespace fuzz
