// Replays every input in tests/fuzz/regressions/<target>/ and tests/fuzz/corpus/<target>/
// through the bodies the fuzzers run (tests/fuzz/harness.hpp): each must load or throw
// xg::Error, never crash, leak or trip a sanitizer (the sanitizer build runs this
// too). Plus the seeds are valid files, and one crasher too big to commit.
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "fuzz/harness.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_fuzz_regressions {

namespace {

namespace fs = std::filesystem;

const fs::path kFuzz = fs::path(XGRAD_SOURCE_DIR) / "tests" / "fuzz";

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file under tests/fuzz/<folder>/<target>/, through `body`.
int replay(const std::string& folder, const std::string& target,
           void (*body)(const std::uint8_t*, std::size_t)) {
    int count = 0;
    fs::path dir = kFuzz / folder / target;
    if (!fs::exists(dir)) return 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::vector<std::uint8_t> bytes = read_bytes(entry.path());
        CAPTURE(entry.path().string());
        CHECK_NOTHROW(body(bytes.data(), bytes.size()));
        ++count;
    }
    return count;
}

}  // namespace

TEST_CASE("fuzz regressions and seeds load or throw xg::Error, never crash") {
    int total = 0;
    for (const char* folder : {"regressions", "corpus"}) {
        total += replay(folder, "safetensors", fuzz::safetensors);
        total += replay(folder, "torch_pt", fuzz::torch_pt);
        total += replay(folder, "load_state_dict", fuzz::load_state_dict);
        total += replay(folder, "sharded_index", fuzz::sharded_index);
    }
    CHECK(total >= 45);  // the committed seeds and regressions are 49 files
}

TEST_CASE("the fuzz seeds are valid files, so fuzzing starts deep in the readers") {
    for (const auto& entry : fs::directory_iterator(kFuzz / "corpus" / "safetensors")) {
        std::vector<std::uint8_t> bytes = read_bytes(entry.path());
        CAPTURE(entry.path().string());
        CHECK_NOTHROW(xg::load_from_bytes("seed", {bytes.begin(), bytes.end()}));
    }
    for (const auto& entry : fs::directory_iterator(kFuzz / "corpus" / "torch_pt")) {
        std::vector<std::uint8_t> bytes = read_bytes(entry.path());
        if (entry.path().filename().string().ends_with("_file")) {  // first byte 0: a whole file
            CAPTURE(entry.path().string());
            CHECK_NOTHROW(xg::load_from_bytes("seed", {bytes.begin() + 1, bytes.end()}));
        }
    }
    xg::StateDict mixed = xg::load_from_bytes("seed", [] {
        auto bytes = read_bytes(kFuzz / "corpus" / "torch_pt" / "mixed_p4_file");
        return std::vector<char>(bytes.begin() + 1, bytes.end());
    }());
    CHECK(mixed.keys() ==
          std::vector<std::string>{"weight", "weight_t", "tail", "double", "index", "scalar"});
    CHECK(mixed.at("weight_t").data<float>() == xt::xarray<float>{{0, 3}, {1, 4}, {2, 5}});
    CHECK(mixed.at("index").data<std::int64_t>() == xt::xarray<std::int64_t>{-8, 9});
}

TEST_CASE("a pickle nested a million deep is freed without recursion") {
    // TUPLE1 wraps the top of the stack once per byte; destroying the result
    // recursively would overflow the stack.
    std::vector<std::uint8_t> pickle{1, 0x80, 0x02, ')'};
    pickle.insert(pickle.end(), 1'000'000, 0x85);
    pickle.push_back('.');
    CHECK_NOTHROW(fuzz::torch_pt(pickle.data(), pickle.size()));
}

TEST_CASE("reader errors say what was wrong") {
    auto run = [](const char* name) {
        auto bytes = read_bytes(kFuzz / "regressions" / "torch_pt" / name);
        return xg::load_from_bytes("x.pt", {bytes.begin() + 1, bytes.end()});
    };
    CHECK_THROWS_WITH_AS(run("negative_stride"), "load: 'x.pt': tensor 't' has a negative stride",
                         xg::Error);
    CHECK_THROWS_WITH_AS(run("stride_overflow"),
                         "load: 'x.pt': tensor 't' has a size or stride that overflows", xg::Error);
    // A stride-0 view of 2^30 elements from a 6-element storage: valid, but
    // xgrad copies views, and 4 GiB from a 600-byte file is a bomb.
    CHECK_THROWS_WITH_AS(run("more_elements_than_storage"),
                         doctest::Contains("load: 'x.pt': tensor 't' of shape [1073741824] takes "
                                           "the tensors to 4294967296 bytes (expected at most "),
                         xg::Error);
    CHECK_THROWS_WITH_AS(
        run("zip_size_claims_4g"),
        doctest::Contains("load: 'x.pt': zip entry 'archive/data.pkl' claims 4294967280 bytes"),
        xg::Error);
}

}  // namespace core_serialize_test_fuzz_regressions
