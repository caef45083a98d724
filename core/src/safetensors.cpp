// safetensors: an 8-byte little-endian header length, a JSON header mapping
// each name to {dtype, shape, data_offsets}, then the raw little-endian data,
// which the tensors' byte ranges tile exactly: no gap, no overlap, nothing after.
// The reader trusts nothing in the file: every size and offset is checked
// before a byte of tensor data is allocated, then each tensor's bytes are read
// from the file straight into its storage.
//
// load() and load_from_bytes() also tell torch.save files apart by content
// (torch_zip.cpp reads them), and share one reader through ByteSource.
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "atomic_file.hpp"
#include "internal.hpp"
#include "serialize_io.hpp"
#include "xgrad/serialize.hpp"

namespace xg {

// load() on bytes already in memory; `path` only names them in errors. tests/fuzz/ calls it.
StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes);

namespace {

using Json = nlohmann::ordered_json;

// safetensors' dtype codes, in Dtype's order.
constexpr std::array<const char*, kNumDtypes> kCodes = {"F32",  "F64", "I64", "BOOL", "F16",
                                                        "BF16", "I32", "I16", "I8",   "U8"};

const char* dtype_code(Dtype dtype) { return kCodes[static_cast<std::size_t>(dtype)]; }

std::size_t item_size(Dtype dtype) { return element_size(dtype); }

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
    auto known = std::find(kCodes.begin(), kCodes.end(), code);
    if (known != kCodes.end()) return static_cast<Dtype>(known - kCodes.begin());
    fail("load: '{}': tensor '{}' has unsupported dtype '{}' (expected one of {})", path, key, code,
         fmt::join(kCodes, ", "));
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
    if (spec.end - spec.begin != nbytes) {
        fail("load: '{}': tensor '{}' of shape {} and dtype {} needs {} bytes (got {})", path, key,
             shape_str(spec.shape), dtype_code(spec.dtype), nbytes, spec.end - spec.begin);
    }
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

// A bool is one byte, 0 or 1; any other byte is not a bool (and reading it as
// one would be undefined), so the file is corrupt.
void check_bools(const std::string& path, const std::string& key, const Tensor& t) {
    const auto* raw = reinterpret_cast<const unsigned char*>(t.data<bool>().data());
    const std::size_t n = t.numel();
    for (std::size_t i = 0; i < n; ++i) {
        check(raw[i] <= 1,
              "load: '{}': tensor '{}' of dtype BOOL has byte {} at element {} (expected 0 or 1)",
              path, key, raw[i], i);
    }
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
    const char* bytes = source.mapped();
    for (const Spec& spec : specs) {
        Tensor t = empty(spec.shape, spec.dtype);
        detail::visit_storage(t, [&](auto& a) {
            const std::uint64_t at = parsed.data_start + spec.begin, n = spec.end - spec.begin;
            if (bytes == nullptr) {
                source.read(at, a.data(), n, "the data of tensor '" + spec.key + "'");
            } else {
                if (n > 0)
                    std::memcpy(static_cast<void*>(a.data()), bytes + at,
                                n);  // an empty one has no data()
                source.release(at, n);
            }
        });
        if (spec.dtype == kBool) check_bools(path, spec.key, t);
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

namespace {

void save_safetensors(const StateDict& state_dict, const std::string& path,
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
    detail::write_atomically(path, "save", [&](std::FILE* file) {
        bool ok = true;
        auto write = [&](const void* data, std::size_t n) {
            ok = ok && (n == 0 || std::fwrite(data, 1, n, file) == n);
        };
        unsigned char length[8];
        for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
        write(length, 8);
        write(text.data(), text.size());
        for (const auto& [key, t] : state_dict) {
            detail::visit_storage(
                t, [&](const auto& a) { write(a.data(), a.size() * sizeof(*a.data())); });
        }
        return ok;
    });
}

bool torch_extension(const std::string& path) {
    const std::string extension = std::filesystem::path(path).extension().string();
    return extension == ".pt" || extension == ".pth" || extension == ".bin";
}

}  // namespace

void save(const StateDict& state_dict, const std::string& path, SaveFormat format,
          const std::map<std::string, std::string>& metadata) {
    if (format == SaveFormat::ByExtension)
        format = torch_extension(path) ? SaveFormat::Torch : SaveFormat::Safetensors;
    if (format == SaveFormat::Safetensors) return save_safetensors(state_dict, path, metadata);
    check(metadata.empty(),
          "save: '{}': metadata is a safetensors feature; a torch.save file has none (got {} "
          "entries)",
          path, metadata.size());
    save_torch(state_dict, path);
}

void save(const StateDict& state_dict, const std::string& path,
          const std::map<std::string, std::string>& metadata) {
    save(state_dict, path, SaveFormat::ByExtension, metadata);
}

StateDict load_from_bytes(const std::string& path, const std::vector<char>& bytes) {
    return load_source(ByteSource(path, bytes.data(), bytes.size()), {});
}

StateDict load(const std::string& path, const LoadOptions& options) {
    if (is_sharded_path(path)) {
        check(options.key.empty(),
              "load: '{}': expected no .key for a sharded checkpoint (got .key = \"{}\")", path,
              options.key);
        return load_sharded(path);
    }
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
