// Safetensors files of every dtype (F32 F64 I64 BOOL F16 BF16 I32 I16 I8 U8):
// bit-exact round trips of edge values; the header's dtype codes; files written
// by hand from PyTorch tensors, with the data 8-byte aligned or not
// (reference/gen_safetensors_dtypes.py); PyTorch reading what xg::save writes
// (check_safetensors_with_torch.py); the mapped file and bytes in memory
// loading alike; and corrupt files of the new dtypes refused with clear errors.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

namespace xg {
// load() on bytes in memory (core/src/safetensors.cpp); not part of the public API.
StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes);
}  // namespace xg

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_safetensors_dtypes {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

const fs::path kSerialize = fs::path(XGRAD_SOURCE_DIR) / "tests/core/serialize";
const fs::path kReference = kSerialize / "reference";

fs::path scratch(const std::string& name) {
    fs::path dir =
        fs::temp_directory_path() / ("xgrad-safetensors-dtypes-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    return dir / name;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<char> as_vector(const std::string& bytes) { return {bytes.begin(), bytes.end()}; }

constexpr std::uint64_t twos(std::int64_t value) { return static_cast<std::uint64_t>(value); }
constexpr std::int64_t kMin64 = std::numeric_limits<std::int64_t>::min();

// gen_safetensors_dtypes.py's values: per dtype its safetensors code and 12 bit
// patterns (NaNs with payloads, signalling ones, infinities, subnormals, -0,
// integer extremes), each stored in its low bytes.
struct Specials {
    xg::Dtype dtype;
    const char* code;
    std::uint64_t bits[12];
};
const Specials kSpecials[] = {
    {xg::kFloat32,
     "F32",
     {0x7FC00000, 0xFFC12345, 0x7F800001, 0x7FBFFFFF, 0x7F800000, 0xFF800000, 0x00000001,
      0x807FFFFF, 0x80000000, 0x7F7FFFFF, 0x00800000, 0x3F800001}},
    {xg::kFloat64,
     "F64",
     {0x7FF8000000000000, 0xFFF8DEADBEEF0001, 0x7FF0000000000001, 0x7FF7FFFFFFFFFFFF,
      0x7FF0000000000000, 0xFFF0000000000000, 0x0000000000000001, 0x800FFFFFFFFFFFFF,
      0x8000000000000000, 0x7FEFFFFFFFFFFFFF, 0x0010000000000000, 0x3FF0000000000001}},
    {xg::kInt64,
     "I64",
     {twos(kMin64), twos(-(kMin64 + 1)), 0, twos(-1), 1, (1ULL << 53) + 1, twos(-(1LL << 53) - 1),
      1ULL << 32, twos(-(1LL << 31)), (1ULL << 31) - 1, 255, twos(-7)}},
    {xg::kBool, "BOOL", {1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1}},
    {xg::kFloat16,
     "F16",
     {0x7E00, 0xFE5A, 0x7C01, 0x7DFF, 0x7C00, 0xFC00, 0x0001, 0x83FF, 0x8000, 0x7BFF, 0x0400,
      0x3C01}},
    {xg::kBFloat16,
     "BF16",
     {0x7FC0, 0xFFA5, 0x7F81, 0x7FBF, 0x7F80, 0xFF80, 0x0001, 0x807F, 0x8000, 0x7F7F, 0x0080,
      0x3F81}},
    {xg::kInt32,
     "I32",
     {twos(-(1LL << 31)), (1ULL << 31) - 1, 0, twos(-1), 1, (1 << 24) + 1, twos(-(1 << 24) - 1),
      65536, twos(-65537), 255, 256, twos(-128)}},
    {xg::kInt16,
     "I16",
     {twos(-(1 << 15)), (1 << 15) - 1, 0, twos(-1), 1, 255, 256, twos(-256), 16384, twos(-129), 128,
      1000}},
    {xg::kInt8,
     "I8",
     {twos(-128), 127, 0, twos(-1), 1, 64, twos(-64), 100, twos(-100), 2, twos(-2), 7}},
    {xg::kUInt8, "U8", {0, 255, 1, 128, 127, 254, 2, 64, 16, 200, 100, 7}},
};
constexpr int kScalarIndex = 1;  // the 0-d tensor holds the dtype's second value

const char* code_of(xg::Dtype dtype) {
    for (const Specials& s : kSpecials) {
        if (s.dtype == dtype) return s.code;
    }
    FAIL("no safetensors code for " << xg::dtype_name(dtype));
    return "";
}

// A tensor's values as raw bytes (an empty tensor may have no data pointer).
std::string bytes_of(const xg::Tensor& t) {
    if (t.numel() == 0) return "";
    return {static_cast<const char*>(t.data_ptr()), t.nbytes()};
}

// Hex, so that a failed check prints readable bytes.
std::string hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) out += {digits[c >> 4], digits[c & 15]};
    return out;
}

xg::Tensor from_bytes(xg::Dtype dtype, const xg::Shape& shape, const std::string& raw) {
    xg::Tensor t = xg::empty(shape, dtype);
    REQUIRE(t.nbytes() == raw.size());
    if (!raw.empty()) std::copy(raw.begin(), raw.end(), static_cast<char*>(t.data_ptr()));
    return t;
}

// The specials at `indices` of dtype s, little-endian, back to back.
std::string special_bytes(const Specials& s, const std::vector<int>& indices) {
    const std::size_t size = xg::element_size(s.dtype);
    std::string out;
    for (int i : indices) {
        for (std::size_t b = 0; b < size; ++b) out += static_cast<char>(s.bits[i] >> (8 * b));
    }
    return out;
}

// gen_safetensors_dtypes.py's tensors(): per dtype its specials as [3, 4], a 0-d
// one and an empty [0, 3] one; then "odd", a uint8 [3].
xg::StateDict every_dtype() {
    xg::StateDict sd;
    for (const Specials& s : kSpecials) {
        const std::string name = xg::dtype_name(s.dtype);
        sd.insert_or_assign(
            name,
            from_bytes(s.dtype, {3, 4}, special_bytes(s, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})));
        sd.insert_or_assign(name + ".scalar",
                            from_bytes(s.dtype, {}, special_bytes(s, {kScalarIndex})));
        sd.insert_or_assign(name + ".empty", xg::empty({0, 3}, s.dtype));
    }
    sd.insert_or_assign("odd", from_bytes(xg::kUInt8, {3}, std::string("\xa5\x00\xff", 3)));
    return sd;
}

