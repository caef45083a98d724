// A zip archive of stored (uncompressed) entries, written front to back and
// laid out byte for byte as PyTorch lays out a torch.save file (its
// PyTorchStreamWriter drives miniz with MZ_ZIP_FLAG_WRITE_ZIP64):
// - each entry's data starts at a multiple of 64 bytes, padded by an extra
//   field "FB" of 'Z's in the local header, so readers can map tensors in place;
// - the local header leaves CRC and sizes zero, and a data descriptor after
//   the data carries them (none for an empty entry);
// - zip64 fields appear for a size or offset of 0xFFFFFFFF or more, and the
//   archive always ends with a zip64 end record and locator before the classic one;
// - times, dates, versions and attributes are zero.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace xg::detail {

// The zip's checksum: CRC-32 with the reflected polynomial 0xEDB88320.
std::uint32_t crc32(const void* data, std::size_t size);

class ZipWriter {
public:
    // The zip format's limit: a size or offset from here up needs a zip64 field.
    static constexpr std::uint64_t kZip64Limit = 0xFFFFFFFF;

    // Writes to `file` from its start. A lower `zip64_from` treats sizes and
    // offsets from it up as if they were past the limit: tests reach the zip64
    // layout with small files.
    explicit ZipWriter(std::FILE* file, std::uint64_t zip64_from = kZip64Limit)
        : file_(file), zip64_from_(zip64_from) {}

    // Appends entry `name` holding `size` bytes from `data`; false if a write failed.
    bool add(const std::string& name, const void* data, std::uint64_t size);
    // Writes the central directory and the end records; false if a write failed.
    bool finish();

private:
    struct Entry {
        std::string name;
        std::uint32_t crc = 0;
        std::uint64_t size = 0;
        std::uint64_t offset = 0;  // of its local header
    };

    bool write(const void* data, std::uint64_t size);
    bool wide(std::uint64_t value) const { return value >= zip64_from_; }
    // A 32-bit field: the value, or 0xFFFFFFFF when a zip64 field holds it.
    std::uint32_t narrow(std::uint64_t value) const;
    std::string zip64_field(const Entry& entry, std::uint64_t compressed_size) const;
    std::string central_header(const Entry& entry) const;

    std::FILE* file_;
    std::uint64_t zip64_from_;
    std::uint64_t at_ = 0;  // bytes written so far
    std::vector<Entry> entries_;
};

}  // namespace xg::detail
