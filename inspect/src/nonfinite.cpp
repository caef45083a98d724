// trace_nonfinite: hooks that check every module's outputs and gradients, and
// a ring of the last frames that says what led to the first Inf or NaN.
#include "xgrad/inspect/nonfinite.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace xg::inspect {

namespace {

// ---- the values ----

// An IEEE float is Inf or NaN exactly when its exponent bits are all ones, so
// one pass keeps the largest exponent field and compares it once at the end
// (a max reduction, with no branch per element).
template <class T, class Bits, class GetBits>
bool exponents_finite(const void* data, std::size_t n, Bits exponent, GetBits bits) {
    const T* values = static_cast<const T*>(data);
    Bits largest = 0;
    for (std::size_t i = 0; i < n; ++i)
        largest = std::max<Bits>(largest, static_cast<Bits>(bits(values[i]) & exponent));
    return largest != exponent;
}

bool all_finite(const Tensor& t) {
    const void* data = t.data_ptr();
    const std::size_t n = t.numel();
    switch (t.dtype()) {
        case Dtype::Float32:
            return exponents_finite<float, std::uint32_t>(
                data, n, 0x7F800000u, [](float v) { return std::bit_cast<std::uint32_t>(v); });
        case Dtype::Float64:
            return exponents_finite<double, std::uint64_t>(
                data, n, 0x7FF0000000000000u,
                [](double v) { return std::bit_cast<std::uint64_t>(v); });
        case Dtype::Float16:
            return exponents_finite<Half, std::uint16_t>(data, n, 0x7C00u,
                                                         [](Half v) { return v.bits; });
        case Dtype::BFloat16:
            return exponents_finite<BFloat16, std::uint16_t>(data, n, 0x7F80u,
                                                             [](BFloat16 v) { return v.bits; });
        default: return true;  // integers and bools
    }
}

template <class T>
void abs_range_of(const void* data, std::size_t n, double& lo, double& hi) {
    const T* values = static_cast<const T*>(data);
    for (std::size_t i = 0; i < n; ++i) {
        const double a = std::fabs(static_cast<double>(values[i]));
        if (std::isnan(a)) {
            lo = hi = a;
            return;
        }
        lo = std::min(lo, a);
        hi = std::max(hi, a);
    }
}

// "abs min abs max" as PyTorch's x.abs().min() and .max(): NaN when any value is.
std::string abs_range(const Tensor& t) {
    if (t.numel() == 0) return fmt::format("{:>8} {:>8}", "--", "--");
    double lo = std::numeric_limits<double>::infinity(), hi = 0.0;
    const void* data = t.data_ptr();
    const std::size_t n = t.numel();
    switch (t.dtype()) {
        case Dtype::Float32: abs_range_of<float>(data, n, lo, hi); break;
        case Dtype::Float64: abs_range_of<double>(data, n, lo, hi); break;
        case Dtype::Float16: abs_range_of<Half>(data, n, lo, hi); break;
        case Dtype::BFloat16: abs_range_of<BFloat16>(data, n, lo, hi); break;
        case Dtype::Int64: abs_range_of<std::int64_t>(data, n, lo, hi); break;
        case Dtype::Int32: abs_range_of<std::int32_t>(data, n, lo, hi); break;
        case Dtype::Int16: abs_range_of<std::int16_t>(data, n, lo, hi); break;
        case Dtype::Int8: abs_range_of<std::int8_t>(data, n, lo, hi); break;
        case Dtype::UInt8: abs_range_of<std::uint8_t>(data, n, lo, hi); break;
        case Dtype::Bool: abs_range_of<bool>(data, n, lo, hi); break;
    }
    return fmt::format("{:>8.2e} {:>8.2e}", lo, hi);
}

// Every tensor in a call's value, as a detached handle: the same values, no
// copy, and no hold on the graph (whose nodes hold the backward hooks, which
// hold the tracer: a frame keeping a node would keep itself alive).
void collect_detached(const nn::Value& value, std::vector<Tensor>& out) {
    if (value.is_tensor()) {
        if (value.tensor().defined()) out.push_back(value.tensor().detach());
    } else if (value.is_list()) {
        for (const nn::Value& item : value.list()) collect_detached(item, out);
    }
}

void collect_detached(const std::vector<Tensor>& grads, std::vector<Tensor>& out) {
    for (const Tensor& g : grads) out.push_back(g.defined() ? g.detach() : Tensor());
}

// ---- the frames ----

enum class Phase { Forward, Backward };

// A module as the frames name it, with its own parameters (read when a report is made).
struct ModuleInfo {
    std::string path, type;
    std::vector<std::pair<std::string, Tensor>> weights;
};

// A forward call (inputs: its tensor arguments, positional then keyword;
// outputs: its output tensors) or a backward step (inputs: grad_output;
// outputs: grad_input, undefined where no gradient flows).
struct Frame {
    const ModuleInfo* module = nullptr;
    Phase phase = Phase::Forward;
    std::vector<Tensor> inputs, outputs;
};

std::string input_label(const Frame& frame, std::size_t i) {
    return fmt::format("{}[{}]", frame.phase == Phase::Forward ? "input" : "grad_output", i);
}

std::string output_label(const Frame& frame, std::size_t i) {
    if (frame.phase == Phase::Backward) return fmt::format("grad_input[{}]", i);
    return frame.outputs.size() == 1 ? "output" : fmt::format("output[{}]", i);
}

std::string describe(const ModuleInfo& module) {
    if (module.path.empty()) return fmt::format("the model ({})", module.type);
    return fmt::format("'{}' ({})", module.path, module.type);
}

// HF's layout: a title line, then "abs-min abs-max label" per tensor.
std::string show_frame(const Frame& frame) {
    const ModuleInfo& m = *frame.module;
    std::string out = fmt::format("{:18}{}{} ({})\n", "", m.path.empty() ? "" : m.path + " ",
                                  m.type, frame.phase == Phase::Forward ? "forward" : "backward");
    for (const auto& [name, weight] : m.weights) {
        if (weight.defined()) out += fmt::format("{} {}\n", abs_range(weight), name);
    }
    for (std::size_t i = 0; i < frame.inputs.size(); ++i) {
        if (frame.inputs[i].defined())
            out += fmt::format("{} {}\n", abs_range(frame.inputs[i]), input_label(frame, i));
    }
    for (std::size_t i = 0; i < frame.outputs.size(); ++i) {
        if (frame.outputs[i].defined())
            out += fmt::format("{} {}\n", abs_range(frame.outputs[i]), output_label(frame, i));
    }
    return out;
}

class Tracer {
public:
    explicit Tracer(std::size_t frames) : ring_(frames) {}

