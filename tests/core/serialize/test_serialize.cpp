// xg::save / xg::load: safetensors round trips, interop with Python and
// PyTorch files (fixtures made by gen_fixtures.py), atomic writes, and a
// reader that turns every corruption into an xg::Error.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_serialize {

namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(XGRAD_SOURCE_DIR) / "tests/core/serialize";

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() /
                   ("xgrad-serialize-tests" + std::string("-") + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class T>
bool same(const xg::Tensor& a, const xg::Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() && a.data<T>() == b.data<T>();
}

// A safetensors file from a literal header and data section.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i)
        out[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + data;
}

void check_load_fails(const std::string& bytes, const std::string& expected_part) {
    fs::path path = scratch("corrupt.safetensors");
    write_bytes(path, bytes);
    try {
        xg::load(path.string());
        FAIL("expected xg::Error containing: " << expected_part);
    } catch (const xg::Error& e) {
        CHECK_MESSAGE(std::string(e.what()).find(expected_part) != std::string::npos, e.what());
        CHECK(std::string(e.what()).find(path.string()) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("save/load round-trips every dtype, ranks 0 to 4 and empty tensors, in key order") {
    xg::manual_seed(3);
    xg::StateDict sd;
    sd.insert_or_assign("z.rank4", xg::randn({2, 1, 3, 2}, xg::kFloat64));
    sd.insert_or_assign("a.scalar", xg::full({}, 1.5, xg::kFloat32));
    sd.insert_or_assign("m.matrix", xg::randn({3, 4}));
    sd.insert_or_assign("ids", xg::randint(-5, 5, {7}));
    sd.insert_or_assign("empty", xg::zeros({0, 3}));
    sd.insert_or_assign("cube", xg::rand({2, 2, 2}, xg::kFloat64));
    fs::path path = scratch("round_trip.safetensors");
    xg::save(sd, path.string(), {{"step", "12"}});
    xg::StateDict back = xg::load(path.string());
    CHECK(back.keys() == sd.keys());
    CHECK(same<double>(back.at("z.rank4"), sd.at("z.rank4")));
    CHECK(same<float>(back.at("a.scalar"), sd.at("a.scalar")));
    CHECK(same<float>(back.at("m.matrix"), sd.at("m.matrix")));
    CHECK(same<std::int64_t>(back.at("ids"), sd.at("ids")));
    CHECK(back.at("empty").shape() == xg::Shape{0, 3});
    CHECK(same<double>(back.at("cube"), sd.at("cube")));
    CHECK(xg::load_metadata(path.string()) == std::map<std::string, std::string>{{"step", "12"}});
}

TEST_CASE("a safetensors file written by Python from the spec loads with its values and order") {
    xg::StateDict sd = xg::load((kFixtures / "python_written.safetensors").string());
    CHECK(sd.keys() == std::vector<std::string>{"zeta", "alpha", "ids", "scalar", "nothing"});
    CHECK(sd.at("zeta").data<float>() ==
          xt::xarray<float>({{0.f, 0.25f, 0.5f}, {0.75f, 1.f, 1.25f}}));
    CHECK(sd.at("alpha").data<double>() == xt::xarray<double>({{1.5, -2.25}}));
    CHECK(sd.at("ids").data<std::int64_t>() == xt::xarray<std::int64_t>({3, -1, 7}));
    CHECK(sd.at("scalar").dim() == 0);
    CHECK(sd.at("scalar").item<float>() == 0.5f);
    CHECK(sd.at("nothing").shape() == xg::Shape{0, 4});
}

TEST_CASE("a file xgrad writes is read by Python with json and numpy alone") {
    xg::StateDict sd;
    sd.insert_or_assign("a", xg::tensor(xt::xarray<float>({{0.f, 0.5f, 1.f}, {1.5f, 2.f, 2.5f}})));
    sd.insert_or_assign("b", xg::full({}, -1.25, xg::kFloat64));
    sd.insert_or_assign("c", xg::tensor(xt::xarray<std::int64_t>({0, -1, 2, -3})));
    sd.insert_or_assign("e", xg::zeros({0, 2}));
    fs::path path = scratch("for_python.safetensors");
    xg::save(sd, path.string(), {{"producer", "xgrad"}});
    std::string command =
        "/usr/bin/python3 " + (kFixtures / "check_written.py").string() + " " + path.string();
    CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE("torch.save of a PyTorch FeedForward loads strictly and computes PyTorch's output") {
    xg::StateDict sd = xg::load((kFixtures / "feed_forward.pt").string());
    CHECK(sd.keys() == std::vector<std::string>{"layer1.weight", "layer1.bias", "layer2.weight",
                                                "layer2.bias", "linear_v.weight"});
    auto ffn = std::make_shared<xg::nn::FeedForward>(4, 8, 0.0, std::make_shared<xg::nn::SiLU>(),
                                                     true, true, true, false);
    ffn->load_state_dict(sd);
    ffn->eval();
    xg::StateDict io = xg::load((kFixtures / "feed_forward_io.safetensors").string());
    xg::Tensor y = (*ffn)(io.at("input"));
    CHECK(xt::allclose(y.data<float>(), io.at("output").data<float>(), 1e-5, 1e-6));
}

TEST_CASE("save is atomic: a failed save leaves the old file intact and no temporary behind") {
    fs::path path = scratch("atomic.safetensors");
    xg::StateDict good{{"w", xg::ones({2})}};
    xg::save(good, path.string());
    std::string before = test::read_bytes(path);
    xg::StateDict bad{{"w", xg::ones({3})}, {"undefined", xg::Tensor()}};
    CHECK_THROWS_WITH_AS(xg::save(bad, path.string()), "save: tensor 'undefined' is undefined",
                         xg::Error);
    CHECK(test::read_bytes(path) == before);
    CHECK_THROWS_AS(xg::save(good, (scratch("no-such-dir") / "x" / "y.safetensors").string()),
                    xg::Error);
    for (const auto& entry : fs::directory_iterator(path.parent_path())) {
        CHECK_MESSAGE(entry.path().string().find(".tmp.") == std::string::npos, entry.path());
    }
}

TEST_CASE("the reader turns each kind of corruption into an xg::Error naming the problem") {
    std::string data(16, '\0');
    auto entry = [](const std::string& dtype, const std::string& shape,
                    const std::string& offsets) {
        return "\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets;
    };
    check_load_fails(std::string(5, '\0'), "expected at least 8 bytes");
    check_load_fails(safetensors_bytes("{}", "").substr(0, 8) + "{", "runs past the end");
    check_load_fails(safetensors_bytes("{\"a\":", data), "not valid JSON");
    check_load_fails(safetensors_bytes("{\"a\":{" + entry("F8_E4M3", "[2]", "[0,2]") + "}}", data),
                     "unsupported dtype 'F8_E4M3' (expected one of F32, F64, I64, BOOL, F16, BF16");
    check_load_fails(safetensors_bytes("{\"a\":{" + entry("F32", "[3]", "[0,8]") + "}}", data),
                     "needs 12 bytes (got 8)");
    check_load_fails(safetensors_bytes("{\"a\":{" + entry("F32", "[2]", "[12,20]") + "}}", data),
                     "outside the 16 data bytes");
    check_load_fails(safetensors_bytes("{\"a\":{" + entry("F32", "[2]", "[0,8]") + "},\"b\":{" +
                                           entry("F32", "[2]", "[4,12]") + "}}",
                                       data),
                     "overlap");
    check_load_fails(
        safetensors_bytes("{\"a\":{" + entry("F64", "[4294967296,4294967296]", "[0,8]") + "}}",
                          data),
        "overflows");
    check_load_fails(safetensors_bytes("{\"a\":{" + entry("F32", "[2]", "[0,8]") + "},\"a\":{" +
                                           entry("F32", "[2]", "[8,16]") + "}}",
                                       data),
                     "duplicate key 'a'");
    check_load_fails(safetensors_bytes("{\"a\":{" + entry("F32", "[-2]", "[0,8]") + "}}", data),
                     "negative or non-integer");
    check_load_fails(safetensors_bytes("{\"a\":{\"dtype\":\"F32\"}}", data),
                     "needs dtype, shape and data_offsets");
    check_load_fails(safetensors_bytes("[1, 2]", data), "expected the header to be a JSON object");
}

TEST_CASE("every safetensors dimension fits int64 and counts cannot overflow, even times zero") {
    auto entry = [](const std::string& shape) {
        return safetensors_bytes(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[0,0]}}", "");
    };
    check_load_fails(entry("[18446744073709551615,0]"),
                     "tensor 'a' has a dimension of 18446744073709551615 (expected at most "
                     "9223372036854775807)");
    check_load_fails(entry("[0,9223372036854775808]"),
                     "tensor 'a' has a dimension of 9223372036854775808 (expected at most "
                     "9223372036854775807)");
    check_load_fails(entry("[4611686018427387904,0,4]"),
                     "tensor 'a' of shape [4611686018427387904, 0, 4] has a size that overflows");
    check_load_fails(entry("[0,2305843009213693952]"),  // 2^61 elements of 4 bytes: 2^63 bytes
                     "tensor 'a' of shape [0, 2305843009213693952] has a size that overflows");
    fs::path path = scratch("zero_dims.safetensors");
    write_bytes(path, entry("[0,1152921504606846975]"));  // 2^60 - 1 elements of 4 bytes fit
    CHECK(xg::load(path.string()).at("a").shape() == xg::Shape{0, 1152921504606846975});
}

TEST_CASE("safetensors tensors must tile the data section: no gap, no trailing bytes") {
    auto header = [](const std::string& a, const std::string& b) {
        return "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + a +
               "},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" + b + "}}";
    };
    std::string data(12, '\0');
    check_load_fails(safetensors_bytes(header("[0,8]", "[8,12]"), data + "xy"),
                     "expected the tensors to end at the end of the 14 data bytes (got 2 bytes "
                     "after the last tensor)");
    check_load_fails(safetensors_bytes(header("[0,8]", "[10,14]"), data + "xy"),
                     "expected tensor 'b' to start at data byte 8, where the one before it ends "
                     "(got 10)");
    check_load_fails(safetensors_bytes(header("[4,12]", "[0,4]"), data + "xy"),
                     "expected the tensors to end at the end of the 14 data bytes");
    check_load_fails(safetensors_bytes("{}", "x"),
                     "expected the tensors to end at the end of the 1 data bytes (got 1 bytes "
                     "after the last tensor)");
    // In any order, with empty tensors anywhere, tensors that tile the data load.
    fs::path path = scratch("tiled.safetensors");
    write_bytes(path, safetensors_bytes(header("[4,12]", "[0,4]"), data));
    CHECK(xg::load(path.string()).keys() == std::vector<std::string>{"a", "b"});
    std::string with_empty = "{\"e\":{\"dtype\":\"F64\",\"shape\":[0],\"data_offsets\":[4,4]}," +
                             header("[4,12]", "[0,4]").substr(1);
    write_bytes(path, safetensors_bytes(with_empty, data));
    CHECK(xg::load(path.string()).keys() == std::vector<std::string>{"e", "a", "b"});
}

TEST_CASE("random truncations always fail cleanly and random bit flips never crash") {
    xg::StateDict sd{
        {"w", xg::randn({4, 3})}, {"b", xg::randn({3}, xg::kFloat64)}, {"i", xg::arange(5)}};
    fs::path path = scratch("fuzz.safetensors");
    xg::save(sd, path.string());
    std::string valid = test::read_bytes(path);
    std::mt19937 rng(11);
    for (std::size_t cut = 0; cut < valid.size(); cut += 1 + rng() % 7) {
        fs::path truncated = scratch("truncated.safetensors");
        write_bytes(truncated, valid.substr(0, cut));
        CHECK_THROWS_AS(xg::load(truncated.string()), xg::Error);
    }
    for (int trial = 0; trial < 300; ++trial) {
        std::string flipped = valid;
        flipped[rng() % flipped.size()] ^= static_cast<char>(1u << (rng() % 8));
        fs::path damaged = scratch("flipped.safetensors");
        write_bytes(damaged, flipped);
        try {
            xg::load(damaged.string());  // a flip inside tensor data is still a valid file
        } catch (const xg::Error&) {
        }
    }
}

TEST_CASE("the .pt reader refuses pickles that reach for anything but tensors") {
    // A zip whose data.pkl imports os.system: must be refused, never executed.
    fs::path path = scratch("evil.pt");
    std::string command = "cd " + scratch("").string() +
                          " && /usr/bin/python3 -c \"import pickle, zipfile, os\n"
                          "class E:\n def __reduce__(self): return (os.system, ('true',))\n"
                          "z = zipfile.ZipFile('evil.pt', 'w'); z.writestr('archive/data.pkl', "
                          "pickle.dumps(E(), protocol=2)); z.close()\"";
    REQUIRE(std::system(command.c_str()) == 0);
    CHECK_THROWS_WITH_AS(xg::load(path.string()),
                         doctest::Contains("refusing pickle global 'posix.system'"), xg::Error);
}

}  // namespace core_serialize_test_serialize
