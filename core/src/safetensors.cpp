// safetensors: an 8-byte little-endian header length, a JSON header mapping
// each name to {dtype, shape, data_offsets}, then the raw little-endian data.
// The reader trusts nothing in the file: every size and offset is checked
// before a byte of tensor data is touched.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "internal.hpp"
#include "xgrad/serialize.hpp"

namespace xg {

StateDict load_torch_zip(const std::string& path, const std::vector<char>& bytes);  // torch_zip.cpp
// load() on bytes already in memory; `path` only names them in errors. fuzz/ calls it.
StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes);

namespace {

using Json = nlohmann::ordered_json;

const char* dtype_code(Dtype dtype) {
    switch (dtype) {
        case Dtype::Float32: return "F32";
        case Dtype::Float64: return "F64";
        case Dtype::Int64: return "I64";
    }
    return "?";
}

std::size_t item_size(Dtype dtype) { return dtype == Dtype::Float32 ? 4 : 8; }

std::vector<char> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    check(in.good(), "load: cannot open '{}'", path);
    std::streamsize size = in.tellg();
    in.seekg(0);
    std::vector<char> bytes(static_cast<std::size_t>(size));
    check(in.read(bytes.data(), size).good() || size == 0, "load: cannot read '{}'", path);
    return bytes;
}

// a * b, or an error when it overflows.
std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const std::string& path,
                          const std::string& key) {
    check(b == 0 || a <= std::numeric_limits<std::uint64_t>::max() / b,
          "load: '{}': tensor '{}' has a size that overflows", path, key);
    return a * b;
}

struct Parsed {
    Json header;
    std::size_t data_start = 0;
};

Parsed parse_header(const std::string& path, const std::vector<char>& bytes) {
    check(bytes.size() >= 8, "load: '{}': expected at least 8 bytes for the header length (got {})",
          path, bytes.size());
    std::uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i)
        header_size = (header_size << 8) | static_cast<unsigned char>(bytes[i]);
    check(header_size <= bytes.size() - 8,
          "load: '{}': header length {} runs past the end of the file ({} bytes)", path,
          header_size, bytes.size());
    std::set<std::string> seen;
    bool duplicate = false;
    std::string duplicate_key;
    // Catch duplicate top-level keys, which a JSON object would silently merge.
    auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
        if (event == Json::parse_event_t::key && depth == 1) {
            std::string key = parsed.get<std::string>();
            if (!seen.insert(key).second) duplicate = true, duplicate_key = key;
        }
        return true;
    };
    Parsed out;
    const char* begin = bytes.data() + 8;
    try {
        out.header = Json::parse(begin, begin + header_size, on_event);
    } catch (const Json::exception& e) {
        throw Error(fmt::format("load: '{}': the header is not valid JSON ({})", path, e.what()));
    }
    check(!duplicate, "load: '{}': duplicate key '{}' in the header", path, duplicate_key);
    check(out.header.is_object(), "load: '{}': expected the header to be a JSON object", path);
    out.data_start = 8 + header_size;
    return out;
}

