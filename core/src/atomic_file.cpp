// write_atomically (atomic_file.hpp).
#include "atomic_file.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "xgrad/error.hpp"

namespace xg::detail {

namespace fs = std::filesystem;

namespace {

std::string temporary_prefix(const std::string& path) { return path + ".tmp."; }

// The pid in "<path>.tmp.<pid>.XXXXXX", or 0 when the name is not one of ours.
pid_t owner_of(const std::string& name, const std::string& prefix) {
    if (name.rfind(prefix, 0) != 0) return 0;
    const char* digits = name.c_str() + prefix.size();
    char* end = nullptr;
    long pid = std::strtol(digits, &end, 10);
    return end != digits && *end == '.' && pid > 0 ? static_cast<pid_t>(pid) : 0;
}

// Makes the rename itself durable: the folder's entry is on disk.
void sync_folder(const std::string& path) {
    fs::path folder = fs::path(path).parent_path();
    int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;  // best effort: the data itself is synced already
    ::fsync(fd);
    ::close(fd);
}

}  // namespace

void remove_stale_temporaries(const std::string& path) {
    const fs::path target(path);
    const fs::path folder = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    const std::string prefix = target.filename().string() + ".tmp.";
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(folder, error)) {
        pid_t pid = owner_of(entry.path().filename().string(), prefix);
        // kill(pid, 0) fails with ESRCH only when no such process exists: a
        // save still running in another process keeps its temporary.
        if (pid != 0 && ::kill(pid, 0) != 0 && errno == ESRCH) fs::remove(entry.path(), error);
    }
}

void write_atomically(const std::string& path, const char* op,
                      const std::function<bool(std::FILE*)>& write) {
    remove_stale_temporaries(path);
    std::string temp = temporary_prefix(path) + std::to_string(::getpid()) + ".XXXXXX";
    int fd = ::mkstemp(temp.data());
    check(fd >= 0, "{}: cannot create a temporary file next to '{}' ({})", op, path,
          std::strerror(errno));
    std::FILE* file = ::fdopen(fd, "wb");
    bool ok = file != nullptr;
    int error = 0;
    try {
        ok = ok && write(file);
    } catch (...) {
        file ? std::fclose(file) : ::close(fd);
        std::remove(temp.c_str());
        throw;
    }
    ok = ok && std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
    if (!ok) error = errno;
    ok = (file ? std::fclose(file) == 0 : (::close(fd), false)) && ok;
    if (ok && std::rename(temp.c_str(), path.c_str()) != 0) ok = false;
    if (!ok) {
        error = error != 0 ? error : errno;
        std::remove(temp.c_str());
        throw Error(fmt::format("{}: cannot write '{}' ({}); the old file is unchanged", op, path,
                                std::strerror(error)));
    }
    sync_folder(path);
}

}  // namespace xg::detail
