// xg::save to a .pt (core/src/torch_write.cpp) and torch.save files of every
// dtype: bit-exact round trips through xgrad's reader; the bytes torch.save
// writes (reference/torch_dtypes.pt, from reference/gen_torch_dtypes.py);
// PyTorch 1.13 itself reading what xgrad writes (check_pt_with_torch.py); the
// zip's layout, zip64 fields included; and files torch.save wrote, views and
// the legacy format included, loading with their dtypes and bits.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "torch_write.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_torch_write {

namespace fs = std::filesystem;

namespace {

const fs::path kSerialize = fs::path(XGRAD_SOURCE_DIR) / "tests/core/serialize";
const fs::path kReference = kSerialize / "reference";

fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / ("xgrad-torch-write-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

constexpr std::uint64_t bits(std::int64_t value) { return static_cast<std::uint64_t>(value); }
constexpr std::int64_t kMin64 = std::numeric_limits<std::int64_t>::min();

// gen_torch_dtypes.py's values: per dtype 12 bit patterns (NaNs with payloads,
// infinities, subnormals, integer extremes), each stored in its low bytes.
struct Specials {
    xg::Dtype dtype;
    std::uint64_t bits[12];
};
const Specials kSpecials[] = {
    {xg::kFloat32,
     {0x7FC00000, 0xFFC00001, 0x7FA00000, 0x7F800000, 0xFF800000, 0x00000001, 0x807FFFFF,
      0x7F7FFFFF, 0xFF7FFFFF, 0x80000000, 0x3FC00000, 0x00800000}},
    {xg::kFloat64,
     {0x7FF8000000000000, 0xFFF8000000000001, 0x7FF4000000000000, 0x7FF0000000000000,
      0xFFF0000000000000, 0x0000000000000001, 0x800FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF,
      0xFFEFFFFFFFFFFFFF, 0x8000000000000000, 0x3FF8000000000000, 0x0010000000000000}},
    {xg::kInt64,
     {bits(kMin64), bits(-(kMin64 + 1)), 0, bits(-1), 1, 1ULL << 31, bits(-(1LL << 31) - 1),
      1ULL << 32, bits(-(1LL << 40)), 255, 256, bits(-7)}},
    {xg::kBool, {1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1}},
    {xg::kFloat16,
     {0x7E00, 0xFE01, 0x7D00, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x7BFF, 0xFBFF, 0x8000, 0x3E00,
      0x0400}},
    {xg::kBFloat16,
     {0x7FC0, 0xFFC1, 0x7FA0, 0x7F80, 0xFF80, 0x0001, 0x807F, 0x7F7F, 0xFF7F, 0x8000, 0x3FC0,
      0x0080}},
    {xg::kInt32,
     {bits(-(1LL << 31)), (1ULL << 31) - 1, 0, bits(-1), 1, 1 << 15, bits(-(1 << 15) - 1), 65536,
      bits(-70000), 255, 256, bits(-7)}},
    {xg::kInt16,
     {bits(-(1 << 15)), (1 << 15) - 1, 0, bits(-1), 1, 128, bits(-129), 255, 256, bits(-300), 1000,
      bits(-7)}},
    {xg::kInt8,
     {bits(-128), 127, 0, bits(-1), 1, 2, bits(-2), 64, bits(-64), 100, bits(-100), bits(-7)}},
    {xg::kUInt8, {0, 255, 1, 128, 127, 2, 254, 64, 16, 100, 200, 7}},
};

// A tensor's values as raw bytes, through the public data<T>().
char* data_of(const xg::Tensor& t) {
    switch (t.dtype()) {
        case xg::kFloat32: return reinterpret_cast<char*>(t.data<float>().data());
        case xg::kFloat64: return reinterpret_cast<char*>(t.data<double>().data());
        case xg::kInt64: return reinterpret_cast<char*>(t.data<std::int64_t>().data());
        case xg::kBool: return reinterpret_cast<char*>(t.data<bool>().data());
        case xg::kFloat16: return reinterpret_cast<char*>(t.data<xg::Half>().data());
        case xg::kBFloat16: return reinterpret_cast<char*>(t.data<xg::BFloat16>().data());
        case xg::kInt32: return reinterpret_cast<char*>(t.data<std::int32_t>().data());
        case xg::kInt16: return reinterpret_cast<char*>(t.data<std::int16_t>().data());
        case xg::kInt8: return reinterpret_cast<char*>(t.data<std::int8_t>().data());
        case xg::kUInt8: return reinterpret_cast<char*>(t.data<std::uint8_t>().data());
    }
    return nullptr;
}

// Hex, so that a failed check prints readable bytes.
std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) out += {digits[c >> 4], digits[c & 15]};
    return out;
}

