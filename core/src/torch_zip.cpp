// The two containers torch.save writes, both holding a pickle and raw
// little-endian storages (torch_pickle.hpp reads the pickle, and
// torch_state_dict.cpp the tensors it describes):
// - the zip (PyTorch >= 1.6): "<root>/data.pkl" and "<root>/data/<key>", one
//   storage per key. libzip reads the archive through a ByteSource, so a file
//   is read piece by piece; every entry read is CRC-32 checked.
// - the legacy format (_use_new_zipfile_serialization=False): five pickles
//   back to back (torch's magic number, the protocol version 1001, sys_info,
//   the object, the list of storage keys), then per key an int64 element count
//   and the data.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include <zip.h>

#include "torch_pickle.hpp"

namespace xg {

namespace {

struct Zip {
    zip_t* archive = nullptr;
    ~Zip() {
        if (archive) zip_discard(archive);
    }
};

// libzip reads the archive through this callback, so a file is read piece by
// piece, as needed, and bytes in memory go through the very same code.
struct ZipReader {
    explicit ZipReader(const ByteSource& source) : source(&source) { zip_error_init(&error); }
    ~ZipReader() { zip_error_fini(&error); }
    ZipReader(const ZipReader&) = delete;
    ZipReader& operator=(const ZipReader&) = delete;

