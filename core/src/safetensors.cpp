// safetensors: an 8-byte little-endian header length, a JSON header mapping
// each name to {dtype, shape, data_offsets}, then the raw little-endian data,
// which the tensors' byte ranges tile exactly: no gap, no overlap, nothing after.
// The reader trusts nothing in the file: every size and offset is checked
// before a byte of tensor data is allocated, then each tensor's bytes are read
// from the file straight into its storage.
//
// load() and load_from_bytes() also tell torch.save files apart by content
// (torch_zip.cpp reads them), and share one reader through ByteSource.
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "internal.hpp"
#include "serialize_io.hpp"
#include "xgrad/serialize.hpp"

namespace xg {

// load() on bytes already in memory; `path` only names them in errors. tests/fuzz/ calls it.
StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes);

namespace {

using Json = nlohmann::ordered_json;

const char* dtype_code(Dtype dtype) {
    switch (dtype) {
        case Dtype::Float32: return "F32";
        case Dtype::Float64: return "F64";
        case Dtype::Int64: return "I64";
        case Dtype::Bool: return "BOOL";
    }
    return "?";
}

std::size_t item_size(Dtype dtype) {
    return dtype == Dtype::Bool ? 1 : dtype == Dtype::Float32 ? 4 : 8;
}

struct Parsed {
    Json header;
    std::size_t data_start = 0;
};

Parsed parse_header(const ByteSource& source) {
    const std::string& path = source.path();
    check(source.size() >= 8,
          "load: '{}': expected at least 8 bytes for the header length (got {})", path,
          source.size());
    unsigned char length[8];
    source.read(0, length, 8, "the header length");
    std::uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | length[i];
    check(header_size <= source.size() - 8,
          "load: '{}': header length {} runs past the end of the file ({} bytes)", path,
          header_size, source.size());
    std::string text(static_cast<std::size_t>(header_size), '\0');
    source.read(8, text.data(), text.size(), "the end of the header");
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
    try {
        out.header = Json::parse(text, on_event);
    } catch (const Json::exception& e) {
        throw Error(fmt::format("load: '{}': the header is not valid JSON ({})", path, e.what()));
    }
    check(!duplicate, "load: '{}': duplicate key '{}' in the header", path, duplicate_key);
    check(out.header.is_object(), "load: '{}': expected the header to be a JSON object", path);
    out.data_start = 8 + header_size;
    return out;
}

// One tensor of the header, checked: where its bytes are in the data section.
struct Spec {
    std::string key;
    Dtype dtype = kFloat32;
    Shape shape;
    std::uint64_t begin = 0, end = 0;
};

Dtype parse_dtype(const std::string& path, const std::string& key, const Json& entry) {
    check(entry["dtype"].is_string(), "load: '{}': tensor '{}' has a non-string dtype", path, key);
    std::string code = entry["dtype"].get<std::string>();
    if (code == "F32") return kFloat32;
    if (code == "F64") return kFloat64;
    if (code == "I64") return kInt64;
    if (code == "BOOL") return kBool;
    fail("load: '{}': tensor '{}' has unsupported dtype '{}' (expected F32, F64, I64 or BOOL)",
         path, key, code);
}

Spec parse_spec(const std::string& path, const std::string& key, const Json& entry,
                std::uint64_t data_size) {
    check(entry.is_object() && entry.contains("dtype") && entry.contains("shape") &&
              entry.contains("data_offsets"),
          "load: '{}': tensor '{}' needs dtype, shape and data_offsets", path, key);
    Spec spec;
    spec.key = key;
    spec.dtype = parse_dtype(path, key, entry);
    const Json& shape_json = entry["shape"];
    check(shape_json.is_array(), "load: '{}': tensor '{}' has a non-array shape", path, key);
    std::vector<std::uint64_t> dims;
    for (const Json& d : shape_json) {
        check(d.is_number_unsigned(),
              "load: '{}': tensor '{}' has a negative or non-integer dimension", path, key);
        dims.push_back(d.get<std::uint64_t>());
    }
    std::uint64_t nbytes = checked_nbytes(path, key, dims, item_size(spec.dtype));
    spec.shape.assign(dims.begin(), dims.end());
    const Json& offsets = entry["data_offsets"];
    check(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
              offsets[1].is_number_unsigned(),
          "load: '{}': tensor '{}' needs data_offsets [begin, end]", path, key);
    spec.begin = offsets[0].get<std::uint64_t>();
    spec.end = offsets[1].get<std::uint64_t>();
    check(spec.begin <= spec.end && spec.end <= data_size,
          "load: '{}': tensor '{}' has data_offsets [{}, {}] outside the {} data bytes", path, key,
          spec.begin, spec.end, data_size);
    check(spec.end - spec.begin == nbytes,
          "load: '{}': tensor '{}' of shape {} and dtype {} needs {} bytes (got {})", path, key,
          shape_str(spec.shape), dtype_code(spec.dtype), nbytes, spec.end - spec.begin);
    return spec;
}

// The tensors' byte ranges, in order, must tile [0, data_size) as the format
// requires: a gap or trailing bytes would be data no tensor owns.
void check_tiling(const std::string& path, std::vector<const Spec*> specs,
                  std::uint64_t data_size) {
    std::sort(specs.begin(), specs.end(), [](const Spec* a, const Spec* b) {
        return std::tie(a->begin, a->end) < std::tie(b->begin, b->end);
    });
    std::uint64_t at = 0;
    for (const Spec* spec : specs) {
        check(spec->begin >= at, "load: '{}': tensors overlap in the data section (bytes {} to {})",
              path, spec->begin, at);
        check(spec->begin == at,
              "load: '{}': expected tensor '{}' to start at data byte {}, where the one before it "
              "ends (got {})",
              path, spec->key, at, spec->begin);
        at = spec->end;
    }
    check(at == data_size,
          "load: '{}': expected the tensors to end at the end of the {} data bytes (got {} bytes "
          "after the last tensor)",
          path, data_size, data_size - at);
}

StateDict load_safetensors(const ByteSource& source) {
    const std::string& path = source.path();
    Parsed parsed = parse_header(source);
    std::uint64_t data_size = source.size() - parsed.data_start;
    std::vector<Spec> specs;
    for (const auto& [key, entry] : parsed.header.items()) {
        if (key != "__metadata__") specs.push_back(parse_spec(path, key, entry, data_size));
    }
    std::vector<const Spec*> order;
    for (const Spec& spec : specs) order.push_back(&spec);
    check_tiling(path, order, data_size);
    StateDict out;
    for (const Spec& spec : specs) {
        Tensor t = empty(spec.shape, spec.dtype);
        std::visit(
            [&](auto& a) {
                source.read(parsed.data_start + spec.begin, a.data(), spec.end - spec.begin,
                            "the data of tensor '" + spec.key + "'");
            },
            *t.impl()->storage);
        out.insert_or_assign(spec.key, t);
    }
    return out;
}

StateDict load_source(const ByteSource& source, const LoadOptions& options) {
    char magic[4] = {};
    if (source.read_at(0, magic, 4) && std::memcmp(magic, "PK\x03\x04", 4) == 0) {
        return load_torch_zip(source, options);
    }
    if (is_torch_legacy(source)) return load_torch_legacy(source, options);
    check(options.key.empty(),
          "load: '{}': expected no .key for a safetensors file, whose tensors are all at the top "
          "level (got .key = \"{}\")",
          source.path(), options.key);
    return load_safetensors(source);
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
    return load_source(ByteSource(path, bytes.data(), bytes.size()), {});
}

StateDict load(const std::string& path, const LoadOptions& options) {
    return load_source(ByteSource(path), options);
}

std::map<std::string, std::string> load_metadata(const std::string& path) {
    ByteSource source(path);
    Parsed parsed = parse_header(source);
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
