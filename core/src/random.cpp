// The global generator behind every random draw, and the thread setting shared
// with OpenBLAS.
#include <mutex>
#include <random>
#include <sstream>

#include "internal.hpp"

extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}

namespace xg {

namespace {
// PyTorch's default CPU seed, so an unseeded run is still reproducible.
constexpr std::uint64_t kDefaultSeed = 67280421310721ULL;

std::mutex generator_mutex;
std::mt19937_64& generator() {
    static std::mt19937_64 engine(kDefaultSeed);
    return engine;
}

template <class T, class Distribution>
xt::xarray<T> draw(const Shape& shape, Distribution distribution) {
    auto values = xt::xarray<T>::from_shape(shape);
    std::lock_guard lock(generator_mutex);
    for (auto& v : values) v = static_cast<T>(distribution(generator()));
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
    std::lock_guard lock(generator_mutex);
    generator().seed(seed);
}

std::string get_rng_state() {
    std::lock_guard lock(generator_mutex);
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
    std::lock_guard lock(generator_mutex);
    generator() = restored;
}

std::uint64_t next_random_key() {
    std::lock_guard lock(generator_mutex);
    return generator()();
}

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

namespace {
int& thread_setting() {
    static int threads = openblas_get_num_threads();
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
