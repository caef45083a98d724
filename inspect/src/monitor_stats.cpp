// GradientMonitor's statistics (monitor_stats.hpp). Loops read raw values: a
// sampled step of a large model reads millions of them, and the ops would
// build tensors for each.
#include "monitor_stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "xgrad/autograd.hpp"
#include "xgrad/detail/cpu_dispatch.hpp"
#include "xgrad/error.hpp"

// The statistics loops run over millions of values on a sampled step: they
// are compiled for AVX-512, AVX2 and baseline x86-64 (XG_CLONES_V4_V3).

namespace xg::inspect {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Calls f(pointer, count) on t's values: float32 and float64 in place, other
// dtypes through a float64 copy (no graph is recorded for it).
template <class F>
void with_values(const Tensor& t, F&& f) {
    auto call = [&](const Tensor& u, auto type) {
        const auto& a = u.data<decltype(type)>();
        f(a.data(), a.size());
    };
    if (t.dtype() == kFloat32) return call(t, float{});
    if (t.dtype() == kFloat64) return call(t, double{});
    NoGradGuard no_grad;
    call(t.detach().to(kFloat64), double{});
}

// The sum of term(i) for i in [0, n): in blocks of 4096 terms, each summed in
// T over 16 lanes (independent partial sums, so the loop vectorises where one
// running sum could not; float lanes go twice as wide as double ones), the
// blocks summed in double.
template <class T, class Term>
double lane_sum(std::size_t n, Term term) {
    constexpr std::size_t kLanes = 16, kBlock = 4096;
    double sum = 0;
    for (std::size_t start = 0; start < n; start += kBlock) {
        const std::size_t end = std::min(n, start + kBlock);
        T lanes[kLanes] = {};
        std::size_t i = start;
        for (; i + kLanes <= end; i += kLanes) {
            for (std::size_t k = 0; k < kLanes; ++k) lanes[k] += term(i + k);
        }
        for (; i < end; ++i) lanes[0] += term(i);
        for (T lane : lanes) sum += static_cast<double>(lane);
    }
    return sum;
}

}  // namespace

namespace detail {
XG_CLONES_V4_V3 double squares(const float* v, std::size_t n) {
    return lane_sum<float>(n, [v](std::size_t i) { return v[i] * v[i]; });
}
XG_CLONES_V4_V3 double squares(const double* v, std::size_t n) {
    return lane_sum<double>(n, [v](std::size_t i) { return v[i] * v[i]; });
}
}  // namespace detail