    const ModuleInfo* add_module(const std::string& path, const nn::Module& module) {
        return &modules_.emplace_back(
            ModuleInfo{path, module.name(), module.named_parameters("", false)});
    }

    void forward(const ModuleInfo& module, const nn::Args& args, const nn::Kwargs& kwargs,
                 const nn::Value& output) {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        Frame& frame = push(module, Phase::Forward);
        for (const nn::Value& arg : args) collect_detached(arg, frame.inputs);
        for (const auto& [name, value] : kwargs) collect_detached(value, frame.inputs);
        collect_detached(output, frame.outputs);
        if (auto bad = first_nonfinite(frame.outputs))
            report(fmt::format("forward {} of {}", output_label(frame, *bad), describe(module)));
        known_finite_ = frame.outputs;
    }

    // Before the module's backward: the gradient it receives.
    void before_backward(const ModuleInfo& module, const std::vector<Tensor>& grad_output) {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        const auto bad = first_nonfinite(grad_output);
        if (!bad) return;  // the frame is made after the backward, with grad_input too
        Frame& frame = push(module, Phase::Backward);
        collect_detached(grad_output, frame.inputs);
        report(fmt::format("backward {} of {}", input_label(frame, *bad), describe(module)));
    }

    // After it: the gradient it produced.
    void after_backward(const ModuleInfo& module, const std::vector<Tensor>& grad_input,
                        const std::vector<Tensor>& grad_output) {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        Frame& frame = push(module, Phase::Backward);
        collect_detached(grad_output, frame.inputs);
        collect_detached(grad_input, frame.outputs);
        if (auto bad = first_nonfinite(frame.outputs))
            report(fmt::format("backward {} of {}", output_label(frame, *bad), describe(module)));
        known_finite_ = frame.outputs;
    }