// A safetensors file's JSON header and where its data section starts.
struct Header {
    Json json;
    std::uint64_t data_start = 0;
};

Header header_of(const std::string& file) {
    REQUIRE(file.size() >= 8);
    std::uint64_t size = 0;
    for (int i = 7; i >= 0; --i) size = size << 8 | static_cast<unsigned char>(file[i]);
    REQUIRE(size <= file.size() - 8);
    return {Json::parse(file.substr(8, size)), 8 + size};
}

// A file from a header and its data; `pad` spaces the header to a multiple of 8
// bytes as xg::save does, otherwise it is made odd, so the data start at an odd byte.
std::string safetensors_file(const Json& header, const std::string& data, bool pad = true) {
    std::string text = header.dump();
    if (pad) {
        text.append((8 - text.size() % 8) % 8, ' ');
    } else if (text.size() % 2 == 0) {
        text += ' ';
    }
    std::string out;
    for (int i = 0; i < 8; ++i) out += static_cast<char>(text.size() >> (8 * i));
    return out + text + data;
}

// A one-tensor file whose header says `code`, `shape` and `nbytes` bytes, all present.
std::string one_tensor_file(const std::string& code, const Json& shape, std::size_t nbytes,
                            const std::string& key = "x", char fill = '\0') {
    Json header = {{key, {{"dtype", code}, {"shape", shape}, {"data_offsets", {0, nbytes}}}}};
    return safetensors_file(header, std::string(nbytes, fill));
}

// check_safetensors_with_torch.py on two files; its output says what failed,
// and that PyTorch is missing when it is.
void check_with_torch(const fs::path& safetensors, const fs::path& pt) {
    const std::string command = "/usr/bin/python3 " +
                                (kSerialize / "check_safetensors_with_torch.py").string() + " " +
                                safetensors.string() + " " + pt.string();
    const test::CommandResult result = test::run_command(command);
    CHECK_MESSAGE(result.status == 0, command << "\n" << result.output);
}

}  // namespace

TEST_CASE("safetensors: every dtype round-trips bit for bit, NaN payloads, 0-d and empty too") {
    const xg::StateDict sd = every_dtype();
    const fs::path path = scratch("every_dtype.safetensors");
    xg::save(sd, path.string(), {{"format", "pt"}});
    test::check_same_bits(xg::load(path.string()), sd);
    CHECK(xg::load_metadata(path.string()) == std::map<std::string, std::string>{{"format", "pt"}});
    // Each dtype alone too, its data right after the header.
    for (const Specials& s : kSpecials) {
        const xg::StateDict one{{"t", sd.at(xg::dtype_name(s.dtype))}};
        xg::save(one, path.string());
        test::check_same_bits(xg::load(path.string()), one);
    }
}

