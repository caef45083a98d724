// xg::optim::AdamW: Adam with decoupled weight decay (param *= 1 - lr * weight_decay
// before the Adam update), as torch.optim.AdamW. The update itself is Adam's
// (adam.hpp); only the decay and the weight_decay default (1e-2) differ.
#pragma once

#include <vector>

#include "xgrad/optim/adam.hpp"

namespace xg::optim {

// AdamOptions whose weight_decay defaults to 1e-2. AdamW also fills an unset
// weight_decay with 1e-2 when given plain AdamOptions.
class AdamWOptions : public AdamOptions {
public:
    AdamWOptions() { weight_decay_ = 1e-2; }
    explicit AdamWOptions(double lr) : AdamOptions(lr) { weight_decay_ = 1e-2; }
};

class AdamW : public Adam {
public:
    AdamW(std::vector<Tensor> params, const AdamOptions& defaults = AdamWOptions());
    AdamW(std::vector<OptimizerParamGroup> groups, const AdamOptions& defaults = AdamWOptions());
};

}  // namespace xg::optim
