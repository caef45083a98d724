// Anomaly detection, as torch.autograd.detect_anomaly: nodes remember the module
// path their op ran in, and a NaN in a node's gradients stops the backward pass.
#include "anomaly.hpp"

#include <atomic>
#include <cmath>
#include <string_view>
#include <vector>

#include "internal.hpp"

namespace xg::autograd {

namespace {
std::atomic<bool> anomaly_enabled{false};
thread_local std::vector<std::string> anomaly_scopes;  // module path, outermost first

bool has_nan(const Tensor& t) {
    if (!is_floating_point(t.dtype())) return false;
    bool nan = false;
    detail::visit_floating(t, "backward", [&](const auto& a) {
        for (auto v : a) nan = nan || std::isnan(v);
        return t;
    });
    return nan;
}
}  // namespace

void set_detect_anomaly(bool enabled) { anomaly_enabled.store(enabled, std::memory_order_relaxed); }
bool is_anomaly_enabled() { return anomaly_enabled.load(std::memory_order_relaxed); }

AnomalyScope::AnomalyScope(std::string name) { anomaly_scopes.push_back(std::move(name)); }
AnomalyScope::~AnomalyScope() { anomaly_scopes.pop_back(); }

std::string creation_point() {
    if (anomaly_scopes.empty()) return "outside any module";
    return fmt::format("in module {}", fmt::join(anomaly_scopes, "."));
}

// PyTorch checks for NaN only: Inf passes (sqrt at 0 has a legitimate infinite
// gradient), so the op named in a NaN chain is the one PyTorch names.
void check_no_nan(const Node& node, const Gradients& input_grads) {
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
        if (!input_grads[i].defined() || !has_nan(input_grads[i])) continue;
        std::string_view op = node.name;
        if (op.ends_with("Backward")) op.remove_suffix(8);
        throw Error(fmt::format(
            "Function '{}' returned nan values in its {}th output. Its forward op {} (gradient "
            "shape {}) was created {}.",
            node.name, i, op, shape_str(input_grads[i].shape()),
            node.creation.empty() ? "before anomaly detection was enabled" : node.creation));
    }
}

}  // namespace xg::autograd
