// The generators behind every random draw, and the thread setting shared with
// OpenBLAS.
//
// Each thread has its own generator, so threads never contend for one and a
// thread's draws do not depend on what other threads draw. Seeding rules:
// - the first thread to draw (normally main) starts from the global seed, which
//   is PyTorch's default until manual_seed changes it;
// - manual_seed(s) reseeds the calling thread's generator with s, makes s the
//   global seed and restarts the thread count;
// - any other thread, on its first draw, seeds from splitmix64(global seed + k)
//   where k = 1, 2, ... counts the threads that drew since the last manual_seed.
// A single-threaded program is therefore reproducible from manual_seed alone;
// threads that start drawing in a fixed order are too, and a thread that
// needs its own reproducible stream calls manual_seed itself.
#include <atomic>
#include <cmath>
#include <mutex>
#include <random>
#include <sstream>

#include "buffer_cache.hpp"
#include "internal.hpp"

extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace xg {

namespace {
// PyTorch's default CPU seed, so an unseeded run is still reproducible.
constexpr std::uint64_t kDefaultSeed = 67280421310721ULL;

std::mutex seed_mutex;  // guards the two below
std::uint64_t global_seed = kDefaultSeed;
std::uint64_t threads_seeded = 0;

// One step of splitmix64: spreads nearby seeds far apart.
std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::uint64_t seed_for_new_thread() {
    std::lock_guard lock(seed_mutex);
    std::uint64_t k = threads_seeded++;
    return k == 0 ? global_seed : mix(global_seed + k);
}

std::mt19937_64& generator() {
    thread_local std::mt19937_64 engine(seed_for_new_thread());
    return engine;
}

template <class T, class Distribution>
xt::xarray<T> draw(const Shape& shape, Distribution distribution) {
    auto values = xt::xarray<T>::from_shape(shape);
    std::mt19937_64& engine = generator();
    for (auto& v : values) v = static_cast<T>(distribution(engine));
    return values;
}

template <class Distribution>
Tensor draw_floating(const Shape& shape, Dtype dtype, const char* op, Distribution distribution) {
    switch (dtype) {
        case Dtype::Float32: return detail::wrap(draw<float>(shape, distribution));
        case Dtype::Float64: return detail::wrap(draw<double>(shape, distribution));
        default: break;
    }
    throw Error(fmt::format("{}: expected a floating-point dtype (got {})", op, dtype_name(dtype)));
}
}  // namespace

void manual_seed(std::uint64_t seed) {
    std::mt19937_64& engine = generator();  // counts this thread before the restart below
    {
        std::lock_guard lock(seed_mutex);
        global_seed = seed;
        threads_seeded = 1;  // this thread is number 0 of the new seed
    }
    engine.seed(seed);
}

std::string get_rng_state() {
    std::ostringstream out;
    out << generator();
    return out.str();
}

void set_rng_state(const std::string& state) {
    std::mt19937_64 restored;
    std::istringstream in(state);
    in >> restored;
    check(
        !in.fail(),
        "set_rng_state: expected a state from get_rng_state (got {} characters of something else)",
        state.size());
    generator() = restored;
}

std::uint64_t next_random_key() { return generator()(); }

Tensor randn(const Shape& shape, Dtype dtype) {
    return draw_floating(shape, dtype, "randn", std::normal_distribution<double>(0.0, 1.0));
}

Tensor rand(const Shape& shape, Dtype dtype) {
    return draw_floating(shape, dtype, "rand", std::uniform_real_distribution<double>(0.0, 1.0));
}

Tensor randint(std::int64_t low, std::int64_t high, const Shape& shape) {
    check(low < high, "randint: expected low < high (got {} and {})", low, high);
    return detail::wrap(
        draw<std::int64_t>(shape, std::uniform_int_distribution<std::int64_t>(low, high - 1)));
}

Tensor normal(double mean, double std, const Shape& shape, Dtype dtype) {
    check(std >= 0.0 && std::isfinite(std), "normal: expected std >= 0 (got {})", std);
    return draw_floating(shape, dtype, "normal", std::normal_distribution<double>(mean, std));
}

Tensor bernoulli(const Tensor& p) {
    return detail::visit_floating(p, "bernoulli", [&]<class T>(xt::xarray<T>& probabilities) {
        for (T q : probabilities) {
            check(q >= T(0) && q <= T(1),
                  "bernoulli: expected every probability in [0, 1] (got {})", q);
        }
        auto values = detail::empty_array<T>(probabilities.shape());
        std::uniform_real_distribution<double> uniform(0.0, 1.0);
        std::mt19937_64& engine = generator();
        const T* q = probabilities.data();
        for (std::size_t i = 0; i < values.size(); ++i)
            values.data()[i] = uniform(engine) < static_cast<double>(q[i]) ? T(1) : T(0);
        return detail::wrap(std::move(values));
    });
}

Tensor bernoulli(const Tensor& x, double p) {
    check(p >= 0.0 && p <= 1.0, "bernoulli: expected a probability in [0, 1] (got {})", p);
    check(x.defined(), "bernoulli: expected a defined tensor (got an undefined one)");
    return bernoulli(full(x.shape(), p, x.dtype()));
}

// As torch's under no_grad: no node is recorded. The new values replace the
// storage (set_data), so every handle, .grad and hook stays, and a backward
// that saved the old values still reads them.
Tensor& Tensor::uniform_(double from, double to) {
    check(from <= to, "uniform_: expected from <= to (got {} and {})", from, to);
    set_data(draw_floating(shape(), dtype(), "uniform_",
                           std::uniform_real_distribution<double>(from, to)));
    return *this;
}

Tensor& Tensor::normal_(double mean, double std) {
    set_data(normal(mean, std, shape(), dtype()));
    return *this;
}

namespace {
// Atomic: the thread pool reads it on every large kernel, from any thread.
std::atomic<int>& thread_setting() {
    static std::atomic<int> threads{openblas_get_num_threads()};
    return threads;
}
}  // namespace

void set_num_threads(int n) {
    check(n >= 1, "set_num_threads: expected at least 1 thread (got {})", n);
    openblas_set_num_threads(n);
    thread_setting() = n;
}

int get_num_threads() { return thread_setting(); }

}  // namespace xg
