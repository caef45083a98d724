// AdamW: Adam's implementation with decoupled weight decay (default 1e-2).
#include "xgrad/optim/adamw.hpp"

namespace xg::optim {

namespace {
AdamOptions with_adamw_defaults(AdamOptions options) {
    if (!options.is_set("weight_decay")) options.set_item("weight_decay", 1e-2);
    return options;
}
}  // namespace

AdamW::AdamW(std::vector<Tensor> params, const AdamOptions& defaults)
    : AdamW(std::vector<OptimizerParamGroup>{OptimizerParamGroup(std::move(params))}, defaults) {}

AdamW::AdamW(std::vector<OptimizerParamGroup> groups, const AdamOptions& defaults)
    : Adam("AdamW", std::move(groups), with_adamw_defaults(defaults), true) {}

}  // namespace xg::optim
