// xg::inspect::GradientMonitor: gradient and activation telemetry for a
// training loop, the numbers behind "is this network still learning?".
//
// Every `every` steps (a sampled step) it records, per parameter, the gradient
// norm, the parameter norm and the update / parameter ratio of the optimizer
// step; and per module the norm of the gradient reaching its output and the
// statistics of its forward output (mean, std, the fraction of exact zeros that
// dead ReLU units leave, min, max, a fixed-bin histogram). Gradient norms below
// `vanishing` or above `exploding` (or not finite) are flagged.
//
// Module hooks exist only between begin_step() and step() of a sampled step:
// a module with hooks takes its slower general path (FeedForward, for one, does
// not fuse its middle ops while its parts have hooks), so steps that are not
// sampled run exactly as without a monitor. A training step reads:
//
//   GradientMonitor monitor(*model, {.every = 10});
//   for (...) {
//       monitor.begin_step();                    // hooks, on sampled steps only
//       Tensor loss = loss_fn((*model)(x), y);
//       loss.backward();
//       monitor.step(optimizer, loss);           // records, optimizer.step(), unhooks
//       optimizer.zero_grad();
//   }
//   monitor.write_csv("grads.csv");
//
// Statistics are computed in float64 from each tensor's values (float16 and
// bfloat16 ones converted first); values are read, never changed, and no graph
// is recorded. The model must outlive the monitor's sampled steps; the monitor
// may outlive the model once it has been removed or destroyed its hooks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "xgrad/nn/module.hpp"
#include "xgrad/optim/optimizer.hpp"
#include "xgrad/removable_handle.hpp"
#include "xgrad/tensor.hpp"

namespace xg::inspect {

struct MonitorOptions {
    std::size_t every = 1;    // sample steps 0, every, 2 * every, ... (>= 1)
    std::size_t bins = 20;    // activation histogram bins (>= 1)
    double vanishing = 1e-7;  // a gradient norm below this is flagged
    double exploding = 1e2;   // and one above this
    // Module hooks on sampled steps (activations and grad_output norms); false
    // records parameters only and never hooks a module.
    bool activations = true;
};

// `counts[i]` values fell in [edges[i], edges[i + 1]) (the last bin includes
// its right edge). The bins span the first call's [min, max] (widened by 0.5
// each way when min == max); a later call of the same module in the same step
// adds its counts at its bins' centres, clamped into the end bins.
struct Histogram {
    std::vector<double> edges;  // bins + 1, or empty when no value was finite
    std::vector<std::int64_t> counts;
};

// A module's forward output over every call in the step. mean, std (divided by
// n - 1, as torch.std), min, max and the histogram cover the finite values;
// they are NaN (the histogram empty) when there are none.
struct ActivationStats {
    std::int64_t numel = 0;      // every value seen
    std::int64_t zeros = 0;      // exactly 0.0 (or -0.0)
    std::int64_t nonfinite = 0;  // NaN or +-Inf
    double mean = 0, std = 0, min = 0, max = 0;
    Histogram histogram;
    double zero_fraction() const { return numel ? static_cast<double>(zeros) / numel : 0.0; }
};

struct ParamStats {
    std::string name;  // as named_parameters() gives it
    Shape shape;
    std::optional<double> grad_norm;  // L2; nullopt when the parameter has no gradient
    double param_norm = 0;            // L2, before the update
    std::optional<double>
        update_ratio;  // ||after - before|| / ||before||; nullopt when ||before|| = 0
};

// The modules watched are those named_modules() lists, without the root when
// it has children (its output is its last child's, or built from theirs); a
// root without children is watched under its class name. A module called
// several times in one step (shared, or a forward per micro-batch) merges its
// calls; one not called in the step is not listed.
struct ModuleStats {
    std::string name, type;
    std::size_t calls = 0;
    // L2 over every gradient reaching the module's outputs, over every call;
    // nullopt when backward reached none of them.
    std::optional<double> grad_output_norm;
    // Of its first tensor output (a module returning a tuple: its first tensor);
    // nullopt when it returned none.
    std::optional<ActivationStats> activation;
};

struct StepRecord {
    std::size_t step = 0;  // counting every step() from 0
    double loss = 0;
    std::vector<ParamStats> params;    // named_parameters() order
    std::vector<ModuleStats> modules;  // named_modules() order
};

enum class FlagKind { Vanishing, Exploding, NonFinite };
std::string to_string(FlagKind kind);  // "vanishing", "exploding", "nonfinite"

// A parameter's grad_norm or a module's grad_output_norm outside the thresholds.
struct Flag {
    std::size_t step = 0;
    std::string name;
    std::string source;  // "param" or "module", the CSV's kind column
    FlagKind kind = FlagKind::Vanishing;
    double value = 0;
};

class GradientMonitor {
public:
    explicit GradientMonitor(nn::Module& model, MonitorOptions options = {});
    ~GradientMonitor();  // remove()
    GradientMonitor(GradientMonitor&&) noexcept = default;
    GradientMonitor& operator=(GradientMonitor&&) = delete;
    GradientMonitor(const GradientMonitor&) = delete;
    GradientMonitor& operator=(const GradientMonitor&) = delete;

    // Before the forward: on a sampled step, hooks every watched module (once,
    // however often it is called). Without it a sampled step records parameters only.
    void begin_step();
    // After backward: removes the hooks, and on a sampled step records the
    // gradients and parameters, runs the update, records the update ratios and
    // appends the step's record. Every step's loss is kept. If the update
    // throws, the step is neither recorded nor counted, and the hooks are gone.
    void step(optim::Optimizer& optimizer, double loss);
    void step(optim::Optimizer& optimizer, const Tensor& loss);  // a one-element loss
    // The same around any update (clipping, then an optimizer, say).
    void step(const std::function<void()>& update, double loss);

    bool sampled() const;       // whether the current step is sampled
    std::size_t steps() const;  // step() calls so far
    const MonitorOptions& options() const;
    const std::vector<double>& losses() const;       // one per step
    const std::vector<StepRecord>& records() const;  // one per sampled step
    std::vector<Flag> flags() const;                 // in record order: parameters, then modules

    // Files throw xg::Error naming the path when they cannot be written.
    // CSV: a header, then per sampled step one row per parameter and one per
    // module: step,name,kind,grad_norm,param_norm,update_ratio,grad_output_norm,
    // act_mean,act_std,act_zero_fraction,act_min,act_max (a field that does not
    // apply, or was not recorded, is empty).
    void write_csv(const std::string& path) const;
    // JSON Lines: one object per step, {"step", "loss", "sampled"}, and on a
    // sampled step its "params" and "modules" (histograms included) under the
    // names above; NaN, Inf and missing values are null.
    void write_jsonl(const std::string& path) const;

    // Detaches the monitor: removes its hooks now and installs none again;
    // step() then only runs the update. Idempotent; records stay readable.
    void remove();
    bool removed() const;
    // remove() as a handle, which is safe to call after the monitor is gone.
    RemovableHandle handle() const;

private:
    struct State;
    std::shared_ptr<State> state_;
};

namespace detail {
// Writes `text` to `path` (truncating); an xg::Error "<op>: ..." names the path on failure.
void write_text_file(const std::string& path, const std::string& text, const char* op);
}  // namespace detail

}  // namespace xg::inspect
