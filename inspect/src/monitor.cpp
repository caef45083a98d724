// GradientMonitor (see monitor.hpp): statistics, the hooks of a sampled step,
// and the CSV and JSON Lines files. Loops read raw values: a sampled step of a
// large model reads millions of them, and the ops would build tensors for each.
#include "xgrad/inspect/monitor.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "xgrad/autograd.hpp"
#include "xgrad/error.hpp"

// The statistics loops run over millions of values on a sampled step: they are
// compiled for AVX-512, AVX2 and baseline x86-64 and the loader picks one, as
// core/src/cpu_dispatch.hpp does for the kernels (flatten: the templates they
// call are compiled for each target too). Not under ThreadSanitizer (the
// resolver runs before its runtime) nor with clang (the fuzzing build only,
// which refuses flatten on clones).
#if defined(__SANITIZE_THREAD__) || defined(__clang__)
#define XG_STATS_CLONES
#else
#define XG_STATS_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#endif

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
XG_STATS_CLONES double squares(const float* v, std::size_t n) {
    return lane_sum<float>(n, [v](std::size_t i) { return v[i] * v[i]; });
}
XG_STATS_CLONES double squares(const double* v, std::size_t n) {
    return lane_sum<double>(n, [v](std::size_t i) { return v[i] * v[i]; });
}
}  // namespace detail

