// The zip writer of torch.save files; see zip_writer.hpp.
#include "zip_writer.hpp"

#include <array>

namespace xg::detail {

namespace {

// Table k maps a byte to its CRC contribution k bytes before the end of an
// 8-byte block, so a block costs eight lookups instead of eight dependent
// steps: a checkpoint of gigabytes is checksummed at memory speed.
using CrcTables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr CrcTables make_crc_tables() {
    CrcTables tables{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ ((c & 1u) ? 0xEDB88320u : 0u);
        tables[0][i] = c;
    }
    for (std::size_t k = 1; k < 8; ++k) {
        for (std::size_t i = 0; i < 256; ++i)
            tables[k][i] = (tables[k - 1][i] >> 8) ^ tables[0][tables[k - 1][i] & 0xFFu];
    }
    return tables;
}

constexpr CrcTables kCrc = make_crc_tables();

std::uint32_t load32(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// Appends `value` to `out` as `bytes` little-endian bytes.
void le(std::string& out, std::uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFFu);
}

void zeros(std::string& out, std::size_t bytes) { out.append(bytes, '\0'); }

constexpr std::uint32_t kLocalHeader = 0x04034b50, kDataDescriptor = 0x08074b50,
                        kCentralHeader = 0x02014b50, kZip64End = 0x06064b50,
                        kZip64Locator = 0x07064b50, kEnd = 0x06054b50;
constexpr std::uint64_t kLocalHeaderSize = 30;
constexpr std::uint64_t kAlignment = 64;  // PyTorch's kFieldAlignment

// UTF-8 names; a data descriptor follows the data of a non-empty entry.
std::uint16_t flags(std::uint64_t size) { return size > 0 ? 0x0808 : 0x0800; }

}  // namespace

std::uint32_t crc32(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint32_t c = 0xFFFFFFFFu;
    for (; size >= 8; p += 8, size -= 8) {
        const std::uint32_t lo = c ^ load32(p), hi = load32(p + 4);
        c = kCrc[7][lo & 0xFFu] ^ kCrc[6][(lo >> 8) & 0xFFu] ^ kCrc[5][(lo >> 16) & 0xFFu] ^
            kCrc[4][lo >> 24] ^ kCrc[3][hi & 0xFFu] ^ kCrc[2][(hi >> 8) & 0xFFu] ^
            kCrc[1][(hi >> 16) & 0xFFu] ^ kCrc[0][hi >> 24];
    }
    for (; size > 0; ++p, --size) c = kCrc[0][(c ^ *p) & 0xFFu] ^ (c >> 8);
    return ~c;
}

std::uint32_t ZipWriter::narrow(std::uint64_t value) const {
    return wide(value) ? 0xFFFFFFFFu : static_cast<std::uint32_t>(value);
}

// The zip64 extended information field: the sizes when the size is wide, the
// header's offset when it is wide, nothing when neither is. In the local
// header miniz writes a compressed size of 0 (it is not known yet).
std::string ZipWriter::zip64_field(const Entry& entry, std::uint64_t compressed_size) const {
    std::string body;
    if (wide(entry.size)) {
        le(body, entry.size, 8);
        le(body, compressed_size, 8);
    }
    if (wide(entry.offset)) le(body, entry.offset, 8);
    if (body.empty()) return body;
    std::string field;
    le(field, 0x0001, 2);
    le(field, body.size(), 2);
    return field + body;
}

bool ZipWriter::write(const void* data, std::uint64_t size) {
    if (size == 0) return true;
    at_ += size;
    return std::fwrite(data, 1, size, file_) == size;
}

bool ZipWriter::add(const std::string& name, const void* data, std::uint64_t size) {
    Entry entry{name, crc32(data, size), size, at_};
    const std::string zip64 = zip64_field(entry, 0);
    // The data follows the header, the name, the zip64 field and the padding
    // field's own 4 bytes; the padding brings it to the next multiple of 64.
    const std::uint64_t start = at_ + kLocalHeaderSize + name.size() + zip64.size() + 4;
    const std::uint64_t padding = (kAlignment - start % kAlignment) % kAlignment;
    std::string header;
    le(header, kLocalHeader, 4);
    zeros(header, 2);  // version needed: stored
    le(header, flags(size), 2);
    zeros(header, 2 + 4 + 4 + 4 + 4);  // method, time and date, CRC, sizes: in the descriptor
    le(header, name.size(), 2);
    le(header, zip64.size() + 4 + padding, 2);
    header += name;
    header += zip64;
    header += "FB";
    le(header, padding, 2);
    header.append(padding, 'Z');
    bool ok = write(header.data(), header.size()) && write(data, size);
    if (size > 0) {
        std::string descriptor;
        le(descriptor, kDataDescriptor, 4);
        le(descriptor, entry.crc, 4);
        const int width = zip64.empty() ? 4 : 8;  // wide whenever the entry has a zip64 field
        le(descriptor, size, width);
        le(descriptor, size, width);
        ok = ok && write(descriptor.data(), descriptor.size());
    }
    entries_.push_back(std::move(entry));
    return ok;
}

std::string ZipWriter::central_header(const Entry& entry) const {
    const std::string zip64 = zip64_field(entry, entry.size);
    std::string out;
    le(out, kCentralHeader, 4);
    zeros(out, 2 + 2);  // versions made by and needed
    le(out, flags(entry.size), 2);
    zeros(out, 2 + 4);  // method, time and date
    le(out, entry.crc, 4);
    le(out, narrow(entry.size), 4);  // compressed
    le(out, narrow(entry.size), 4);
    le(out, entry.name.size(), 2);
    le(out, zip64.size(), 2);
    zeros(out, 2 + 2 + 2 + 4);  // comment length, disk, internal and external attributes
    le(out, narrow(entry.offset), 4);
    return out + entry.name + zip64;
}

bool ZipWriter::finish() {
    const std::uint64_t directory = at_, count = entries_.size();
    std::string out;
    for (const Entry& entry : entries_) out += central_header(entry);
    const std::uint64_t directory_size = out.size(), zip64_end = directory + directory_size;
    le(out, kZip64End, 4);
    le(out, 44, 8);      // the size of the rest of this record
    le(out, 0x031E, 2);  // made by: Unix, zip 3.0
    le(out, 45, 2);      // needed: zip 4.5, zip64
    zeros(out, 4 + 4);   // disks
    le(out, count, 8);
    le(out, count, 8);
    le(out, directory_size, 8);
    le(out, directory, 8);
    le(out, kZip64Locator, 4);
    zeros(out, 4);  // its disk
    le(out, zip64_end, 8);
    le(out, 1, 4);  // disks in all
    le(out, kEnd, 4);
    zeros(out, 2 + 2);  // disks
    le(out, count < 0xFFFF ? count : 0xFFFF, 2);
    le(out, count < 0xFFFF ? count : 0xFFFF, 2);
    le(out, narrow(directory_size), 4);
    le(out, narrow(directory), 4);
    zeros(out, 2);  // comment length
    return write(out.data(), out.size());
}

}  // namespace xg::detail
