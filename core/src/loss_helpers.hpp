// What the loss files share (core/ops/loss.cpp, class_loss.cpp, similarity_loss.cpp):
// the reduction argument, PyTorch's epsilon, and the checks on input and target.
#pragma once

#include <string>

#include "internal.hpp"
#include "xgrad/ops.hpp"

namespace xg::detail::loss {

enum class Reduction { None, Mean, Sum };

// PyTorch's EPSILON for binary_cross_entropy's gradient and cosine_embedding_loss is
// a float: 1e-12f, which is 9.99999996e-13 in float64 results.
inline constexpr float kTorchEpsilon = 1e-12f;

inline Reduction parse_reduction(const std::string& reduction, const char* op) {
    if (reduction == "none") return Reduction::None;
    if (reduction == "mean") return Reduction::Mean;
    if (reduction == "sum") return Reduction::Sum;
    throw Error(
        fmt::format("{}: expected reduction 'none', 'mean' or 'sum' (got '{}')", op, reduction));
}

// The elementwise loss reduced as asked, input and target broadcast together
// only when their shapes match (PyTorch warns and broadcasts; xgrad refuses).
inline Tensor reduced(const Tensor& losses, const std::string& reduction, const char* op) {
    switch (parse_reduction(reduction, op)) {
        case Reduction::None: return losses;
        case Reduction::Sum: return sum(losses);
        case Reduction::Mean: return mean(losses);
    }
    return losses;
}

inline void check_pair(const Tensor& input, const Tensor& target, const char* op) {
    if (!(input.defined() && target.defined() && input.shape() == target.shape())) {
        fail("{}: expected input and target of one shape (got {} and {})", op,
             input.defined() ? shape_str(input.shape()) : "undefined",
             target.defined() ? shape_str(target.shape()) : "undefined");
    }
}

// check_pair, and both floating-point of one dtype.
inline void check_floating_pair(const Tensor& input, const Tensor& target, const char* op) {
    check_pair(input, target, op);
    if (!(is_floating_point(input.dtype()) && input.dtype() == target.dtype())) {
        fail("{}: expected floating-point input and target of one dtype (got {} and {})", op,
             dtype_name(input.dtype()), dtype_name(target.dtype()));
    }
}

}  // namespace xg::detail::loss
