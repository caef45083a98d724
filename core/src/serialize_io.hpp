// What the file readers share (safetensors.cpp, torch_*.cpp): the
// bytes they read, from a file piece by piece or from memory, and the rule for
// the shapes a file may declare.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xgrad/error.hpp"
#include "xgrad/serialize.hpp"

namespace xg {

// The bytes a loader reads: a file, read with pread where they are needed (a
// tensor's bytes go straight into its storage), or bytes already in memory
// (load_from_bytes, the fuzzers). Reads past the end are errors, never UB.
class ByteSource {
public:
    explicit ByteSource(std::string path) : path_(std::move(path)) {
        fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        check(fd_ >= 0, "load: cannot open '{}' ({})", path_, std::strerror(errno));
        struct stat info;
        if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
            ::close(fd_);
            fail("load: cannot read '{}' (expected a regular file)", path_);
        }
        size_ = static_cast<std::uint64_t>(info.st_size);
    }
    ByteSource(std::string path, const char* data, std::size_t size)
        : path_(std::move(path)), data_(data), size_(size) {}
    ~ByteSource() {
        if (mapping_ != nullptr) ::munmap(mapping_, size_);
        if (fd_ >= 0) ::close(fd_);
    }
    ByteSource(const ByteSource&) = delete;
    ByteSource& operator=(const ByteSource&) = delete;

    const std::string& path() const { return path_; }
    std::uint64_t size() const { return size_; }

    // Copies bytes [offset, offset + n) to `out`; false when they are not all
    // there or the file cannot be read. Never throws: libzip calls it.
    bool read_at(std::uint64_t offset, void* out, std::size_t n) const noexcept {
        if (offset > size_ || n > size_ - offset) return false;
        if (n == 0) return true;
        if (data_) {
            std::memcpy(out, data_ + offset, n);
            return true;
        }
        auto* to = static_cast<char*>(out);
        while (n > 0) {
            ssize_t got = ::pread(fd_, to, n, static_cast<off_t>(offset));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) return false;
            to += got, offset += static_cast<std::uint64_t>(got),
                n -= static_cast<std::size_t>(got);
        }
        return true;
    }

    // read_at, or an xg::Error saying that the file ends before `what`.
    void read(std::uint64_t offset, void* out, std::size_t n, const std::string& what) const {
        check(offset <= size_ && n <= size_ - offset,
              "load: '{}': the file ends before {} (bytes {} to {}; the file has {})", path_, what,
              offset, offset + n, size_);
        if (!read_at(offset, out, n))
            fail("load: cannot read '{}' ({})", path_, std::strerror(errno));
    }

    // All the bytes at once: a file is memory-mapped (read-only; nullptr for
    // an empty file or when mapping fails, and read() is the way then).
    const char* mapped() const {
        if (data_ != nullptr || size_ == 0) return data_;
        if (mapping_ == nullptr) {
            void* at = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
            if (at == MAP_FAILED) return nullptr;
            ::madvise(at, size_, MADV_SEQUENTIAL);
            mapping_ = at;
        }
        return static_cast<const char*>(mapping_);
    }

    // Done with bytes [offset, offset + n) of a mapping: the whole pages among
    // them leave the process's resident set, so a load holds each tensor's
    // bytes twice only while it copies them, not the whole file until the end.
    void release(std::uint64_t offset, std::uint64_t n) const {
        if (mapping_ == nullptr) return;
        const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
        const std::uint64_t first = (offset + page - 1) / page * page,
                            last = (offset + n) / page * page;
        if (first < last)
            ::madvise(static_cast<char*>(mapping_) + first, last - first, MADV_DONTNEED);
    }

private:
    std::string path_;
    mutable void* mapping_ = nullptr;
    int fd_ = -1;
    const char* data_ = nullptr;
    std::uint64_t size_ = 0;
};

// Every dimension must fit std::ptrdiff_t, PyTorch's int64 index type, and so
// must the element count and the byte count with zero dimensions left out: a
// shape such as [0, 2^62, 4] holds nothing, but its strides and any reshape
// of it would overflow. Returns the byte count.
inline std::uint64_t checked_nbytes(const std::string& path, const std::string& key,
                                    const std::vector<std::uint64_t>& dims, std::uint64_t item) {
    constexpr auto kMax = static_cast<std::uint64_t>(PTRDIFF_MAX);
    std::uint64_t nonzero = item, numel = 1;
    for (std::uint64_t d : dims) {
        check(d <= kMax, "load: '{}': tensor '{}' has a dimension of {} (expected at most {})",
              path, key, d, kMax);
        if (d == 0) {
            numel = 0;
        } else if (__builtin_mul_overflow(nonzero, d, &nonzero) || nonzero > kMax) {
            fail("load: '{}': tensor '{}' of shape {} has a size that overflows", path, key,
                 shape_str(Shape(dims.begin(), dims.end())));
        }
    }
    return numel == 0 ? 0 : nonzero;
}

// Writers and readers beside the safetensors ones (safetensors.cpp routes to them).
void save_torch(const StateDict& state_dict, const std::string& path);  // torch_write.cpp
StateDict load_sharded(const std::string& path);  // sharded.cpp: an index file or a folder
bool is_sharded_path(const std::string& path);    // sharded.cpp: a folder or "*.index.json"

StateDict load_torch_zip(const ByteSource& source, const LoadOptions& options);     // torch_zip.cpp
StateDict load_torch_legacy(const ByteSource& source, const LoadOptions& options);  // torch_zip.cpp
bool is_torch_legacy(const ByteSource& source);  // torch_zip.cpp: by its first 15 bytes

}  // namespace xg
