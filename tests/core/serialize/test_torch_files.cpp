// xg::load on the files PyTorch users have (fixtures made by gen_fixtures.py with
// PyTorch 1.13): CRC-checked zip entries, tied weights, stride-0 views, the
// legacy (pre-1.6) format and training checkpoints read through LoadOptions.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_torch_files {

namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(XGRAD_SOURCE_DIR) / "tests/core/serialize";

std::string fixture(const std::string& name) { return (kFixtures / name).string(); }

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("xgrad-torch-files-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
    fs::path path = scratch(name);
    std::ofstream(path, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path.string();
}

// Where the data of zip entry `name` starts, from its local file header.
std::size_t entry_data(const std::string& zip, const std::string& name) {
    auto u16 = [&](std::size_t at) {
        return static_cast<std::size_t>(static_cast<unsigned char>(zip[at])) |
               static_cast<std::size_t>(static_cast<unsigned char>(zip[at + 1])) << 8;
    };
    for (std::size_t at = zip.find("PK\x03\x04"); at != std::string::npos;
         at = zip.find("PK\x03\x04", at + 4)) {
        std::size_t name_size = u16(at + 26), extra_size = u16(at + 28);
        if (zip.compare(at + 30, name_size, name) == 0) return at + 30 + name_size + extra_size;
    }
    FAIL("no zip entry " << name);
    return 0;
}

template <class T>
void check_same(const xg::StateDict& got, const xg::StateDict& expected, const std::string& key,
                const std::string& expected_key) {
    CAPTURE(key);
    REQUIRE(got.at(key).dtype() == expected.at(expected_key).dtype());
    CHECK(got.at(key).shape() == expected.at(expected_key).shape());
    CHECK(got.at(key).data<T>() == expected.at(expected_key).data<T>());
}

// What torch.load gives for views.pt and views_legacy.pt, key by key.
void check_views(const xg::StateDict& sd) {
    xg::StateDict expected = xg::load(fixture("torch_expected.safetensors"));
    CHECK(sd.keys() == std::vector<std::string>{"embed.weight", "head.weight", "head_t", "row",
                                                "expanded", "position_ids", "double", "scalar",
                                                "empty"});
    for (const char* key :
         {"embed.weight", "head.weight", "head_t", "row", "expanded", "scalar", "empty"}) {
        check_same<float>(sd, expected, key, key);
    }
    check_same<std::int64_t>(sd, expected, "position_ids", "position_ids");
    check_same<double>(sd, expected, "double", "double");
    CHECK(sd.at("expanded").data<float>() ==
          xt::xarray<float>{{0, 1, 2}, {0, 1, 2}, {0, 1, 2}, {0, 1, 2}});
    // Tied weights are one tensor, as torch.load keeps them one storage; other
    // views of that storage are tensors of their own.
    CHECK(sd.at("embed.weight").impl() == sd.at("head.weight").impl());
    CHECK(sd.at("head_t").impl() != sd.at("embed.weight").impl());
    CHECK(sd.at("row").impl() != sd.at("embed.weight").impl());
}

}  // namespace

TEST_CASE("a .pt with tied weights, a transpose, a row and stride-0 views loads as torch.load") {
    check_views(xg::load(fixture("views.pt")));
}

TEST_CASE("a legacy (pre-1.6) torch.save file loads like the zip format") {
    check_views(xg::load(fixture("views_legacy.pt")));
}

TEST_CASE("tied weights in a .pt load as one tensor, as torch.load keeps one storage") {
    xg::StateDict sd = xg::load(fixture("tied.pt"));
    xg::StateDict expected = xg::load(fixture("torch_expected.safetensors"));
    check_same<float>(sd, expected, "embed.weight", "embed.weight");
    CHECK(sd.at("embed.weight").impl() == sd.at("head.weight").impl());
}

TEST_CASE("a flipped bit in a stored tensor record fails the entry's CRC-32, naming it") {
    std::string bytes = test::read_bytes(fixture("feed_forward.pt"));
    std::string intact = write_bytes("intact.pt", bytes);
    CHECK_NOTHROW(xg::load(intact));
    bytes[entry_data(bytes, "feed_forward/data/0") + 5] ^= 0x10;
    std::string path = write_bytes("flipped.pt", bytes);
    CHECK_THROWS_WITH_AS(
        xg::load(path),
        ("load: '" + path +
         "': zip entry 'feed_forward/data/0' fails its CRC-32 check (the file is corrupted)")
            .c_str(),
        xg::Error);
}