TEST_CASE("safetensors: xg::save names each dtype by its safetensors code and tiles the data") {
    const xg::StateDict sd = every_dtype();
    const fs::path path = scratch("codes.safetensors");
    xg::save(sd, path.string(), {{"format", "pt"}});
    const std::string file = test::read_bytes(path);
    const Header header = header_of(file);
    CHECK(header.data_start % 8 == 0);
    std::string data;
    for (const auto& [name, t] : sd) {
        const std::string& key = name;
        CAPTURE(key);
        const Json& entry = header.json.at(key);
        CHECK(entry.at("dtype").get<std::string>() == code_of(t.dtype()));
        CHECK(entry.at("shape").get<std::vector<std::size_t>>() == t.shape());
        CHECK(entry.at("data_offsets") == Json{data.size(), data.size() + t.nbytes()});
        data += bytes_of(t);
    }
    CHECK(hex(file.substr(header.data_start)) == hex(data));
    // The file the generator wrote by the published format from the same tensors:
    // the same compact header, padding and data, byte for byte.
    CHECK(file == test::read_bytes(kReference / "safetensors_dtypes.safetensors"));
}

TEST_CASE("safetensors: files written from PyTorch tensors load bit for bit, aligned or not") {
    const xg::StateDict expected = every_dtype();
    const xg::StateDict from_torch_save = xg::load((kReference / "safetensors_dtypes.pt").string());
    test::check_same_bits(from_torch_save, expected);
    for (const char* name :
         {"safetensors_dtypes.safetensors", "safetensors_dtypes_unaligned.safetensors"}) {
        CAPTURE(name);
        test::check_same_bits(xg::load((kReference / name).string()), expected);
    }
    // The unaligned file is what it says: its data start at an odd byte, and
    // after "odd" every tensor of 2 or more bytes an element starts at an odd offset.
    const Header unaligned =
        header_of(test::read_bytes(kReference / "safetensors_dtypes_unaligned.safetensors"));
    CHECK(unaligned.data_start % 2 == 1);
    CHECK(unaligned.json.at("odd").at("data_offsets") == Json{0, 3});
    for (const auto& [name, t] : expected) {
        if (xg::element_size(t.dtype()) == 1 || t.numel() == 0) continue;
        const std::string& key = name;
        CAPTURE(key);
        CHECK(unaligned.json.at(key).at("data_offsets")[0].get<std::uint64_t>() % 2 == 1);
    }
}

TEST_CASE("safetensors: PyTorch reads what xg::save writes, bit for bit, in every dtype") {
    const xg::StateDict sd = every_dtype();
    const fs::path safetensors = scratch("for_torch.safetensors"), pt = scratch("for_torch.pt");
    xg::save(sd, safetensors.string());
    xg::save(sd, pt.string());
    // Against the tensors torch.save wrote (no writer of ours involved), then
    // against xg::save's own .pt.
    check_with_torch(safetensors, kReference / "safetensors_dtypes.pt");
    check_with_torch(safetensors, pt);
}

TEST_CASE("safetensors: bytes in memory load as the mapped file does, at odd offsets too") {
    // Beside the small files, one of several pages whose tensors start at odd
    // offsets, so that the pages released after each copy cut through tensors.
    std::mt19937 engine(7);
    auto random_bytes = [&](std::size_t n, bool bools) {
        std::string out(n, '\0');
        for (char& c : out) c = static_cast<char>(bools ? engine() % 2 : engine() % 256);
        return out;
    };
    xg::StateDict big;
    big.insert_or_assign("odd", from_bytes(xg::kUInt8, {3}, "\x01\x02\x03"));
    for (const Specials& s : kSpecials) {
        const std::size_t n = 4099;
        const std::string raw = random_bytes(n * xg::element_size(s.dtype), s.dtype == xg::kBool);
        big.insert_or_assign(xg::dtype_name(s.dtype), from_bytes(s.dtype, {n}, raw));
    }
    Json header = Json::object();
    std::string data;
    for (const auto& [key, t] : big) {
        header[key] = {{"dtype", code_of(t.dtype())},
                       {"shape", t.shape()},
                       {"data_offsets", {data.size(), data.size() + t.nbytes()}}};
        data += bytes_of(t);
    }
    const fs::path big_path = scratch("big_unaligned.safetensors");
    write_bytes(big_path, safetensors_file(header, data, false));
    const fs::path written = scratch("written.safetensors");
    xg::save(every_dtype(), written.string());
    for (const fs::path& path :
         {kReference / "safetensors_dtypes.safetensors",
          kReference / "safetensors_dtypes_unaligned.safetensors", written, big_path}) {
        CAPTURE(path.string());
        const xg::StateDict mapped = xg::load(path.string());
        test::check_same_bits(xg::load_from_bytes(path.string(), as_vector(test::read_bytes(path))),
                              mapped);
        test::check_same_bits(mapped, path == big_path ? big : every_dtype());
    }
}