std::string hex_of(const xg::Tensor& t) {
    return t.numel() == 0 ? "" : hex({data_of(t), t.numel() * xg::element_size(t.dtype())});
}

// A tensor of `shape` whose elements are the specials at `index`, in order.
xg::Tensor specials(xg::Dtype dtype, const xg::Shape& shape, const std::vector<int>& index) {
    const Specials& s = *std::find_if(std::begin(kSpecials), std::end(kSpecials),
                                      [&](const Specials& x) { return x.dtype == dtype; });
    const std::size_t size = xg::element_size(dtype);
    xg::Tensor t = xg::empty(shape, dtype);
    REQUIRE(t.numel() == index.size());
    for (std::size_t i = 0; i < index.size(); ++i) {
        for (std::size_t b = 0; b < size; ++b)
            data_of(t)[i * size + b] = static_cast<char>(s.bits[index[i]] >> (8 * b));
    }
    return t;
}

// gen_torch_dtypes.py's plain(): per dtype its specials as [3, 4], a 0-d one
// and an empty [0, 3] one; then one float32 tensor under two keys.
xg::StateDict every_dtype() {
    xg::StateDict sd;
    for (const Specials& s : kSpecials) {
        const std::string name = xg::dtype_name(s.dtype);
        sd.insert_or_assign(name,
                            specials(s.dtype, {3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
        sd.insert_or_assign(name + ".scalar", specials(s.dtype, {}, {6}));
        sd.insert_or_assign(name + ".empty", xg::empty({0, 3}, s.dtype));
    }
    xg::Tensor tied = xg::tensor(xt::xarray<float>{{0, 1, 2}, {3, 4, 5}});
    sd.insert_or_assign("tied.weight", tied);
    sd.insert_or_assign("tied.head", tied);
    return sd;
}

std::uint64_t le(const std::string& bytes, std::uint64_t at, int n) {
    REQUIRE(at + n <= bytes.size());
    std::uint64_t v = 0;
    for (int i = n; i-- > 0;) v = v << 8 | static_cast<unsigned char>(bytes[at + i]);
    return v;
}

// Where two files first differ, or npos: a readable failure for files of kilobytes.
std::size_t first_difference(const std::string& a, const std::string& b) {
    const auto [at_a, at_b] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
    if (at_a == a.end() && at_b == b.end()) return std::string::npos;
    return static_cast<std::size_t>(at_a - a.begin());
}

// An entry of a zip, read from its central directory, zip64 fields resolved.
struct ZipEntry {
    std::string name;
    std::uint64_t size = 0, data = 0;  // data: where its bytes start
    bool zip64 = false;                // had a zip64 field
};

// Read through the zip64 end record, which xgrad (as PyTorch) always writes.
std::vector<ZipEntry> zip_entries(const std::string& zip) {
    const std::uint64_t end = zip.size() - 22, locator = end - 20;
    REQUIRE(le(zip, end, 4) == 0x06054b50);
    REQUIRE(le(zip, locator, 4) == 0x07064b50);
    const std::uint64_t end64 = le(zip, locator + 8, 8);
    REQUIRE(le(zip, end64, 4) == 0x06064b50);
    std::uint64_t at = le(zip, end64 + 48, 8);
    std::vector<ZipEntry> out(le(zip, end64 + 32, 8));
    for (ZipEntry& e : out) {
        REQUIRE(le(zip, at, 4) == 0x02014b50);
        std::uint64_t size = le(zip, at + 24, 4), header = le(zip, at + 42, 4);
        const std::uint64_t name_size = le(zip, at + 28, 2), extra_size = le(zip, at + 30, 2);
        e.name = zip.substr(at + 46, name_size);
        std::uint64_t field = at + 46 + name_size;
        e.zip64 = extra_size > 0;
        if (e.zip64) REQUIRE(le(zip, field, 2) == 1);  // the zip64 field's id
        field += 4;
        if (size == 0xFFFFFFFF) {
            size = le(zip, field, 8);
            field += 16;  // the size, then the compressed size
        }
        if (header == 0xFFFFFFFF) header = le(zip, field, 8);
        e.size = size;
        e.data = header + 30 + le(zip, header + 26, 2) + le(zip, header + 28, 2);
        at += 46 + name_size + extra_size + le(zip, at + 32, 2);
    }
    return out;
}

// The state dict as check_pt_with_torch.py's manifest (the keys here need no escaping).
std::string manifest(const xg::StateDict& sd) {
    std::string out = "{\"tensors\": [";
    std::vector<std::pair<std::string, xg::Tensor>> seen;
    for (const auto& [key, t] : sd) {
        std::string same_as = "null", shares = "null", shape;
        for (const auto& [k, u] : seen) {
            if (u.impl() == t.impl()) {
                same_as = "\"" + k + "\"";
                break;
            }
            if (t.numel() > 0 && data_of(u) == data_of(t)) {
                shares = "\"" + k + "\"";
                break;
            }
        }
        for (std::size_t d : t.shape()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
        out += std::string(seen.empty() ? "" : ", ") + "{\"key\": \"" + key + "\", \"dtype\": \"" +
               xg::dtype_name(t.dtype()) + "\", \"shape\": [" + shape + "], \"hex\": \"" +
               hex_of(t) + "\", \"same_as\": " + same_as + ", \"shares_storage_with\": " + shares +
               "}";
        seen.emplace_back(key, t);
    }
    return out + "]}";
}

// check_pt_with_torch.py on `file` written from `sd`; its output says what failed,
// and that PyTorch is missing when it is.
void check_with_python(const fs::path& file, const xg::StateDict& sd, const std::string& mode) {
    fs::path json = file;
    json += ".json";
    std::ofstream(json) << manifest(sd);
    const std::string command = "/usr/bin/python3 " +
                                (kSerialize / "check_pt_with_torch.py").string() + " " +
                                file.string() + " " + json.string() + " " + mode;
    const test::CommandResult result = test::run_command(command);
    CHECK_MESSAGE(result.status == 0, command << "\n" << result.output);
}

}  // namespace

TEST_CASE("every dtype round-trips bit for bit through a .pt, 0-d and empty tensors too") {
    const xg::StateDict sd = every_dtype();
    const std::string path = scratch("every_dtype.pt").string();
    xg::save(sd, path);
    const xg::StateDict loaded = xg::load(path);
    test::check_same_bits(loaded, sd);
    CHECK(loaded.at("tied.weight").impl() == loaded.at("tied.head").impl());
}

TEST_CASE("xg::save writes the bytes torch.save writes for the same tensors") {
    const std::string reference = test::read_bytes(kReference / "torch_dtypes.pt");
    const fs::path path = scratch("as_torch.pt");
    xg::save(every_dtype(), path.string());
    CHECK(first_difference(test::read_bytes(path), reference) == std::string::npos);
    // What xg::load makes of torch.save's file, saved again, is that file.
    xg::save(xg::load((kReference / "torch_dtypes.pt").string()), path.string());
    CHECK(first_difference(test::read_bytes(path), reference) == std::string::npos);
}

TEST_CASE("tensors sharing a storage are written once and load as one tensor") {
    xg::Tensor w = xg::tensor(xt::xarray<float>{{1, 2}, {3, 4}});
    xg::StateDict sd{{"a", w}, {"b", w}, {"c", w.detach()}, {"d", xg::ones({3})}};
    const fs::path path = scratch("tied.pt");
    xg::save(sd, path.string());
    std::vector<std::string> names;
    for (const ZipEntry& e : zip_entries(test::read_bytes(path))) names.push_back(e.name);
    CHECK(names == std::vector<std::string>{"archive/data.pkl", "archive/data/0", "archive/data/1",
                                            "archive/version"});
    const xg::StateDict loaded = xg::load(path.string());
    test::check_same_bits(loaded, sd);
    CHECK(loaded.at("a").impl() == loaded.at("b").impl());
    CHECK(loaded.at("a").impl() == loaded.at("c").impl());
    CHECK(loaded.at("a").impl() != loaded.at("d").impl());
}

TEST_CASE(
    "the zip: torch's entry order, storages in the string order of their keys, 64-byte aligned") {
    xg::StateDict sd;
    for (int i = 0; i < 12; ++i)  // keys in no sorted order, sizes 1 to 12 bytes
        sd.insert_or_assign("k" + std::to_string((i * 7) % 12),
                            xg::zeros({std::size_t(i + 1)}, xg::kUInt8));
    const fs::path path = scratch("layout.pt");
    xg::save(sd, path.string());
    const std::string zip = test::read_bytes(path);
    std::vector<std::string> names;
    for (const ZipEntry& e : zip_entries(zip)) {
        CAPTURE(e.name);
        names.push_back(e.name.substr(std::string("archive/").size()));
        CHECK(e.data % 64 == 0);
        CHECK(!e.zip64);
    }
    CHECK(names == std::vector<std::string>{"data.pkl", "data/0", "data/1", "data/10", "data/11",
                                            "data/2", "data/3", "data/4", "data/5", "data/6",
                                            "data/7", "data/8", "data/9", "version"});
    const ZipEntry version = zip_entries(zip).back();
    CHECK(zip.substr(version.data, version.size) == "3\n");
    CHECK(xg::load(path.string()).keys() == sd.keys());
    // An empty state dict: a pickle and a version, no storages.
    xg::save(xg::StateDict(), path.string());
    std::vector<std::string> empty_names;
    for (const ZipEntry& e : zip_entries(test::read_bytes(path))) empty_names.push_back(e.name);
    CHECK(empty_names == std::vector<std::string>{"archive/data.pkl", "archive/version"});
    CHECK(xg::load(path.string()).empty());
}

TEST_CASE("PyTorch 1.13 loads xg::save's .pt bit for bit, and torch.save writes the same bytes") {
    xg::StateDict sd = every_dtype();
    sd.insert_or_assign("tied.detached", sd.at("tied.weight").detach());
    // A stride past 2^31 (pickled as LONG1); over 256 memo entries and 1000
    // dict entries (LONG_BINPUT, SETITEMS batches).
    sd.insert_or_assign("wide.empty", xg::empty({0, 3'000'000'000}, xg::kFloat16));
    for (int i = 0; i < 1100; ++i)
        sd.insert_or_assign("many." + std::to_string(i), xg::full({1}, i, xg::kInt16));
    const fs::path path = scratch("for_torch.pt");
    xg::save(sd, path.string());
    check_with_python(path, sd, "--same-bytes-as-torch-save");
    test::check_same_bits(xg::load(path.string()), sd);
}

TEST_CASE("zip64 fields (from byte 64 on) are read back by xgrad and by Python's zipfile") {
    const xg::StateDict sd = every_dtype();
    const fs::path path = scratch("zip64.pt");
    xg::detail::save_torch(sd, path.string(), 64);
    const std::string zip = test::read_bytes(path);
    const std::vector<ZipEntry> entries = zip_entries(zip);
    for (const ZipEntry& e : entries) {
        CAPTURE(e.name);
        CHECK(e.data % 64 == 0);
        CHECK(e.zip64);  // data.pkl for its size, the others for their offsets
    }
    CHECK(le(zip, zip.size() - 6, 4) == 0xFFFFFFFF);  // the classic end record defers
    CHECK(zip.substr(entries.back().data, entries.back().size) == "3\n");
    test::check_same_bits(xg::load(path.string()), sd);
    // PyTorch's own reader (miniz) takes a 32-bit field of 0xFFFFFFFF for the
    // offset itself in a bounds check, so only files past 4 GiB reach it.
    check_with_python(path, sd, "--zip-only");
}

TEST_CASE("torch.save files of every dtype load bit for bit: zip, legacy and views") {
    const xg::StateDict expected = every_dtype();
    for (const char* name : {"torch_dtypes.pt", "torch_dtypes_legacy.pt"}) {
        CAPTURE(name);
        const xg::StateDict sd = xg::load((kReference / name).string());
        test::check_same_bits(sd, expected);
        CHECK(sd.at("tied.weight").impl() == sd.at("tied.head").impl());
    }
    // Views of the [3, 4] specials: the transpose, row 2 and column 1.
    xg::StateDict views;
    for (const Specials& s : kSpecials) {
        const std::string name = xg::dtype_name(s.dtype);
        views.insert_or_assign(name + ".t",
                               specials(s.dtype, {4, 3}, {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
        views.insert_or_assign(name + ".row", specials(s.dtype, {4}, {8, 9, 10, 11}));
        views.insert_or_assign(name + ".col", specials(s.dtype, {3}, {1, 5, 9}));
    }
    test::check_same_bits(xg::load((kReference / "torch_dtypes_views.pt").string()), views);
}

TEST_CASE("a .pt save refuses an undefined tensor before making a file") {
    const fs::path path = scratch("undefined.pt");
    xg::StateDict sd{{"w", xg::Tensor()}};
    CHECK_THROWS_WITH_AS(xg::save(sd, path.string()), "save: tensor 'w' is undefined", xg::Error);
    CHECK(!fs::exists(path));
}

TEST_CASE("a bool byte other than 0 or 1 in a .pt is refused, naming the tensor") {
    const fs::path good = scratch("mask.pt"), bad = scratch("bad_mask.pt");
    xg::StateDict sd{{"mask", xg::tensor(xt::xarray<bool>{true, false})}};
    xg::save(sd, good.string());
    // The same zip with the mask's bytes 01 02, written by Python's zipfile (CRCs right).
    const std::string command =
        "/usr/bin/python3 -c \"import sys, zipfile\n"
        "a = zipfile.ZipFile(sys.argv[1]); b = zipfile.ZipFile(sys.argv[2], 'w')\n"
        "for n in a.namelist(): b.writestr(n, b'\\x01\\x02' if n.endswith('data/0') else "
        "a.read(n))\n"
        "b.close()\" " +
        good.string() + " " + bad.string();
    REQUIRE(std::system(command.c_str()) == 0);
    CHECK_THROWS_WITH_AS(
        xg::load(bad.string()),
        ("load: '" + bad.string() +
         "': tensor 'mask' of dtype bool has byte 2 at element 1 (expected 0 or 1)")
            .c_str(),
        xg::Error);
}

}  // namespace core_serialize_test_torch_write