TEST_CASE("a view past the end of its storage and a shape whose count overflows are refused") {
    std::string past_end = fixture("past_end.pt"), huge = fixture("huge_shape.pt");
    CHECK_THROWS_WITH_AS(
        xg::load(past_end),
        ("load: '" + past_end + "': tensor 't' reads past the end of its storage (6 elements)")
            .c_str(),
        xg::Error);
    CHECK_THROWS_WITH_AS(
        xg::load(huge),
        ("load: '" + huge + "': tensor 't' of shape [0, 4611686018427387904, 4] has a size that " +
         "overflows")
            .c_str(),
        xg::Error);
}

TEST_CASE("a training checkpoint loads its model through LoadOptions::key, in both formats") {
    xg::StateDict expected = xg::load(fixture("torch_expected.safetensors"));
    for (const char* name : {"checkpoint.pt", "checkpoint_legacy.pt"}) {
        std::string path = fixture(name);
        CAPTURE(path);
        xg::StateDict model = xg::load(path, {.key = "model"});
        CHECK(model.keys() == std::vector<std::string>{"weight", "bias"});
        check_same<float>(model, expected, "weight", "model.weight");
        check_same<float>(model, expected, "bias", "model.bias");
        std::string at = "load: '" + path + "': ";
        CHECK_THROWS_WITH_AS(
            xg::load(path),
            (at +
             "expected a tensor for entry 'model' (got a dict; pass .key = \"model\" to load it)")
                .c_str(),
            xg::Error);
        CHECK_THROWS_WITH_AS(
            xg::load(path, {.key = "optimizer"}),
            (at + "expected a tensor for entry 'state' in 'optimizer' (got a dict)").c_str(),
            xg::Error);
        CHECK_THROWS_WITH_AS(
            xg::load(path, {.key = "config"}),
            (at + "expected a tensor for entry 'lr' in 'config' (got a float)").c_str(), xg::Error);
        CHECK_THROWS_WITH_AS(
            xg::load(path, {.key = "epoch"}),
            (at + "expected entry 'epoch' to be a dict of tensors (got an int)").c_str(),
            xg::Error);
        CHECK_THROWS_WITH_AS(
            xg::load(path, {.key = "weights"}),
            (at + "expected an entry 'weights' (got model, optimizer, epoch, config)").c_str(),
            xg::Error);
    }
}

TEST_CASE("a safetensors file is flat: LoadOptions::key is refused") {
    std::string path = fixture("python_written.safetensors");
    CHECK_THROWS_WITH_AS(
        xg::load(path, {.key = "model"}),
        ("load: '" + path +
         "': expected no .key for a safetensors file, whose tensors are all at the "
         "top level (got .key = \"model\")")
            .c_str(),
        xg::Error);
}

TEST_CASE("a legacy file that is big-endian or cut short is refused clearly") {
    std::string bytes = test::read_bytes(fixture("views_legacy.pt"));
    std::size_t flag = bytes.find("little_endian");
    REQUIRE(flag != std::string::npos);
    std::size_t value = bytes.find('\x88', flag);  // NEWTRUE
    REQUIRE(value != std::string::npos);
    std::string big = bytes;
    big[value] = '\x89';  // NEWFALSE
    std::string path = write_bytes("big_endian.pt", big);
    CHECK_THROWS_WITH_AS(
        xg::load(path),
        ("load: '" + path + "': expected a little-endian file (got sys_info little_endian False)")
            .c_str(),
        xg::Error);
    // Every cut, in the pickles or in the storages after them, is an xg::Error.
    for (std::size_t cut = 16; cut < bytes.size(); cut += 7) {
        CAPTURE(cut);
        CHECK_THROWS_AS(xg::load(write_bytes("cut.pt", bytes.substr(0, cut))), xg::Error);
    }
    std::string cut = write_bytes("cut.pt", bytes.substr(0, bytes.size() - 1));
    CHECK_THROWS_WITH_AS(xg::load(cut), doctest::Contains("ends before"), xg::Error);
}

}  // namespace core_serialize_test_torch_files
