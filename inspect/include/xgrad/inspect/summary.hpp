// xg::inspect::summary: torchinfo's summary for an xgrad module. One forward
// (eval mode, NoGradGuard) with hooks that record each module called, then
// removed, also when forward throws; every module's training mode is restored.
//
// The counting rules, torchinfo's except where noted:
// - A row per module call, in the order the calls start, at the depth of the
//   call's nesting. A module called again gives another row, marked
//   `recursive` (torchinfo's "(recursive)"), whose parameters are not counted.
// - Each parameter of the model is counted once (tied weights too), on the
//   deepest row whose module holds it, the first such row in call order; a
//   row's `params` are what its children's rows do not already count.
//   total_params is every parameter of the module, called or not.
// - mult_adds: the multiply-accumulates of the matrix products a module does
//   itself, outside its children's rows: Linear is weight.numel() times the
//   number of rows it maps (output.numel() / out_features), bias not counted;
//   MultiheadAttention is its three input projections plus the two attention
//   products (out_proj is a child row): (L N + 2 S N) E^2 + 2 N L S E for
//   query [L, N, E] and key [S, N, E]. Everything else (LayerNorm, Embedding,
//   activations) is 0. torchinfo instead adds output.shape[0] * numel for every
//   weight and bias, which undercounts any input with a sequence dimension.
// - activation_bytes: the output bytes of the leaf rows (those with no row
//   nested inside), each tensor a layer makes counted once; torchinfo counts
//   only leaves that have parameters. The table's "Forward/backward pass size"
//   is twice that (values and their gradients), as torchinfo's.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "xgrad/nn.hpp"

namespace xg::inspect {

// One module call, in call order.
struct SummaryRow {
    std::string name;                  // path from the root ("ffn.layer1"; "" for the root)
    std::string type;                  // class name ("Linear")
    std::size_t depth = 0;             // how deeply the call is nested; 0 for the outermost
    std::vector<Shape> output_shapes;  // each tensor output
    std::int64_t output_bytes = 0;     // of those outputs
    std::int64_t params = 0;           // parameters counted on this row (see above)
    std::int64_t trainable = 0;        // of those, the ones that require grad
    std::int64_t mult_adds = 0;        // this call's own matrix-product mult-adds
    bool recursive = false;            // a second or later call of the same module
};

struct ModelSummary {
    std::vector<SummaryRow> rows;
    std::int64_t total_params = 0, trainable_params = 0, mult_adds = 0;
    std::int64_t input_bytes = 0;       // tensors passed to the outermost calls
    std::int64_t activation_bytes = 0;  // leaf rows' outputs (forward only)
    std::int64_t param_bytes = 0;       // every parameter once
    std::string to_string() const;      // torchinfo's table
};
std::ostream& operator<<(std::ostream& out, const ModelSummary& summary);

// Runs `forward` (which calls the module) once under the recording hooks.
ModelSummary summary(nn::Module& module, const std::function<void()>& forward);

namespace detail {
// A lone callable is the forward to run, not the module's input.
template <class... Inputs>
inline constexpr bool is_forward_fn = sizeof...(Inputs) == 1 &&
                                      (std::is_invocable_v<const Inputs&> && ...);
}  // namespace detail

// summary(module, x), summary(module, q, k, v): the module called with the
// inputs; summary(module, [&] { ... }) runs the lambda instead.
template <class... Inputs>
ModelSummary summary(nn::Module& module, const Inputs&... inputs) {
    if constexpr (detail::is_forward_fn<Inputs...>) {
        return summary(module, std::function<void()>(inputs...));
    } else {
        return summary(module, std::function<void()>([&] { module(inputs...); }));
    }
}

}  // namespace xg::inspect