TEST_CASE("safetensors: a BOOL byte other than 0 or 1 is refused, naming the tensor") {
    // In memory, after a tensor of another dtype: the element is counted in the mask.
    Json header = {
        {"flags", {{"dtype", "U8"}, {"shape", Json::array({2})}, {"data_offsets", {0, 2}}}},
        {"mask", {{"dtype", "BOOL"}, {"shape", Json::array({4})}, {"data_offsets", {2, 6}}}}};
    const std::string file = safetensors_file(header, std::string("\x07\x09\x01\x00\x02\x01", 6));
    CHECK_THROWS_WITH_AS(xg::load_from_bytes("mask.safetensors", as_vector(file)),
                         "load: 'mask.safetensors': tensor 'mask' of dtype BOOL has byte 2 at "
                         "element 2 (expected 0 or 1)",
                         xg::Error);
    // From a mapped file.
    const fs::path path = scratch("mask.safetensors");
    write_bytes(path, one_tensor_file("BOOL", Json::array({3}), 3, "all_set", '\xff'));
    const std::string expected = "load: '" + path.string() +
                                 "': tensor 'all_set' of dtype BOOL has byte 255 at element 0 "
                                 "(expected 0 or 1)";
    CHECK_THROWS_WITH_AS(xg::load(path.string()), expected.c_str(), xg::Error);
}

TEST_CASE("safetensors: an unknown dtype code is refused, listing the codes xgrad reads") {
    for (const char* code : {"F8_E4M3", "F8_E5M2", "U16", "U32", "U64", "C64", "f16", "bool", ""}) {
        CAPTURE(code);
        const std::string expected =
            "load: 'codes.safetensors': tensor 'x' has unsupported dtype '" + std::string(code) +
            "' (expected one of F32, F64, I64, BOOL, F16, BF16, I32, I16, I8, U8)";
        CHECK_THROWS_WITH_AS(
            xg::load_from_bytes("codes.safetensors",
                                as_vector(one_tensor_file(code, Json::array({2}), 2))),
            expected.c_str(), xg::Error);
    }
}

TEST_CASE("safetensors: every dtype's byte count is checked, a byte short or a byte over") {
    for (const Specials& s : kSpecials) {
        const std::size_t needs = 3 * xg::element_size(s.dtype);
        for (std::size_t got : {needs - 1, needs + 1}) {
            CAPTURE(s.code);
            CAPTURE(got);
            const std::string expected =
                std::string("load: 'count.safetensors': tensor 'x' of shape [3] and dtype ") +
                s.code + " needs " + std::to_string(needs) + " bytes (got " + std::to_string(got) +
                ")";
            CHECK_THROWS_WITH_AS(
                xg::load_from_bytes("count.safetensors",
                                    as_vector(one_tensor_file(s.code, Json::array({3}), got))),
                expected.c_str(), xg::Error);
        }
    }
}

TEST_CASE("safetensors: a file of each new dtype cut short anywhere fails cleanly, naming it") {
    const xg::StateDict sd = every_dtype();
    const fs::path full = scratch("whole.safetensors"), cut = scratch("cut.safetensors");
    for (xg::Dtype dtype :
         {xg::kBool, xg::kFloat16, xg::kBFloat16, xg::kInt32, xg::kInt16, xg::kInt8, xg::kUInt8}) {
        const std::string name = xg::dtype_name(dtype);
        CAPTURE(name);
        xg::save(xg::StateDict{{name, sd.at(name)}, {"scalar", sd.at(name + ".scalar")}},
                 full.string());
        const std::string file = test::read_bytes(full);
        for (std::size_t n = 0; n < file.size(); ++n) {
            CAPTURE(n);
            const std::string prefix = file.substr(0, n);
            CHECK_THROWS_AS(xg::load_from_bytes("cut.safetensors", as_vector(prefix)), xg::Error);
            write_bytes(cut, prefix);
            CHECK_THROWS_WITH_AS(xg::load(cut.string()), doctest::Contains(cut.string().c_str()),
                                 xg::Error);
        }
    }
}

}  // namespace core_serialize_test_safetensors_dtypes