    // After remove(): a graph may still hold the backward hooks, which then do nothing.
    void stop() {
        std::lock_guard lock(mutex_);
        stopped_ = true;
        ring_.clear();
        known_finite_.clear();
    }

private:
    Frame& push(const ModuleInfo& module, Phase phase) {
        Frame& frame = ring_[next_];
        next_ = (next_ + 1) % ring_.size();
        count_ = std::min(count_ + 1, ring_.size());
        frame.module = &module;
        frame.phase = phase;
        frame.inputs.clear();  // keeps their capacity: no allocation once the ring is warm
        frame.outputs.clear();
        return frame;
    }

    // The first tensor with an Inf or NaN. A tensor the previous check passed
    // (same values: storage, size and version) is not read again.
    std::optional<std::size_t> first_nonfinite(const std::vector<Tensor>& tensors) const {
        for (std::size_t i = 0; i < tensors.size(); ++i) {
            const Tensor& t = tensors[i];
            if (!t.defined() || passed(t)) continue;
            if (!all_finite(t)) return i;
        }
        return std::nullopt;
    }

    // known_finite_ holds its tensors, so their storage cannot be reused by another.
    bool passed(const Tensor& t) const {
        return std::any_of(known_finite_.begin(), known_finite_.end(), [&](const Tensor& k) {
            return k.defined() && k.data_ptr() == t.data_ptr() && k.numel() == t.numel() &&
                   k.dtype() == t.dtype() && k.version() == t.version();
        });
    }

    [[noreturn]] void report(const std::string& where) const {
        std::string message = fmt::format(
            "trace_nonfinite: Inf/NaN in the {}\nlast {} frame{}, oldest first:\n{:>8} {:>8} "
            "metadata\n",
            where, count_, count_ == 1 ? "" : "s", "abs min", "abs max");
        const std::size_t first = (next_ + ring_.size() - count_) % ring_.size();
        for (std::size_t k = 0; k < count_; ++k)
            message += show_frame(ring_[(first + k) % ring_.size()]);
        message.pop_back();  // the last newline
        throw Error(message);
    }

    std::mutex mutex_;
    std::deque<ModuleInfo> modules_;  // a deque: the hooks point at its elements
    std::vector<Frame> ring_;
    std::size_t next_ = 0, count_ = 0;  // the slot to fill next; how many hold a frame
    std::vector<Tensor> known_finite_;  // the tensors the last check passed
    bool stopped_ = false;
};

}  // namespace

RemovableHandle trace_nonfinite(nn::Module& model, std::size_t frames) {
    check(frames >= 1, "trace_nonfinite: expected frames >= 1 (got {})", frames);
    auto tracer = std::make_shared<Tracer>(frames);
    auto handles = std::make_shared<std::vector<RemovableHandle>>();
    const auto modules = model.named_modules();
    handles->reserve(3 * modules.size());  // so no push_back can fail after its hook is in
    try {
        for (const auto& [path, module] : modules) {
            const ModuleInfo* info = tracer->add_module(path, *module);
            handles->push_back(module->register_forward_hook(
                [tracer, info](nn::Module&, const nn::Args& args, const nn::Kwargs& kwargs,
                               const nn::Value& output) {
                    tracer->forward(*info, args, kwargs, output);
                },
                false, false, true));
            handles->push_back(module->register_full_backward_pre_hook(
                [tracer, info](nn::Module&, const std::vector<Tensor>& grad_output) {
                    tracer->before_backward(*info, grad_output);
                }));
            handles->push_back(module->register_full_backward_hook(
                [tracer, info](nn::Module&, const std::vector<Tensor>& grad_input,
                               const std::vector<Tensor>& grad_output) {
                    tracer->after_backward(*info, grad_input, grad_output);
                }));
        }
    } catch (...) {
        for (RemovableHandle& handle : *handles) handle.remove();
        throw;
    }
    return RemovableHandle([tracer, handles] {
        for (RemovableHandle& handle : *handles) handle.remove();
        tracer->stop();
    });
}

}  // namespace xg::inspect
