// Writing a file so that readers only ever see the old or the new one: the
// bytes go to a temporary file beside it, are flushed to disk, and the
// temporary is renamed over the target (POSIX rename is atomic). A save that
// fails or is killed leaves the old file as it was.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

namespace xg::detail {

// Writes `path` through write(file), which returns false when a write failed.
// An error (a full disk, a missing folder, write returning false) throws an
// xg::Error that names `op`, the path and the system's reason, after removing
// the temporary. Temporaries are named "<path>.tmp.<pid>.XXXXXX": each save
// removes those a killed process left behind (its pid no longer runs).
void write_atomically(const std::string& path, const char* op,
                      const std::function<bool(std::FILE*)>& write);

// The temporaries of `path` that a process no longer running left behind.
void remove_stale_temporaries(const std::string& path);

}  // namespace xg::detail