    const ByteSource* source;
    std::uint64_t at = 0;
    zip_error_t error;
};

zip_int64_t zip_read(void* state, void* data, zip_uint64_t length, zip_source_cmd_t command) {
    auto& r = *static_cast<ZipReader*>(state);
    const std::uint64_t size = r.source->size();
    switch (command) {
        case ZIP_SOURCE_OPEN: r.at = 0; return 0;
        case ZIP_SOURCE_READ: {
            std::uint64_t n = std::min<std::uint64_t>(length, size - std::min(r.at, size));
            if (!r.source->read_at(r.at, data, static_cast<std::size_t>(n))) {
                zip_error_set(&r.error, ZIP_ER_READ, errno);
                return -1;
            }
            r.at += n;
            return static_cast<zip_int64_t>(n);
        }
        case ZIP_SOURCE_CLOSE:
        case ZIP_SOURCE_FREE: return 0;
        case ZIP_SOURCE_STAT: {
            auto* stat = static_cast<zip_stat_t*>(data);
            zip_stat_init(stat);
            stat->size = size;
            stat->valid |= ZIP_STAT_SIZE;
            return sizeof(zip_stat_t);
        }
        case ZIP_SOURCE_ERROR: return zip_error_to_data(&r.error, data, length);
        case ZIP_SOURCE_SEEK: {
            zip_int64_t at = zip_source_seek_compute_offset(r.at, size, data, length, &r.error);
            if (at < 0) return -1;
            r.at = static_cast<std::uint64_t>(at);
            return 0;
        }
        case ZIP_SOURCE_TELL: return static_cast<zip_int64_t>(r.at);
        case ZIP_SOURCE_SUPPORTS:
            return zip_source_make_command_bitmap(
                ZIP_SOURCE_OPEN, ZIP_SOURCE_READ, ZIP_SOURCE_CLOSE, ZIP_SOURCE_STAT,
                ZIP_SOURCE_ERROR, ZIP_SOURCE_FREE, ZIP_SOURCE_SEEK, ZIP_SOURCE_TELL,
                ZIP_SOURCE_SUPPORTS, -1);
        default: zip_error_set(&r.error, ZIP_ER_OPNOTSUPP, 0); return -1;
    }
}

void open_zip(Zip& zip, ZipReader& reader) {
    const std::string& path = reader.source->path();
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_function_create(zip_read, &reader, &error);
    check(source != nullptr, "load: '{}': cannot read as zip", path);
    zip.archive = zip_open_from_source(source, ZIP_RDONLY, &error);
    if (zip.archive == nullptr) {
        zip_source_free(source);
        std::string reason = zip_error_strerror(&error);
        zip_error_fini(&error);  // zip_error_strerror allocated the text it returned
        fail("load: '{}': not a valid zip file ({})", path, reason);
    }
}

struct Entry {
    zip_uint64_t index = 0;
    std::string name;
    std::uint64_t size = 0;
};

Entry find_entry(zip_t* archive, const ByteSource& source, const std::string& name) {
    const std::string& path = source.path();
    zip_int64_t index = zip_name_locate(archive, name.c_str(), 0);
    check(index >= 0, "load: '{}': missing storage '{}'", path, name);
    Entry entry{static_cast<zip_uint64_t>(index), name};
    zip_stat_t stat;
    check(zip_stat_index(archive, entry.index, 0, &stat) == 0 && (stat.valid & ZIP_STAT_SIZE) &&
              (stat.valid & ZIP_STAT_COMP_SIZE),
          "load: '{}': cannot stat zip entry '{}'", path, name);
    // Deflate expands at most 1032-fold: a larger claimed size is a lie (or a zip
    // bomb), and believing it would allocate whatever the file asks for.
    check(stat.size <= 1032 * std::min<zip_uint64_t>(stat.comp_size, source.size()) + 1024,
          "load: '{}': zip entry '{}' claims {} bytes from {} compressed ones", path, name,
          stat.size, stat.comp_size);
    entry.size = stat.size;
    return entry;
}

// Reads all of `entry` into `out`, then once more: libzip checks an entry's
// CRC-32 only when a read reaches past its last byte.
void read_entry(zip_t* archive, const Entry& entry, const std::string& path, char* out) {
    std::unique_ptr<zip_file_t, int (*)(zip_file_t*)> file(zip_fopen_index(archive, entry.index, 0),
                                                           zip_fclose);
    check(file != nullptr, "load: '{}': cannot open zip entry '{}'", path, entry.name);
    auto size = static_cast<zip_int64_t>(entry.size);
    zip_int64_t got = size == 0 ? 0 : zip_fread(file.get(), out, entry.size);
    char past_end;
    zip_int64_t more = got == size ? zip_fread(file.get(), &past_end, 1) : -1;
    if (more == 0) return;
    zip_error_t* error = zip_file_get_error(file.get());
    check(zip_error_code_zip(error) != ZIP_ER_CRC,
          "load: '{}': zip entry '{}' fails its CRC-32 check (the file is corrupted)", path,
          entry.name);
    check(more < 0, "load: '{}': zip entry '{}' holds more than the {} bytes it claims", path,
          entry.name, entry.size);
    check(got < 0 || got == size, "load: '{}': zip entry '{}' is truncated", path, entry.name);
    fail("load: '{}': cannot read zip entry '{}' ({})", path, entry.name,
         zip_error_strerror(error));
}

// PROTO 2, LONG1 of 10 bytes: torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, STOP.
constexpr unsigned char kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

// sys_info = {"protocol_version": 1001, "little_endian": bool, "type_sizes": {...}}
void check_sys_info(const std::string& path, const Value& info) {
    check(info.kind == Value::Kind::Dict, "load: '{}': expected a sys_info dict (got {})", path,
          kind_name(info));
    for (const auto& [key, value] : info.dict) {
        if (key->kind != Value::Kind::String || key->text != "little_endian") continue;
        check(value->kind == Value::Kind::Bool && value->integer == 1,
              "load: '{}': expected a little-endian file (got sys_info little_endian {})", path,
              value->kind == Value::Kind::Bool ? "False" : kind_name(*value));
        return;
    }
    fail("load: '{}': expected sys_info to say little_endian (got no such entry)", path);
}

std::int64_t read_int64(const ByteSource& source, std::uint64_t at, const std::string& what) {
    unsigned char bytes[8];
    source.read(at, bytes, 8, what);
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | bytes[i];
    return static_cast<std::int64_t>(v);
}

// Where each storage's data lies: after the keys pickle, per key in its order,
// an int64 element count (which must match the pickle's) and the data.
std::map<std::string, Record> legacy_records(const ByteSource& source, const Value& keys,
                                             const std::vector<ValuePtr>& storages,
                                             std::uint64_t at) {
    const std::string& path = source.path();
    check(keys.kind == Value::Kind::List, "load: '{}': expected the list of storage keys (got {})",
          path, kind_name(keys));
    std::map<std::string, const Value*> storage_of;
    for (const auto& s : storages) storage_of.emplace(s->text, s.get());
    std::map<std::string, Record> out;
    for (const auto& key : keys.items) {
        check(key->kind == Value::Kind::String, "load: '{}': expected string storage keys (got {})",
              path, kind_name(*key));
        auto storage = storage_of.find(key->text);
        check(storage != storage_of.end(), "load: '{}': storage '{}' is listed but never used",
              path, key->text);
        const Value& s = *storage->second;
        std::int64_t count = read_int64(source, at, "the size of storage '" + key->text + "'");
        check(count == s.integer, "load: '{}': storage '{}' holds {} elements (expected {})", path,
              key->text, count, s.integer);
        std::uint64_t nbytes = checked_nbytes(path, "storage " + key->text,
                                              {static_cast<std::uint64_t>(count)}, s.item_size);
        std::uint64_t data = at + 8;
        std::string what = "the data of storage '" + key->text + "'";
        check(nbytes <= source.size() - data,
              "load: '{}': the file ends before {} (bytes {} to {}; the file has {})", path, what,
              data, data + nbytes, source.size());
        out[key->text] = {nbytes, {}, [&source, data, nbytes, what](char* to) {
                              source.read(data, to, nbytes, what);
                          }};
        at = data + nbytes;
    }
    return out;
}

}  // namespace

StateDict load_torch_zip(const ByteSource& source, const LoadOptions& options) {
    const std::string& path = source.path();
    ZipReader reader(source);
    Zip zip;
    open_zip(zip, reader);
    // The top folder is "archive" in recent PyTorch, the file's stem in older ones.
    std::string root;
    bool found = false;
    zip_int64_t entries = zip_get_num_entries(zip.archive, 0);
    for (zip_int64_t i = 0; i < entries; ++i) {
        const char* entry_name = zip_get_name(zip.archive, static_cast<zip_uint64_t>(i), 0);
        if (entry_name == nullptr) continue;
        std::string name = entry_name;
        auto slash = name.find('/');
        if (slash != std::string::npos && name.substr(slash) == "/data.pkl") {
            root = name.substr(0, slash);
            found = true;
        }
    }
    check(found, "load: '{}': zip has no data.pkl (not a torch.save file)", path);
    Entry entry = find_entry(zip.archive, source, root + "/data.pkl");
    std::vector<char> pickle(entry.size);
    read_entry(zip.archive, entry, path, pickle.data());
    ByteSource pickle_source(path, pickle.data(), pickle.size());
    Unpickler unpickler(pickle_source);
    ValuePtr top = unpickler.run();
    return build_state_dict(source, *top, options, [&](const Value& storage) {
        Entry e = find_entry(zip.archive, source, root + "/data/" + storage.text);
        return Record{
            e.size, {}, [&zip, e, &path](char* out) { read_entry(zip.archive, e, path, out); }};
    });
}

bool is_torch_legacy(const ByteSource& source) {
    unsigned char head[sizeof kLegacyMagic];
    return source.read_at(0, head, sizeof head) &&
           std::memcmp(head, kLegacyMagic, sizeof head) == 0;
}

StateDict load_torch_legacy(const ByteSource& source, const LoadOptions& options) {
    const std::string& path = source.path();
    Unpickler version(source, sizeof kLegacyMagic);
    ValuePtr protocol = version.run();
    check(protocol->kind == Value::Kind::Int && protocol->integer == 1001,
          "load: '{}': expected torch.save's legacy protocol version 1001 (got {})", path,
          protocol->kind == Value::Kind::Int ? std::to_string(protocol->integer)
                                             : kind_name(*protocol));
    Unpickler info(source, version.end());
    check_sys_info(path, *info.run());
    Unpickler object(source, info.end());
    ValuePtr top = object.run();
    Unpickler keys(source, object.end());
    ValuePtr key_list = keys.run();
    std::map<std::string, Record> records =
        legacy_records(source, *key_list, object.storages, keys.end());
    return build_state_dict(source, *top, options, [&](const Value& storage) {
        auto record = records.find(storage.text);
        check(record != records.end(), "load: '{}': missing storage '{}'", path, storage.text);
        return record->second;
    });
}

}  // namespace xg