StateDict load_safetensors(const std::string& path, const std::vector<char>& bytes) {
    Parsed parsed = parse_header(path, bytes);
    std::uint64_t data_size = bytes.size() - parsed.data_start;
    StateDict out;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    for (const auto& [key, entry] : parsed.header.items()) {
        if (key == "__metadata__") continue;
        check(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
                  entry.contains("data_offsets"),
              "load: '{}': tensor '{}' needs dtype, shape and data_offsets", path, key);
        check(entry["dtype"].is_string(), "load: '{}': tensor '{}' has a non-string dtype", path,
              key);
        std::string code = entry["dtype"].get<std::string>();
        Dtype dtype;
        if (code == "F32")
            dtype = kFloat32;
        else if (code == "F64")
            dtype = kFloat64;
        else if (code == "I64")
            dtype = kInt64;
        else
            throw Error(fmt::format(
                "load: '{}': tensor '{}' has unsupported dtype '{}' (expected F32, F64 or I64)",
                path, key, code));
        const Json& shape_json = entry["shape"];
        check(shape_json.is_array(), "load: '{}': tensor '{}' has a non-array shape", path, key);
        Shape shape;
        std::uint64_t numel = 1;
        for (const Json& d : shape_json) {
            check(d.is_number_unsigned(),
                  "load: '{}': tensor '{}' has a negative or non-integer dimension", path, key);
            shape.push_back(d.get<std::size_t>());
            numel = checked_mul(numel, d.get<std::uint64_t>(), path, key);
        }
        const Json& offsets = entry["data_offsets"];
        check(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                  offsets[1].is_number_unsigned(),
              "load: '{}': tensor '{}' needs data_offsets [begin, end]", path, key);
        std::uint64_t begin = offsets[0].get<std::uint64_t>(),
                      end = offsets[1].get<std::uint64_t>();
        check(begin <= end && end <= data_size,
              "load: '{}': tensor '{}' has data_offsets [{}, {}] outside the {} data bytes", path,
              key, begin, end, data_size);
        std::uint64_t nbytes = checked_mul(numel, item_size(dtype), path, key);
        check(end - begin == nbytes,
              "load: '{}': tensor '{}' of shape {} and dtype {} needs {} bytes (got {})", path, key,
              shape_str(shape), code, nbytes, end - begin);
        ranges.emplace_back(begin, end);
        const char* src = bytes.data() + parsed.data_start + begin;
        Tensor t = empty(shape, dtype);
        if (nbytes > 0)  // an empty tensor's data() may be null, which memcpy must not see
            std::visit([&](auto& a) { std::memcpy(a.data(), src, nbytes); }, *t.impl()->storage);
        out.insert_or_assign(key, t);
    }
    std::sort(ranges.begin(), ranges.end());
    for (std::size_t i = 1; i < ranges.size(); ++i) {
        check(ranges[i].first >= ranges[i - 1].second || ranges[i].first == ranges[i].second,
              "load: '{}': tensors overlap in the data section (bytes {} to {})", path,
              ranges[i].first, ranges[i - 1].second);
    }
    return out;
}

}  // namespace

void save(const StateDict& state_dict, const std::string& path,
          const std::map<std::string, std::string>& metadata) {
    Json header = Json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (const auto& [key, t] : state_dict) {
        check(t.defined(), "save: tensor '{}' is undefined", key);
        check(key != "__metadata__", "save: '__metadata__' is reserved by safetensors");
        std::uint64_t nbytes = t.numel() * item_size(t.dtype());
        header[key] = {{"dtype", dtype_code(t.dtype())},
                       {"shape", t.shape()},
                       {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
    std::string temp = path + ".tmp.XXXXXX";
    int fd = mkstemp(temp.data());
    check(fd >= 0, "save: cannot create a temporary file next to '{}' ({})", path,
          std::strerror(errno));
    FILE* file = fdopen(fd, "wb");
    bool ok = file != nullptr;
    auto write = [&](const void* data, std::size_t n) {
        ok = ok && (n == 0 || std::fwrite(data, 1, n, file) == n);
    };
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
    write(length, 8);
    write(text.data(), text.size());
    for (const auto& [key, t] : state_dict) {
        std::visit([&](const auto& a) { write(a.data(), a.size() * sizeof(*a.data())); },
                   *t.impl()->storage);
    }
    ok = ok && std::fflush(file) == 0 && fsync(fileno(file)) == 0;
    ok = (file ? std::fclose(file) == 0 : (close(fd), false)) && ok;
    if (!ok || std::rename(temp.c_str(), path.c_str()) != 0) {
        int error = errno;
        std::remove(temp.c_str());
        throw Error(fmt::format("save: cannot write '{}' ({}); the old file is unchanged", path,
                                std::strerror(error)));
    }
}

StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes) {
    if (bytes.size() >= 4 && std::memcmp(bytes.data(), "PK\x03\x04", 4) == 0) {
        return load_torch_zip(path, bytes);
    }
    return load_safetensors(path, bytes);
}

StateDict load(const std::string& path) { return load_from_bytes(path, read_file(path)); }

std::map<std::string, std::string> load_metadata(const std::string& path) {
    std::vector<char> bytes = read_file(path);
    Parsed parsed = parse_header(path, bytes);
    std::map<std::string, std::string> out;
    if (parsed.header.contains("__metadata__")) {
        for (const auto& [key, value] : parsed.header["__metadata__"].items()) {
            check(value.is_string(), "load: '{}': metadata '{}' is not a string", path, key);
            out[key] = value.get<std::string>();
        }
    }
    return out;
}

}  // namespace xg