namespace {

double squares_of(const Tensor& t) {
    double sum = 0;
    with_values(t, [&](const auto* v, std::size_t n) { sum = detail::squares(v, n); });
    return sum;
}

// The sum of (a - b)^2 over two tensors of one dtype and size.
double distance_squared(const Tensor& a, const Tensor& b) {
    double sum = 0;
    with_values(a, [&](const auto* va, std::size_t n) {
        with_values(b, [&](const auto* vb, std::size_t m) {
            check(n == m, "GradientMonitor: expected a parameter to keep its {} values (got {})", m,
                  n);
            sum = lane_sum<double>(n, [va, vb](std::size_t i) {
                const double d = static_cast<double>(va[i]) - static_cast<double>(vb[i]);
                return d * d;
            });
        });
    });
    return sum;
}

// Which bin of h a value falls in; values outside its edges go to the end bins.
// A multiply per value, not a divide: a sampled step bins every activation.
struct Binner {
    double lo, scale, last;
    explicit Binner(const Histogram& h)
        : lo(h.edges.front()),
          scale(static_cast<double>(h.counts.size()) / (h.edges.back() - lo)),
          last(static_cast<double>(h.counts.size() - 1)) {}
    std::size_t operator()(double x) const {
        const double t = (x - lo) * scale;
        return static_cast<std::size_t>(t <= 0 ? 0 : t >= last ? last : t);
    }
};

Histogram empty_histogram(double lo, double hi, std::size_t bins) {
    if (lo == hi) lo -= 0.5, hi += 0.5;  // one value: a bin around it, as a plotter needs
    Histogram h;
    for (std::size_t i = 0; i <= bins; ++i)
        h.edges.push_back(lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(bins));
    h.edges.back() = hi;  // exactly, whatever the rounding of the steps
    h.counts.assign(bins, 0);
    return h;
}

// Sum, extremes and zeros of v[0, n) in one pass, per block of 4096 values: a
// block sums in T, in 16 lanes (the loop vectorises), the blocks in double. A non-finite
// value shows up in the extremes or the sum; the caller then takes the slow,
// per-value path.
struct Moments {
    double sum = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    std::int64_t zeros = 0;
};
template <class T>
Moments moments(const T* v, std::size_t n) {
    constexpr std::size_t kLanes = 16;  // independent partial results: the loop vectorises
    Moments m;
    for (std::size_t start = 0; start < n; start += 4096) {
        const std::size_t end = std::min(n, start + 4096);
        T sum[kLanes] = {}, zeros[kLanes] = {}, lo[kLanes], hi[kLanes];
        std::fill_n(lo, kLanes, v[start]), std::fill_n(hi, kLanes, v[start]);
        std::size_t i = start;
        for (; i + kLanes <= end; i += kLanes) {
            for (std::size_t k = 0; k < kLanes; ++k) {
                const T x = v[i + k];
                sum[k] += x;
                lo[k] = x < lo[k] ? x : lo[k];
                hi[k] = x > hi[k] ? x : hi[k];
                zeros[k] += x == T(0) ? T(1) : T(0);  // exact: at most 256 per lane
            }
        }
        for (; i < end; ++i) {
            sum[0] += v[i], zeros[0] += v[i] == T(0) ? T(1) : T(0);
            lo[0] = v[i] < lo[0] ? v[i] : lo[0], hi[0] = v[i] > hi[0] ? v[i] : hi[0];
        }
        for (std::size_t k = 0; k < kLanes; ++k) {
            m.sum += sum[k], m.zeros += static_cast<std::int64_t>(zeros[k]);
            m.lo = std::min(m.lo, double(lo[k])), m.hi = std::max(m.hi, double(hi[k]));
        }
    }
    return m;
}

// Squared deviations from `mean` and the histogram, a block of 4096 values at
// a time: first the bin of each value and the squared deviations, in lanes
// (both loops vectorise; the bins are Binner's arithmetic exactly), then the
// counts, from four arrays in turn so that consecutive values in one bin do
// not wait on each other's increment.
template <class T>
double deviations_and_histogram(const T* v, std::size_t n, double mean, Histogram& h) {
    constexpr std::size_t kBlock = 4096;
    const Binner bin(h);
    const std::size_t bins = h.counts.size();
    std::vector<std::int64_t> counts(4 * bins, 0);
    std::vector<std::int32_t> index(kBlock);
    double m2 = 0;
    for (std::size_t start = 0; start < n; start += kBlock) {
        const std::size_t size = std::min(kBlock, n - start);
        const T* x = v + start;
        for (std::size_t i = 0; i < size; ++i) {
            const double t = (static_cast<double>(x[i]) - bin.lo) * bin.scale;
            index[i] = static_cast<std::int32_t>(t <= 0 ? 0 : t >= bin.last ? bin.last : t);
        }
        const T mu = static_cast<T>(mean);
        m2 += lane_sum<T>(size, [x, mu](std::size_t i) { return (x[i] - mu) * (x[i] - mu); });
        for (std::size_t i = 0; i < size; ++i)
            ++counts[(i & 3) * bins + static_cast<std::size_t>(index[i])];
    }
    for (std::size_t b = 0; b < bins; ++b)
        h.counts[b] = counts[b] + counts[bins + b] + counts[2 * bins + b] + counts[3 * bins + b];
    return m2;
}

}  // namespace

