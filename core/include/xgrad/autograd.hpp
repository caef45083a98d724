// The autograd engine's public face: grad mode, graph nodes and gradcheck.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "xgrad/tensor.hpp"

namespace xg {

// Whether ops record a graph (thread-local, on by default).
struct GradMode {
    static bool is_enabled();
    static void set_enabled(bool enabled);
};

// RAII: no graph is recorded while one is alive.
class NoGradGuard {
public:
    NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
    ~NoGradGuard() { GradMode::set_enabled(previous_); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};

namespace autograd {

// Gradient of the output with respect to each input; undefined where an input
// needs no gradient.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;
using NodeHook = std::function<void(const Tensor& grad_output)>;

// One recorded op. A node owns the nodes of its inputs (edges point towards the
// leaves) and what its backward needs, never a TensorImpl: so no cycles.
struct Node {
    Node(std::string name, std::vector<std::shared_ptr<Node>> next, BackwardFn backward);
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    std::string name;
    std::vector<std::shared_ptr<Node>> next;  // one per input; null if it needs no grad
    BackwardFn backward;                      // reset once the graph is freed
    std::weak_ptr<TensorImpl> output;         // for its hooks and retain_grad
    std::uint64_t sequence_nr;                // later nodes run first, as in PyTorch
    bool released = false;
    std::string creation;  // anomaly mode only: "in module <path>" where the op ran, else empty

    // How many nodes are alive right now; tests use it to prove graphs are freed.
    static long live_count();
};

// Anomaly detection, as torch.autograd.set_detect_anomaly: while on, every node
// records where its forward op ran (the module path, when inside a module), and
// backward throws xg::Error naming the node whose backward produced NaN or Inf.
// Process-wide, as in PyTorch; off by default because it slows every op.
void set_detect_anomaly(bool enabled);
bool is_anomaly_enabled();

// RAII: anomaly detection on (or off) while alive, then back to what it was.
class DetectAnomalyGuard {
public:
    explicit DetectAnomalyGuard(bool enabled = true) : previous_(is_anomaly_enabled()) {
        set_detect_anomaly(enabled);
    }
    ~DetectAnomalyGuard() { set_detect_anomaly(previous_); }
    DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
    DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

private:
    bool previous_;
};

// RAII: names the scope ops run in for anomaly mode (Module::operator() pushes
// one per module call while anomaly mode is on). Per thread; nests with '.'.
class AnomalyScope {
public:
    explicit AnomalyScope(std::string name);
    ~AnomalyScope();
    AnomalyScope(const AnomalyScope&) = delete;
    AnomalyScope& operator=(const AnomalyScope&) = delete;
};

// Runs backward from `roots` seeded with `grads` (engine.cpp).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph);

// Makes `value` the output of an op named `name` over `inputs`, recording a
// node when grad mode is on and some input requires grad.
Tensor make_result(Tensor value, const char* name, const std::vector<Tensor>& inputs,
                   BackwardFn backward);
// The same for a braced list of inputs, without building a vector.
Tensor make_result(Tensor value, const char* name, std::initializer_list<Tensor> inputs,
                   BackwardFn backward);

// Numerical vs analytic Jacobian of fn at `inputs`, in float64, with respect
// to every floating-point input. Prints the worst entry on failure.
bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-5,
               double rtol = 1e-3);

}  // namespace autograd
}  // namespace xg
