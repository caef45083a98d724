// Shared by the attention and Transformer tests: the generated PyTorch cases
// (transformer_reference.hpp) turned into xgrad tensors and loaded modules.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <xgrad/xgrad.hpp>

#include "helpers.hpp"
#include "nn/reference/transformer_reference.hpp"

namespace transformer_test {

using reference::Array;

inline xg::Dtype dtype_of(bool float32) { return float32 ? xg::kFloat32 : xg::kFloat64; }

// A generated mask: kind "" (none), "bool" (stored as 0/1) or "float".
inline xg::Tensor mask(const std::string& kind, const Array& values, xg::Dtype dtype) {
    if (kind.empty()) return {};
    if (kind == "float") return values.tensor(dtype);
    xt::xarray<bool> flags = xt::cast<bool>(values.array());
    return xg::tensor<bool>(flags);
}

// Loads PyTorch's state_dict strictly (a missing or unexpected key throws).
inline void load(xg::nn::Module& module, const std::vector<std::pair<std::string, Array>>& sd,
                 xg::Dtype dtype) {
    xg::StateDict state;
    for (const auto& [name, value] : sd) state.insert_or_assign(name, value.tensor(dtype));
    module.load_state_dict(state, /*strict=*/true);
}

// The worst relative error of t against a generated array, shapes checked.
inline double error(const xg::Tensor& t, const Array& expected) {
    REQUIRE(t.defined());
    return test::rel_error(test::values(t), expected.array());
}

inline double tolerance(bool float32) { return float32 ? 5e-5 : 1e-10; }

// Every parameter gradient against PyTorch's, in named_parameters order.
inline void check_grads(xg::nn::Module& module,
                        const std::vector<std::pair<std::string, Array>>& grads, bool float32) {
    auto named = module.named_parameters();
    REQUIRE(named.size() == grads.size());
    for (std::size_t i = 0; i < grads.size(); ++i) {
        CAPTURE(grads[i].first);
        CHECK(named[i].first == grads[i].first);
        CHECK(error(named[i].second.grad(), grads[i].second) < tolerance(float32));
    }
}

}  // namespace transformer_test