namespace detail {
XG_CLONES_V4_V3 Moments fast_moments(const float* v, std::size_t n) { return moments(v, n); }
XG_CLONES_V4_V3 Moments fast_moments(const double* v, std::size_t n) { return moments(v, n); }
XG_CLONES_V4_V3 double fast_deviations(const float* v, std::size_t n, double mean, Histogram& h) {
    return deviations_and_histogram(v, n, mean, h);
}
XG_CLONES_V4_V3 double fast_deviations(const double* v, std::size_t n, double mean, Histogram& h) {
    return deviations_and_histogram(v, n, mean, h);
}
}  // namespace detail

namespace {

// The statistics of values that may include Inf and NaN, which are counted
// and left out: two plain passes (sums and extremes, then deviations and the
// histogram).
template <class T>
void nonfinite_stats(const T* v, std::size_t n, std::size_t bins, ActivationStats& s) {
    double sum = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
    std::int64_t finite = 0;
    s.zeros = s.nonfinite = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double x = v[i];
        if (!std::isfinite(x)) {
            ++s.nonfinite;
            continue;
        }
        ++finite, sum += x, lo = std::min(lo, x), hi = std::max(hi, x);
        if (x == 0) ++s.zeros;
    }
    if (finite == 0) return;
    s.mean = sum / static_cast<double>(finite), s.min = lo, s.max = hi;
    s.histogram = empty_histogram(lo, hi, bins);
    const Binner bin(s.histogram);
    double m2 = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double x = v[i];
        if (!std::isfinite(x)) continue;
        m2 += (x - s.mean) * (x - s.mean);
        ++s.histogram.counts[bin(x)];
    }
    s.std = finite > 1 ? std::sqrt(m2 / static_cast<double>(finite - 1)) : 0.0;
}

}  // namespace

namespace stats {

// Mean, std (accurate: squared deviations from the mean, where a running sum
// of squares cancels), zeros, extremes and the histogram over the extremes.
ActivationStats activation_stats(const Tensor& t, std::size_t bins) {
    ActivationStats s;
    s.numel = static_cast<std::int64_t>(t.numel());
    s.mean = s.std = s.min = s.max = kNaN;
    with_values(t, [&](const auto* v, std::size_t n) {
        if (n == 0) return;
        const Moments m = detail::fast_moments(v, n);
        if (!std::isfinite(m.sum) || !std::isfinite(m.lo) || !std::isfinite(m.hi))
            return nonfinite_stats(v, n, bins, s);
        s.zeros = m.zeros, s.mean = m.sum / static_cast<double>(n), s.min = m.lo, s.max = m.hi;
        s.histogram = empty_histogram(m.lo, m.hi, bins);
        const double m2 = detail::fast_deviations(v, n, s.mean, s.histogram);
        s.std = n > 1 ? std::sqrt(m2 / static_cast<double>(n - 1)) : 0.0;
    });
    return s;
}

// Chan et al.'s pairwise update of mean and squared deviations, so merging two
// calls gives the statistics of both together.
ActivationStats merged(const ActivationStats& a, const ActivationStats& b) {
    const double na = static_cast<double>(a.numel - a.nonfinite);
    const double nb = static_cast<double>(b.numel - b.nonfinite);
    ActivationStats out = na > 0 ? a : b;
    if (na > 0 && nb > 0) {
        const double n = na + nb, delta = b.mean - a.mean;
        const double m2 =
            a.std * a.std * (na - 1) + b.std * b.std * (nb - 1) + delta * delta * na * nb / n;
        out.mean = a.mean + delta * nb / n;
        out.std = std::sqrt(m2 / (n - 1));
        out.min = std::min(a.min, b.min), out.max = std::max(a.max, b.max);
        const Histogram& h = b.histogram;
        const Binner bin(out.histogram);
        for (std::size_t i = 0; i < h.counts.size(); ++i)
            out.histogram.counts[bin(0.5 * (h.edges[i] + h.edges[i + 1]))] += h.counts[i];
    }
    out.numel = a.numel + b.numel, out.zeros = a.zeros + b.zeros;
    out.nonfinite = a.nonfinite + b.nonfinite;
    return out;
}

double sum_of_squares(const Tensor& t) { return squares_of(t); }
double squared_distance(const Tensor& a, const Tensor& b) { return distance_squared(a, b); }

}  // namespace stats
}  // namespace xg::inspect
