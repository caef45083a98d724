// GradientMonitor (see monitor.hpp): the hooks of a sampled step, its record,
// and the CSV and JSON Lines files. The statistics are monitor_stats.cpp's.
#include "xgrad/inspect/monitor.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "monitor_stats.hpp"
#include "xgrad/autograd.hpp"
#include "xgrad/error.hpp"

namespace xg::inspect {

namespace {

using stats::activation_stats;
using stats::merged;
using stats::squared_distance;
using stats::sum_of_squares;

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
