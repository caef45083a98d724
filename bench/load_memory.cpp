// Peak memory of xg::load: writes a ~300 MB file of each kind (safetensors in
// float32 and bfloat16 with xg::save, which load through a memory map;
// torch.save zip and legacy formats with bench/load_memory.py and
// /usr/bin/python3), then loads each in a fresh process of its own and reports
// the process's resident set before loading and its peak (VmHWM) after, as
// a ratio to the file's size.
//
//   build/bench/load_memory [folder = /tmp] [megabytes = 300]
//   build/bench/load_memory --load <file>     (one measurement; what the above runs)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>
#include <xgrad/xgrad.hpp>

namespace {

namespace fs = std::filesystem;

// A field of /proc/self/status in KiB ("VmRSS", "VmHWM"), or -1.
long status_kib(const std::string& field) {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    }
    return -1;
}

// Runs in its own process, so nothing the parent allocated counts.
int measure(const std::string& path) {
    long baseline = status_kib("VmRSS");
    auto start = std::chrono::steady_clock::now();
    xg::StateDict state = xg::load(path);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    long peak = status_kib("VmHWM");
    double file_kib = static_cast<double>(fs::file_size(path)) / 1024;
    std::printf(
        "%-24s %7.1f MiB %4zu tensors %6.2f s  baseline %6.1f MiB  peak %6.1f MiB  peak/file "
        "%.2f\n",
        fs::path(path).filename().c_str(), file_kib / 1024, state.size(), seconds,
        baseline / 1024.0, peak / 1024.0, peak / file_kib);
    return 0;
}

int run_self(const std::string& self, const std::string& path) {
    pid_t child = fork();
    if (child == 0) {
        execl(self.c_str(), self.c_str(), "--load", path.c_str(), static_cast<char*>(nullptr));
        std::_Exit(127);
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

// About `megabytes` MB of [1000, 1000] tensors of `dtype`.
void write_safetensors(const std::string& path, long megabytes, xg::Dtype dtype) {
    xg::StateDict state;
    const long per_tensor = static_cast<long>(xg::element_size(dtype));  // MB per tensor
    for (long i = 0; i < std::max(1L, megabytes / per_tensor); ++i) {
        state.insert_or_assign("layer" + std::to_string(i) + ".weight",
                               xg::randn({1000, 1000}).to(dtype));
    }
    xg::save(state, path);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--load") {
        try {
            return measure(argv[2]);
        } catch (const xg::Error& e) {
            std::printf("%-28s failed: %s\n", fs::path(argv[2]).filename().c_str(), e.what());
            return 1;
        }
    }
    fs::path folder = argc > 1 ? argv[1] : "/tmp";
    long megabytes = argc > 2 ? std::atol(argv[2]) : 300;
    std::string self = fs::read_symlink("/proc/self/exe");
    std::string script = (fs::path(XGRAD_SOURCE_DIR) / "bench" / "load_memory.py").string();

    fs::path safetensors = folder / "load_memory.safetensors";
    write_safetensors(safetensors, megabytes, xg::kFloat32);
    fs::path bf16 = folder / "load_memory_bf16.safetensors";  // a Hugging Face checkpoint's dtype
    write_safetensors(bf16, megabytes, xg::kBFloat16);
    std::vector<fs::path> files{safetensors, bf16};
    for (const char* kind : {"zip", "legacy"}) {
        fs::path pt = folder / (std::string("load_memory_") + kind + ".pt");
        std::string command = "/usr/bin/python3 " + script + " " + pt.string() + " " +
                              std::to_string(megabytes) +
                              (kind == std::string("legacy") ? " --legacy" : "");
        if (std::system(command.c_str()) != 0) {
            std::fprintf(stderr, "load_memory: '%s' failed (is PyTorch installed?)\n",
                         command.c_str());
            return 1;
        }
        files.push_back(pt);
    }
    int failures = 0;
    for (const fs::path& file : files) {
        failures += run_self(self, file) != 0;
        fs::remove(file);
    }
    return failures == 0 ? 0 : 1;
}
