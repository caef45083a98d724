// xg::nn::utils: gradient clipping, as torch.nn.utils.clip_grad_norm_ and
// clip_grad_value_. Both change the parameters' .grad in place and skip
// parameters without one.
#pragma once

#include <vector>

#include "xgrad/tensor.hpp"

namespace xg::nn::utils {

// Scales every gradient by min(1, max_norm / (total_norm + 1e-6)), where
// total_norm is the norm_type-norm of all gradients viewed as one vector
// (norm_type may be INFINITY: the largest |g|). Returns total_norm; 0 if no
// parameter has a gradient. With error_if_nonfinite, a NaN or infinite
// total norm throws instead of scaling.
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm,
                       double norm_type = 2.0, bool error_if_nonfinite = false);
double clip_grad_norm_(const Tensor& parameter, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

// Clamps every gradient element into [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);
void clip_grad_value_(const Tensor& parameter, double clip_value);

}  // namespace xg::nn::utils