namespace {

double sum_of_squares(const Tensor& t) {
    double sum = 0;
    with_values(t, [&](const auto* v, std::size_t n) { sum = detail::squares(v, n); });
    return sum;
}

// The sum of (a - b)^2 over two tensors of one dtype and size.
double squared_distance(const Tensor& a, const Tensor& b) {
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
XG_STATS_CLONES Moments fast_moments(const float* v, std::size_t n) { return moments(v, n); }
XG_STATS_CLONES Moments fast_moments(const double* v, std::size_t n) { return moments(v, n); }
XG_STATS_CLONES double fast_deviations(const float* v, std::size_t n, double mean, Histogram& h) {
    return deviations_and_histogram(v, n, mean, h);
}
XG_STATS_CLONES double fast_deviations(const double* v, std::size_t n, double mean, Histogram& h) {
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

// The first tensor of a module's output, or undefined.
Tensor first_tensor(const nn::Value& v) {
    if (v.is_tensor()) return v.tensor();
    if (v.is_list()) {
        for (const nn::Value& item : v.list())
            if (item.is_tensor()) return item.tensor();
    }
    return Tensor();
}

std::optional<FlagKind> classify(double norm, const MonitorOptions& o) {
    if (!std::isfinite(norm)) return FlagKind::NonFinite;
    if (norm < o.vanishing) return FlagKind::Vanishing;
    if (norm > o.exploding) return FlagKind::Exploding;
    return std::nullopt;
}

}  // namespace

std::string to_string(FlagKind kind) {
    static const char* const names[] = {"vanishing", "exploding", "nonfinite"};
    return names[static_cast<int>(kind)];
}

struct GradientMonitor::State {
    nn::Module* model;
    MonitorOptions options;
    std::size_t step = 0;
    bool removed = false, hooked = false;  // hooked: begin_step installed this step's hooks
    std::uint64_t generation = 0;          // of the hooks: a graph may outlive its step
    std::vector<double> losses;
    std::vector<StepRecord> records;
    std::vector<RemovableHandle> hooks;
    std::vector<ModuleStats> pending;  // this step's, one per watched module

    bool sampled() const { return !removed && step % options.every == 0; }

    void unhook() {
        for (RemovableHandle& h : hooks) h.remove();
        hooks.clear();
        hooked = false;
    }

    void detach() {
        unhook();
        pending.clear();
        removed = true;
    }

    void on_output(ModuleStats* m, const nn::Value& output) {
        if (!m) return;
        ++m->calls;
        const Tensor t = first_tensor(output);
        if (!t.defined()) return;
        ActivationStats s = activation_stats(t, options.bins);
        m->activation = m->activation ? merged(*m->activation, s) : std::move(s);
    }

    // Gradients of several outputs, or of several calls, add up as one vector's norm.
    void on_grad_output(ModuleStats* m, const std::vector<Tensor>& grads) {
        if (!m) return;
        std::optional<double>& norm = m->grad_output_norm;
        for (const Tensor& g : grads)
            if (g.defined()) norm = std::sqrt(sum_of_squares(g) + (norm ? *norm * *norm : 0.0));
    }

    // The hooks of this step's calls, not of a graph kept from an earlier step.
    ModuleStats* current(std::uint64_t of, std::size_t i) {
        return hooked && of == generation ? &pending[i] : nullptr;
    }

    // Hooks capture the state weakly: a backward may outlive the monitor.
    void hook(const std::weak_ptr<State>& self) {
        auto watched = model->named_modules();
        if (watched.size() > 1)
            watched.erase(watched.begin());
        else
            watched.front().first = watched.front().second->name();
        pending.clear();
        const std::uint64_t g = ++generation;
        for (std::size_t i = 0; i < watched.size(); ++i) {
            nn::Module& m = *watched[i].second;
            pending.push_back({watched[i].first, m.name(), 0, std::nullopt, std::nullopt});
            hooks.push_back(m.register_forward_hook(
                [self, g, i](nn::Module&, const nn::Args&, const nn::Value& output) {
                    if (auto s = self.lock()) s->on_output(s->current(g, i), output);
                }));
            hooks.push_back(m.register_full_backward_pre_hook(
                [self, g, i](nn::Module&, const std::vector<Tensor>& grad_output) {
                    if (auto s = self.lock()) s->on_grad_output(s->current(g, i), grad_output);
                }));
        }
        hooked = true;
    }

    // Gradient and parameter norms before the update, ratios after it; the
    // modules the hooks saw called.
    StepRecord record(const std::function<void()>& update, double loss,
                      std::vector<ModuleStats> modules) {
        StepRecord r{step, loss, {}, {}};
        std::vector<Tensor> before;  // copies in the parameter's own dtype
        for (const auto& [name, p] : model->named_parameters()) {
            ParamStats s{name, p.shape(), std::nullopt, 0, std::nullopt};
            if (const Tensor g = p.grad(); g.defined()) s.grad_norm = std::sqrt(sum_of_squares(g));
            s.param_norm = std::sqrt(sum_of_squares(p));
            before.push_back(p.detach().clone());
            r.params.push_back(std::move(s));
        }
        const auto params = model->parameters();
        update();
        for (std::size_t i = 0; i < before.size(); ++i) {
            if (r.params[i].param_norm == 0) continue;
            r.params[i].update_ratio =
                std::sqrt(squared_distance(params[i], before[i])) / r.params[i].param_norm;
        }
        for (ModuleStats& m : modules)
            if (m.calls > 0) r.modules.push_back(std::move(m));
        return r;
    }
};

GradientMonitor::GradientMonitor(nn::Module& model, MonitorOptions options)
    : state_(std::make_shared<State>()) {
    check(options.every >= 1, "GradientMonitor: expected every >= 1 (got {})", options.every);
    check(options.bins >= 1, "GradientMonitor: expected bins >= 1 (got {})", options.bins);
    state_->model = &model;
    state_->options = options;
}

GradientMonitor::~GradientMonitor() {
    if (state_) remove();
}

void GradientMonitor::begin_step() {
    State& s = *state_;
    if (s.sampled() && s.options.activations && !s.hooked) s.hook(state_);
}

void GradientMonitor::step(optim::Optimizer& optimizer, double loss) {
    step([&optimizer] { optimizer.step(); }, loss);
}

void GradientMonitor::step(optim::Optimizer& optimizer, const Tensor& loss) {
    step(optimizer, loss.item<double>());
}

void GradientMonitor::step(const std::function<void()>& update, double loss) {
    State& s = *state_;
    s.unhook();  // backward has run: the hooks have nothing left to see
    std::vector<ModuleStats> modules = std::exchange(s.pending, {});  // also if update throws
    if (s.removed) return update();
    if (s.sampled())
        s.records.push_back(s.record(update, loss, std::move(modules)));
    else
        update();
    s.losses.push_back(loss);
    ++s.step;
}

bool GradientMonitor::sampled() const { return state_->sampled(); }
std::size_t GradientMonitor::steps() const { return state_->step; }
const MonitorOptions& GradientMonitor::options() const { return state_->options; }
const std::vector<double>& GradientMonitor::losses() const { return state_->losses; }
const std::vector<StepRecord>& GradientMonitor::records() const { return state_->records; }

std::vector<Flag> GradientMonitor::flags() const {
    std::vector<Flag> out;
    auto add = [&](std::size_t step, const std::string& name, const char* source,
                   const std::optional<double>& norm) {
        if (!norm) return;
        if (auto kind = classify(*norm, state_->options))
            out.push_back({step, name, source, *kind, *norm});
    };
    for (const StepRecord& r : state_->records) {
        for (const ParamStats& p : r.params) add(r.step, p.name, "param", p.grad_norm);
        for (const ModuleStats& m : r.modules) add(r.step, m.name, "module", m.grad_output_norm);
    }
    return out;
}

void GradientMonitor::remove() { state_->detach(); }

bool GradientMonitor::removed() const { return state_->removed; }

RemovableHandle GradientMonitor::handle() const {
    return RemovableHandle([weak = std::weak_ptr<State>(state_)] {
        if (auto s = weak.lock()) s->detach();
    });
}

// ---- files ----

namespace {

// The shortest text that reads back as the same double; a missing value is an
// empty CSV field, and JSON, which has no NaN or Inf, writes null for those too.
std::string csv_number(std::optional<double> v) { return v ? fmt::format("{}", *v) : ""; }
std::string json_number(std::optional<double> v) {
    return v && std::isfinite(*v) ? fmt::format("{}", *v) : "null";
}

std::string csv_field(const std::string& text) {
    if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
    std::string out = "\"";
    for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string json_string(const std::string& text) {
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\')
            out += '\\', out += static_cast<char>(c);
        else if (c < 0x20)
            out += fmt::format("\\u{:04x}", c);
        else
            out += static_cast<char>(c);
    }
    return out + "\"";
}

template <class T>
std::string json_array(const std::vector<T>& values) {
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += json_number(static_cast<double>(values[i]));
    }
    return out + "]";
}

std::string json_activation(const ActivationStats& a) {
    return fmt::format(
        R"({{"numel":{},"zeros":{},"nonfinite":{},"mean":{},"std":{},"min":{},"max":{},)"
        R"("histogram":{{"edges":{},"counts":{}}}}})",
        a.numel, a.zeros, a.nonfinite, json_number(a.mean), json_number(a.std), json_number(a.min),
        json_number(a.max), json_array(a.histogram.edges), json_array(a.histogram.counts));
}

std::string json_record(const StepRecord& r) {
    std::string params, modules;
    for (const ParamStats& p : r.params) {
        params +=
            fmt::format(R"({}{{"name":{},"grad_norm":{},"param_norm":{},"update_ratio":{}}})",
                        params.empty() ? "" : ",", json_string(p.name), json_number(p.grad_norm),
                        json_number(p.param_norm), json_number(p.update_ratio));
    }
    for (const ModuleStats& m : r.modules) {
        modules += fmt::format(
            R"({}{{"name":{},"type":{},"calls":{},"grad_output_norm":{},"activation":{}}})",
            modules.empty() ? "" : ",", json_string(m.name), json_string(m.type), m.calls,
            json_number(m.grad_output_norm),
            m.activation ? json_activation(*m.activation) : "null");
    }
    return fmt::format(R"(,"params":[{}],"modules":[{}])", params, modules);
}

}  // namespace

void GradientMonitor::write_csv(const std::string& path) const {
    std::string out =
        "step,name,kind,grad_norm,param_norm,update_ratio,grad_output_norm,act_mean,act_std,"
        "act_zero_fraction,act_min,act_max\n";
    for (const StepRecord& r : state_->records) {
        for (const ParamStats& p : r.params) {
            out += fmt::format("{},{},param,{},{},{},,,,,,\n", r.step, csv_field(p.name),
                               csv_number(p.grad_norm), csv_number(p.param_norm),
                               csv_number(p.update_ratio));
        }
        for (const ModuleStats& m : r.modules) {
            std::string act = ",,,,";
            if (const auto& a = m.activation)
                act = fmt::format("{},{},{},{},{}", csv_number(a->mean), csv_number(a->std),
                                  csv_number(a->zero_fraction()), csv_number(a->min),
                                  csv_number(a->max));
            out += fmt::format("{},{},module,,,,{},{}\n", r.step, csv_field(m.name),
                               csv_number(m.grad_output_norm), act);
        }
    }
    detail::write_text_file(path, out, "write_csv");
}

void GradientMonitor::write_jsonl(const std::string& path) const {
    std::string out;
    auto record = state_->records.begin();
    for (std::size_t step = 0; step < state_->losses.size(); ++step) {
        const bool sampled = record != state_->records.end() && record->step == step;
        out += fmt::format(R"({{"step":{},"loss":{},"sampled":{})", step,
                           json_number(state_->losses[step]), sampled);
        if (sampled) out += json_record(*record++);
        out += "}\n";
    }
    detail::write_text_file(path, out, "write_jsonl");
}

namespace detail {

void write_text_file(const std::string& path, const std::string& text, const char* op) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    check(out.is_open(), "{}: expected a path that can be written (got '{}')", op, path);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    check(!out.fail(), "{}: writing '{}' failed", op, path);
}

}  // namespace detail

}  // namespace xg::inspect
