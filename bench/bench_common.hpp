// Shared by the benchmark programs: flags, size presets, medians, peak RSS and
// the allocation counter that count_allocations.cpp's operator new bumps.
// C++17, so the libtorch program can use it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace bench {

extern std::atomic<long> allocations;  // count_allocations.cpp; stays 0 without it

// The benchmarked step: an FFN block on x [tokens, d_model], MSE loss, backward,
// Adam, zero_grad. The presets are the rows of issue 8's table.
struct Config {
    std::string size = "tiny", variant = "relu";
    long d_model = 16, d_ff = 64, tokens = 32;
    int threads = 1, steps = 200, warmup = 20;
    double dropout = 0.1;
    bool input_grad = true;  // x requires grad, as for a block inside a network
};

inline void usage(const char* program) {
    std::fprintf(stderr,
                 "usage: %s [--size tiny|small|medium|large] [--d-model N] [--d-ff N] "
                 "[--tokens N]\n  [--variant relu|gelu|silu|swiglu|geglu|reglu] [--threads N] "
                 "[--steps N] [--warmup N]\n  [--dropout P] [--input-grad 0|1]\n",
                 program);
}

inline Config parse(int argc, char** argv) {
    static const std::map<std::string, std::vector<long>> presets = {{"tiny", {16, 64, 32}},
                                                                     {"small", {128, 512, 256}},
                                                                     {"medium", {512, 2048, 2048}},
                                                                     {"large", {1024, 4096, 4096}}};
    Config c;
    std::map<std::string, std::string> given;
    for (int i = 1; i < argc; ++i) {
        std::string flag = argv[i];
        if (flag == "--help" || flag == "-h" || flag.rfind("--", 0) != 0 || i + 1 >= argc) {
            usage(argv[0]);
            std::exit(flag == "--help" || flag == "-h" ? 0 : 2);
        }
        given[flag.substr(2)] = argv[++i];
    }
    auto take = [&](const char* name, auto& field) {
        auto it = given.find(name);
        if (it == given.end()) return;
        using F = std::decay_t<decltype(field)>;
        if constexpr (std::is_same_v<F, std::string>)
            field = it->second;
        else if constexpr (std::is_same_v<F, double>)
            field = std::stod(it->second);
        else if constexpr (std::is_same_v<F, bool>)
            field = it->second != "0";
        else
            field = static_cast<F>(std::stol(it->second));
        given.erase(it);
    };
    take("size", c.size);
    auto preset = presets.find(c.size);
    if (preset == presets.end()) {
        std::fprintf(stderr, "unknown size '%s'\n", c.size.c_str());
        std::exit(2);
    }
    c.d_model = preset->second[0];
    c.d_ff = preset->second[1];
    c.tokens = preset->second[2];
    take("d-model", c.d_model);
    take("d-ff", c.d_ff);
    take("tokens", c.tokens);
    take("variant", c.variant);
    take("threads", c.threads);
    take("steps", c.steps);
    take("warmup", c.warmup);
    take("dropout", c.dropout);
    take("input-grad", c.input_grad);
    if (!given.empty()) {
        std::fprintf(stderr, "unknown flag --%s\n", given.begin()->first.c_str());
        usage(argv[0]);
        std::exit(2);
    }
    return c;
}

inline bool gated(const Config& c) {
    return c.variant == "swiglu" || c.variant == "geglu" || c.variant == "reglu";
}

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

inline double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double peak_rss_mib() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

inline long minor_faults() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_minflt;
}

// Runs `body` warmup + steps times; returns the median ms, and the allocations
// and minor page faults per timed call.
template <class F>
double timed(const Config& c, int steps, F body, double* allocs_per_call = nullptr,
             double* faults_per_call = nullptr) {
    for (int i = 0; i < c.warmup; ++i) body();
    std::vector<double> times;
    times.reserve(static_cast<std::size_t>(steps));
    long allocs0 = allocations.load(), faults0 = minor_faults();
    for (int i = 0; i < steps; ++i) {
        auto start = Clock::now();
        body();
        times.push_back(ms_since(start));
    }
    if (allocs_per_call)
        *allocs_per_call = static_cast<double>(allocations.load() - allocs0) / steps;
    if (faults_per_call) *faults_per_call = static_cast<double>(minor_faults() - faults0) / steps;
    times.reserve(0);
    return median(times);
}

// One machine-readable line; compare.sh reads the key=value pairs (`more`: further pairs).
inline void report(const char* impl, const Config& c, double step_ms, double forward_ms,
                   double allocs, double faults, const char* more = "") {
    std::printf(
        "impl=%s size=%s variant=%s d_model=%ld d_ff=%ld tokens=%ld threads=%d steps=%d "
        "step_ms=%.4f forward_ms=%.4f allocs_per_step=%.1f faults_per_step=%.1f "
        "peak_rss_mib=%.1f%s\n",
        impl, c.size.c_str(), c.variant.c_str(), c.d_model, c.d_ff, c.tokens, c.threads, c.steps,
        step_ms, forward_ms, allocs, faults, peak_rss_mib(), more);
}

// The Transformer encoder layer step (encoder_step.cpp, torch_encoder_step.cpp):
// issue 18's row, PyTorch's default layout [seq, batch, d_model].
struct EncoderConfig {
    long d_model = 256, nhead = 4, d_ff = 1024, batch = 16, seq = 128;
    double dropout = 0.1;
    int threads = 1, steps = 20, warmup = 3;
};

inline EncoderConfig parse_encoder(int argc, char** argv) {
    EncoderConfig c;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        long value = std::stol(argv[i + 1]);
        if (flag == "--threads")
            c.threads = static_cast<int>(value);
        else if (flag == "--steps")
            c.steps = static_cast<int>(value);
        else if (flag == "--warmup")
            c.warmup = static_cast<int>(value);
        else {
            std::fprintf(stderr, "usage: %s [--threads N] [--steps N] [--warmup N]\n", argv[0]);
            std::exit(2);
        }
    }
    return c;
}

template <class F>
double timed_steps(const EncoderConfig& c, F step) {
    for (int i = 0; i < c.warmup; ++i) step();
    std::vector<double> times;
    for (int i = 0; i < c.steps; ++i) {
        auto start = Clock::now();
        step();
        times.push_back(ms_since(start));
    }
    return median(times);
}

// The kernels OpenBLAS picked (its own name for them), or "?" when not OpenBLAS.
extern "C" char* openblas_get_corename(void) __attribute__((weak));

// allocs: operator new calls per steady-state step, or negative when not counted.
inline void report_encoder(const char* impl, const EncoderConfig& c, double step_ms,
                           double allocs = -1) {
    std::printf(
        "impl=%s d_model=%ld nhead=%ld d_ff=%ld batch=%ld seq=%ld threads=%d steps=%d "
        "step_ms=%.3f peak_rss_mib=%.1f blas_core=%s",
        impl, c.d_model, c.nhead, c.d_ff, c.batch, c.seq, c.threads, c.steps, step_ms,
        peak_rss_mib(), openblas_get_corename ? openblas_get_corename() : "?");
    if (allocs >= 0) std::printf(" allocs_per_step=%.1f", allocs);
    std::printf("\n");
}

}  // namespace bench
