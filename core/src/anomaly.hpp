// Anomaly mode's two halves inside the engine: where a node was created, and
// the NaN check on what its backward returned (the switch itself and
// AnomalyScope are public, in xgrad/autograd.hpp).
#pragma once

#include <string>

#include "xgrad/autograd.hpp"

namespace xg::autograd {

// "in module <path>" for a node created now, or "outside any module".
std::string creation_point();

// Throws PyTorch's "Function 'X' returned nan values in its 0th output." when a
// gradient in `input_grads` holds a NaN.
void check_no_nan(const Node& node, const Gradients& input_grads);

}  // namespace xg::autograd
