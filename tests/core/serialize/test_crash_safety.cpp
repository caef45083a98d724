// Crash safety of xg::save (atomic_file.hpp): a saving process SIGKILLed at
// random points leaves the old or the new checkpoint, never a torn one, and
// the next save removes its temporary; a full filesystem (a 256 KiB tmpfs in a
// mount namespace of the child's own), a missing folder and a read-only folder
// fail with an xg::Error naming the path and leave the old file as it was.
// Children are forked: a child only saves (or checks) and _exits, never
// returning into doctest, and reports to the parent through its exit status or
// a pipe.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"

// Each test file in a namespace of its own: they compile in batches (tests/CMakeLists.txt).
namespace core_serialize_test_crash_safety {

namespace fs = std::filesystem;

namespace {

// AddressSanitizer makes a save slower: start from smaller checkpoints there.
constexpr bool kSanitized =
#if defined(__SANITIZE_ADDRESS__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

constexpr int kRounds = 200;
// Checkpoints shrink until one save takes at most this long: a round costs
// several saves' time (the disk is busy writing back the killed saves), and 200
// rounds of each format should take a few seconds. fsync sets a floor on slow disks.
constexpr double kMaxSecondsPerSave = 0.002;
constexpr std::size_t kMinValues = 4 * 1024;
constexpr int kSaveFailed = 3;    // a saving child's exit status when save threw
constexpr uid_t kNobody = 65534;  // the unprivileged user root becomes to meet a permission

// A fresh, empty folder of this process's own.
fs::path scratch(const std::string& name) {
    fs::path dir = fs::temp_directory_path() /
                   ("xgrad-crash-safety-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

// Four float tensors of n values each (256K values: a 4 MiB file), so that a
// save takes milliseconds and kills land in every phase of it.
xg::StateDict checkpoint(std::size_t n, std::uint64_t seed) {
    xg::manual_seed(seed);
    xg::StateDict sd;
    for (int i = 0; i < 4; ++i)
        sd.insert_or_assign("layer" + std::to_string(i) + ".weight", xg::randn({n / 256, 256}));
    return sd;
}

// Same keys in the same order, same dtypes and shapes, the same bits (memcmp:
// an elementwise xtensor comparison of millions of values is slow at -O0).
bool same_bits(const xg::StateDict& got, const xg::StateDict& expected) {
    if (got.keys() != expected.keys()) return false;
    for (const auto& [key, want] : expected) {
        const xg::Tensor& have = got.at(key);
        if (have.dtype() != xg::kFloat32 || have.shape() != want.shape()) return false;
        const auto& a = have.data<float>();
        const auto& b = want.data<float>();
        if (std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0) return false;
    }
    return true;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// The "<name>.tmp.*" files beside `path`.
std::vector<std::string> temporaries(const fs::path& path) {
    std::vector<std::string> found;
    const std::string prefix = path.filename().string() + ".tmp.";
    for (const auto& entry : fs::directory_iterator(path.parent_path())) {
        std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) == 0) found.push_back(name);
    }
    return found;
}

// ---- Killed saves ----

struct Calibration {
    xg::StateDict a, b;
    std::size_t values = 0;         // per tensor
    double seconds_per_save = 0.0;  // the median of four saves
};

// Writes A and B alternately to `path` and times them, shrinking the
// checkpoints while a save is slower than kMaxSecondsPerSave. Leaves A in the file.
Calibration calibrate(const std::string& path) {
    Calibration c;
    for (c.values = kSanitized ? 64 * 1024 : 256 * 1024;; c.values /= 2) {
        c.a = checkpoint(c.values, 1);
        c.b = checkpoint(c.values, 2);
        std::vector<double> seconds;
        for (int i = 0; i < 4; ++i) {
            auto start = std::chrono::steady_clock::now();
            xg::save(i % 2 ? c.a : c.b, path);
            seconds.push_back(
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        std::sort(seconds.begin(), seconds.end());
        c.seconds_per_save = (seconds[1] + seconds[2]) / 2;
        if (c.seconds_per_save <= kMaxSecondsPerSave || c.values <= kMinValues) return c;
    }
}

// A child that saves `sd` to `path` over and over until it is killed. The test
// binary has other threads (OpenBLAS's), whose locks a forked child must not
// wait for, so the child does nothing but save and _exit.
pid_t start_saving(const xg::StateDict& sd, const std::string& path) {
    pid_t pid = ::fork();
    if (pid == 0) {
        try {
            for (;;) xg::save(sd, path);
        } catch (...) {
        }
        ::_exit(kSaveFailed);
    }
    return pid;
}

// Which of `a` and `b` the file at `path` holds; nullptr, and why, if neither.
const xg::StateDict* read_back(const std::string& path, const xg::StateDict& a,
                               const xg::StateDict& b, std::string& why) {
    try {
        xg::StateDict got = xg::load(path);
        if (same_bits(got, a)) return &a;
        if (same_bits(got, b)) return &b;
        why = "it loads, with other values";
    } catch (const std::exception& e) {
        why = e.what();
    }
    return nullptr;
}

ino_t inode_of(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// Until the file at `path` is no longer inode `before` (a save renamed its
// temporary over it), or 10 s.
void wait_for_rename(const std::string& path, ino_t before) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (inode_of(path) == before && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
}

// 200 rounds of: fork a child saving the checkpoint the file does not hold,
// kill it after a random delay spread over 1.5 saves (every eighth round
// after its first save has landed), load the file.
void check_killed_saves(const std::string& extension) {
    const fs::path dir = scratch("killed" + extension);
    const std::string path = (dir / ("model" + extension)).string();
    const Calibration c = calibrate(path);
    INFO("4 tensors of ", c.values, " floats; one save takes ", c.seconds_per_save * 1e3, " ms");
    std::mt19937 rng(20261130);
    std::uniform_real_distribution<double> delay(0.0, 1.5 * c.seconds_per_save);
    const xg::StateDict* in_file = &c.a;
    const xg::StateDict* other = &c.b;
    int old_seen = 0, new_seen = 0, left_temporary = 0;
    for (int round = 0; round < kRounds; ++round) {
        CAPTURE(round);
        const ino_t before = inode_of(path);
        pid_t pid = start_saving(*other, path);
        REQUIRE(pid > 0);
        // Every eighth round kills only after a save has landed (the file is a
        // new inode), whatever the machine's load does to the calibrated time.
        if (round % 8 == 7) wait_for_rename(path, before);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay(rng)));
        ::kill(pid, SIGKILL);
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE_MESSAGE(
            (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
            "the saving child was not killed but ended (status " << status << "): save threw");
        left_temporary += !temporaries(path).empty();
        std::string why;
        const xg::StateDict* found = read_back(path, *in_file, *other, why);
        REQUIRE_MESSAGE(found != nullptr,
                        "'" << path << "' is neither the old nor the new checkpoint: " << why);
        if (found == other) {
            ++new_seen;
            std::swap(in_file, other);
        } else {
            ++old_seen;
        }
    }
    // Kills landed before and after the rename, and some mid-write, leaving a temporary.
    CHECK(old_seen > 0);
    CHECK(new_seen > 0);
    CHECK(left_temporary > 0);
    xg::save(*other, path);
    CHECK(temporaries(path) == std::vector<std::string>{});
    fs::remove_all(dir);
}

// ---- Children that report through a pipe ----

// "<call>: <the system's reason>", from errno.
std::string failure(const std::string& call) { return call + ": " + std::strerror(errno); }

// Runs `body` in a forked child and returns the text it returned: "ok",
// "skip: <why>", "error: <xg::Error's message>" or "fail: <what>" lines.
std::string run_in_child(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    REQUIRE_MESSAGE(pid >= 0, failure("fork"));
    if (pid == 0) {
        ::close(fds[0]);
        std::string out;
        try {
            out = body();
        } catch (const std::exception& e) {
            out = std::string("fail: unexpected exception: ") + e.what();
        }
        // Whole: a blocking write to a pipe with room (64 KiB) is not split.
        ssize_t written = ::write(fds[1], out.data(), out.size());
        ::_exit(written == static_cast<ssize_t>(out.size()) ? 0 : 1);
    }
    ::close(fds[1]);
    std::string out;
    char buffer[512];
    for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
        out.append(buffer, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "the child crashed (status " << status << "); it said: " << out);
    return out;
}

bool write_file(const char* path, const std::string& text) {
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

// Mounts a 256 KiB tmpfs on `dir`, seen by this process alone: "" or why not.
// Root (CAP_SYS_ADMIN) gets a mount namespace directly; anyone else may get
// one inside a user namespace, as root of it. Both need a single-threaded
// process, which a forked child is.
std::string mount_small_tmpfs(const fs::path& dir) {
    if (::unshare(CLONE_NEWNS) != 0) {
        std::string as_root = failure("unshare(CLONE_NEWNS)");
        const uid_t uid = ::geteuid();
        const gid_t gid = ::getegid();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
            return as_root + "; " + failure("unshare(CLONE_NEWUSER | CLONE_NEWNS)");
        write_file("/proc/self/setgroups", "deny");  // needed before gid_map; absent on old kernels
        if (!write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
            !write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
            return failure("writing uid_map/gid_map of a user namespace");
    }
    // Private, so the tmpfs cannot propagate into the parent's namespace.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
        return failure("making / a private mount");
    if (::mount("xgrad-test", dir.c_str(), "tmpfs", 0, "size=256k") != 0)
        return failure("mounting a 256 KiB tmpfs");
    return "";
}

// In the child: an old 16 KiB checkpoint, then a 512 KiB save that cannot fit.
std::string fill_the_disk(const fs::path& dir, const std::string& extension) {
    std::string why = mount_small_tmpfs(dir);
    if (!why.empty()) return "skip: " + why;
    const std::string path = (dir / ("model" + extension)).string();
    const xg::StateDict old_sd = checkpoint(1024, 3), big = checkpoint(32 * 1024, 4);
    std::string failures;
    auto expect = [&](bool ok, const std::string& what) {
        if (!ok) failures += "fail: " + what + "\n";
    };
    xg::save(old_sd, path);
    try {
        xg::save(big, path);
        expect(false, "a 512 KiB save onto a 256 KiB tmpfs did not throw");
    } catch (const xg::Error& e) {
        expect(contains(e.what(), "cannot write '" + path + "'"),
               std::string("the error says it cannot write the path: ") + e.what());
        expect(contains(e.what(), std::strerror(ENOSPC)),
               std::string("the error gives the system's reason: ") + e.what());
    }
    expect(same_bits(xg::load(path), old_sd), "the old file loads as the old checkpoint");
    expect(temporaries(path).empty(), "no temporary is left beside the file");
    return failures.empty() ? "ok" : failures;
}

void check_full_filesystem(const std::string& extension) {
    const fs::path dir = scratch("full" + extension);
    const std::string out = run_in_child([&] { return fill_the_disk(dir, extension); });
    if (out.rfind("skip: ", 0) == 0) {
        MESSAGE("skipped the full-filesystem test of "
                << extension << ": cannot mount a tmpfs here (" << out.substr(6) << ")");
    } else {
        CHECK_MESSAGE(out == "ok", out);
    }
    fs::remove_all(dir);  // the tmpfs went with the child's namespace
}

// In the child: root writes into any folder, so it becomes nobody to try.
std::string try_save(const xg::StateDict& sd, const std::string& path) {
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0))
        return "skip: root ignores a folder's permissions and " + failure("cannot become nobody");
    try {
        xg::save(sd, path);
        return "fail: the save did not throw";
    } catch (const xg::Error& e) {
        return std::string("error: ") + e.what();
    }
}

pid_t dead_pid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    REQUIRE(pid > 0);
    int status = 0;
    ::waitpid(pid, &status, 0);  // reaped: the pid no longer runs
    return pid;
}

}  // namespace

TEST_CASE("a safetensors save killed at random points leaves the old or the new file") {
    check_killed_saves(".safetensors");
}

TEST_CASE("a .pt save killed at random points leaves the old or the new file") {
    check_killed_saves(".pt");
}

TEST_CASE("a save onto a full filesystem throws, naming the path, and keeps the old file") {
    check_full_filesystem(".safetensors");
    check_full_filesystem(".pt");
}

TEST_CASE("a save into a folder that does not exist throws, naming the path, and creates none") {
    const fs::path dir = scratch("missing");
    for (std::string extension : {".safetensors", ".pt"}) {
        CAPTURE(extension);
        const fs::path missing = dir / "no-such-folder";
        const std::string path = (missing / ("model" + extension)).string();
        try {
            xg::save(checkpoint(1024, 5), path);
            FAIL_CHECK("the save did not throw");
        } catch (const xg::Error& e) {
            CHECK_MESSAGE(contains(e.what(), "'" + path + "'"), e.what());
            CHECK_MESSAGE(contains(e.what(), std::strerror(ENOENT)), e.what());
        }
        CHECK_FALSE(fs::exists(missing));
    }
    fs::remove_all(dir);
}

TEST_CASE("a save into a read-only folder throws, naming the path, and keeps the old file") {
    const fs::path dir = scratch("read-only");
    const std::string path = (dir / "model.safetensors").string();
    xg::save(checkpoint(1024, 6), path);
    const std::string before = test::read_bytes(path);
    const xg::StateDict new_sd = checkpoint(1024, 7);
    fs::permissions(dir, static_cast<fs::perms>(0555));
    const std::string out = run_in_child([&] { return try_save(new_sd, path); });
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add);
    if (out.rfind("skip: ", 0) == 0) {
        MESSAGE("skipped the read-only folder test: " << out.substr(6));
    } else {
        REQUIRE_MESSAGE(out.rfind("error: ", 0) == 0, out);
        CHECK_MESSAGE(contains(out, "'" + path + "'"), out);
        CHECK_MESSAGE(contains(out, std::strerror(EACCES)), out);
    }
    CHECK(test::read_bytes(path) == before);
    CHECK(temporaries(path) == std::vector<std::string>{});
    fs::remove_all(dir);
}

TEST_CASE("a save removes the temporaries of processes that are gone and no others") {
    const fs::path dir = scratch("stale");
    const fs::path path = dir / "model.safetensors";
    auto temporary = [&](const std::string& name, pid_t pid) {
        return dir / (name + ".tmp." + std::to_string(pid) + ".abc123");
    };
    const fs::path dead = temporary("model.safetensors", dead_pid());
    // Running: this process, and pid 1 (which kill(1, 0) may answer with EPERM).
    const fs::path ours = temporary("model.safetensors", ::getpid());
    const fs::path init = temporary("model.safetensors", 1);
    // Not this file's temporaries: another file's, and a name without a pid.
    const fs::path other_file = temporary("other.safetensors", dead_pid());
    const fs::path no_pid = dir / "model.safetensors.tmp.abc123";
    for (const fs::path& p : {dead, ours, init, other_file, no_pid}) std::ofstream(p) << "partial";
    xg::save(checkpoint(1024, 8), path.string());
    CHECK_FALSE(fs::exists(dead));
    CHECK(fs::exists(ours));
    CHECK(fs::exists(init));
    CHECK(fs::exists(other_file));
    CHECK(fs::exists(no_pid));
    CHECK(same_bits(xg::load(path.string()), checkpoint(1024, 8)));
    fs::remove_all(dir);
}

}  // namespace core_serialize_test_crash_safety
