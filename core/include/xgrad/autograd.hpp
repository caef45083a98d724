// The autograd engine's public face: grad mode, graph nodes and gradcheck.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "xgrad/small_vector.hpp"
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

// The gradients a node's backward returns, one per input, undefined where an
// input needs no gradient. A std::vector<Tensor> converts to it.
using Gradients = detail::SmallVector<Tensor, 4>;

// A node's backward: grad_output -> Gradients (or a std::vector<Tensor>).
// Like a move-only std::function, but closures of up to 192 bytes (every
// built-in op's: a binary op's holds two saved tensors and two shapes) live
// inside it instead of in a heap allocation per node.
class BackwardFn {
public:
    BackwardFn() = default;
    BackwardFn(std::nullptr_t) {}  // NOLINT: implicit, as std::function's
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, BackwardFn> &&
                                                std::is_invocable_v<F&, const Tensor&>>>
    BackwardFn(F&& f) {  // NOLINT: implicit, so a lambda can be passed where one is expected
        using Target = std::decay_t<F>;
        if constexpr (sizeof(Target) <= kInline && alignof(Target) <= alignof(std::max_align_t) &&
                      std::is_nothrow_move_constructible_v<Target>) {
            target_ = new (buffer_) Target(std::forward<F>(f));
            ops_ = &inline_ops<Target>;
        } else {
            target_ = new Target(std::forward<F>(f));
            ops_ = &heap_ops<Target>;
        }
    }
    BackwardFn(BackwardFn&& other) noexcept { take(other); }
    BackwardFn& operator=(BackwardFn&& other) noexcept {
        if (this != &other) {
            reset();
            take(other);
        }
        return *this;
    }
    BackwardFn& operator=(std::nullptr_t) {
        reset();
        return *this;
    }
    ~BackwardFn() { reset(); }

    explicit operator bool() const { return ops_ != nullptr; }
    Gradients operator()(const Tensor& grad_output) const {
        return ops_->call(target_, grad_output);
    }

private:
    static constexpr std::size_t kInline = 192;
    struct Ops {
        Gradients (*call)(void*, const Tensor&);
        void* (*move_to)(void* from, void* buffer);  // the target's new address
        void (*destroy)(void*);
    };
    template <class T>
    static constexpr Ops inline_ops{
        [](void* t, const Tensor& g) -> Gradients { return (*static_cast<T*>(t))(g); },
        [](void* from, void* buffer) -> void* {
            T* moved = new (buffer) T(std::move(*static_cast<T*>(from)));
            static_cast<T*>(from)->~T();
            return moved;
        },
        [](void* t) { static_cast<T*>(t)->~T(); }};
    template <class T>
    static constexpr Ops heap_ops{
        [](void* t, const Tensor& g) -> Gradients { return (*static_cast<T*>(t))(g); },
        [](void* from, void*) { return from; }, [](void* t) { delete static_cast<T*>(t); }};

    void take(BackwardFn& other) noexcept {
        if (!other.ops_) return;
        ops_ = std::exchange(other.ops_, nullptr);
        target_ = ops_->move_to(std::exchange(other.target_, nullptr), buffer_);
    }
    void reset() noexcept {
        if (ops_) std::exchange(ops_, nullptr)->destroy(std::exchange(target_, nullptr));
    }

    alignas(std::max_align_t) unsigned char buffer_[kInline];
    void* target_ = nullptr;
    const Ops* ops_ = nullptr;
};

// What a node's backward reads of its values (make_result's last argument), for
// the in-place checks: its inputs (the default, and right for any op whose
// backward reads some of them), nothing of them (add, sum, reshape: the
// gradient follows from grad_output alone), or its own output (exp, softmax).
enum class Reads { Inputs, Nothing, Output };

// One recorded op. A node owns the nodes of its inputs (edges point towards the
// leaves) and what its backward needs, never a TensorImpl: so no cycles.
struct Node : std::enable_shared_from_this<Node> {
    using Edges = detail::SmallVector<std::shared_ptr<Node>, 4>;
    // Takes its edges and closure by reference to move them once: a closure
    // held inline moves member by member, its saved handles and shapes included.
    Node(std::string_view name, Edges&& next, BackwardFn&& backward);
    ~Node();
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    std::string_view name;             // interned: valid for the whole program
    Edges next;                        // one per input; null if it needs no grad
    BackwardFn backward;               // reset once the graph is freed
    std::weak_ptr<TensorImpl> output;  // for its hooks and retain_grad
    // Whether output may have hooks or retain its grad: only then does
    // backward look at it (set when one is added; accumulators always look).
    bool output_watched = false;
    std::uint64_t sequence_nr;    // later nodes run first, as in PyTorch
    bool is_accumulator = false;  // a leaf's AccumulateGrad: hands its gradient to .grad
    bool differentiable = false;  // its backward records a graph under create_graph
    // The values its backward reads, at the versions they had when it was
    // recorded (one per input, or the output alone, as `reads` says): an
    // in-place op on them since is an error.
    struct SavedVersion {
        std::weak_ptr<xg::Storage> storage;  // expired, or null for an undefined input
        std::uint64_t version = 0;
    };
    detail::SmallVector<SavedVersion, 4> saved_versions;  // attention reads four
    Reads reads = Reads::Inputs;
    bool released = false;
    std::string creation;  // anomaly mode only: "in module <path>" where the op ran, else empty

    // Drops the backward closure (and what it saved) and the edges: a backward
    // pass without retain_graph frees each node this way once it ran.
    void release();

    // How many nodes of graphs are alive right now (not counting the
    // accumulators that leaves keep); tests use it to prove graphs are freed.
    static long live_count();
};

// Anomaly detection, as torch.autograd.set_detect_anomaly: while on, every node
// records where its forward op ran (the module path, when inside a module), and
// backward throws xg::Error naming the node whose backward produced NaN (Inf
// passes, as in PyTorch), in PyTorch's words.
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

// Runs backward from `roots` seeded with `grads` (engine.cpp). With
// create_graph the backward pass itself is recorded, so the gradients it
// produces can be differentiated again; retain_graph defaults to create_graph,
// as in PyTorch.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  std::optional<bool> retain_graph = std::nullopt, bool create_graph = false);
void run_backward(const Tensor& root, const Tensor& grad,
                  std::optional<bool> retain_graph = std::nullopt, bool create_graph = false);

// torch.autograd.grad: the gradients of `outputs` (seeded with grad_outputs,
// ones for one-element outputs when empty) with respect to `inputs`, returned
// instead of accumulated into .grad. Only the nodes between them run. An input
// the outputs do not depend on is an error unless allow_unused, which returns
// an undefined tensor for it.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {},
                         std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
                         bool allow_unused = false);

// Whether an op records a graph node for its result (make_result's last
// argument): Supported promises that its backward, called while
// creating_graph(), computes its gradients with differentiable ops, so that
// they can be differentiated again. Under create_graph the engine wraps the
// gradients of any other node in a node whose backward throws, naming the op:
// first-order gradients stay exact, a second derivative through it is refused.
enum class DoubleBackward { Unsupported, Supported };

// Makes `value` the output of an op named `name` over `inputs`, recording a
// node when grad mode is on and some input requires grad. `name` may be any
// string: the node keeps an interned copy.
Tensor make_result(Tensor value, const char* name, const std::vector<Tensor>& inputs,
                   BackwardFn backward,
                   DoubleBackward double_backward = DoubleBackward::Unsupported,
                   Reads reads = Reads::Inputs);
// One input in make_result's braced list, by reference: make_result reads its
// inputs during the call only, and copying a handle would cost two atomic
// reference-count updates per input and op.
struct InputRef {
    InputRef(const Tensor& t) : tensor(&t) {}  // NOLINT: implicit, for {a, b}
    const Tensor* tensor;
};
// The same for a braced list of inputs, without building a vector.
Tensor make_result(Tensor value, const char* name, std::initializer_list<InputRef> inputs,
                   BackwardFn backward,
                   DoubleBackward double_backward = DoubleBackward::Unsupported,
                   Reads reads = Reads::Inputs);

// For the backward closure of a DoubleBackward::Supported node. True while the
// engine runs it with create_graph: it must then compute with ops (which record
// a graph) instead of raw loops.
bool creating_graph();
// A tensor the node saved, back in the graph while creating_graph(): `saved`
// holds the values of the node's input `index` (saved_input) or of its output
// (saved_output), as a detached tensor or one sharing its storage; the result
// has those values and the history of that input (or is the node's output), so
// a gradient computed from it reaches what it depends on.
Tensor saved_input(std::size_t index, const Tensor& saved);
Tensor saved_output(const Tensor& saved);
// Double backward by recomputation, for ops whose gradient is long to write
// with ops (fused kernels, layer_norm, losses): runs `forward`, the op written
// as a composite of differentiable ops, on saved_input(i, saved_inputs[i]) and
// returns the gradients of its result seeded with `grad`, as a graph.
Gradients recomputed_gradients(const Tensor& grad, const std::vector<Tensor>& saved_inputs,
                               const std::function<Tensor(const std::vector<Tensor>&)>& forward);

// Numerical vs analytic Jacobian of fn at `inputs`, in float64, with respect
// to every floating-point input. Prints the worst entry on failure.
bool gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
               const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-5,
               double rtol = 1e-3);

// torch.autograd.gradgradcheck: gradcheck of fn's first derivative. With a
// fixed random float64 `v` shaped as fn's output, checks the Jacobian of
// (inputs, v) -> grad(fn(inputs), inputs, v, create_graph) against finite
// differences: second derivatives, and the backward's linearity in v.
bool gradgradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                   const std::vector<Tensor>& inputs, double eps = 1e-6, double atol = 1e-5,
                   double rtol = 1e-3);

}  // namespace autograd
}  // namespace xg
