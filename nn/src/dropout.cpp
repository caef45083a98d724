// Dropout and MonteCarloDropout (see dropout.hpp).
#include "xgrad/nn/dropout.hpp"

#include "layer_helpers.hpp"
#include "xgrad/ops.hpp"

namespace xg::nn {

Dropout::Dropout(double p) : p(p) {
    check(p >= 0.0 && p <= 1.0, "{}: expected p in [0, 1] (got {})", name(), p);
}

Tensor Dropout::forward(const Tensor& input) { return dropout(input, p, is_training()); }

std::string Dropout::extra_repr() const {
    return fmt::format("p={}, inplace=False", detail::py_float(p));
}

std::shared_ptr<Module> Dropout::make_fresh() const { return std::make_shared<Dropout>(p); }

Tensor MonteCarloDropout::forward(const Tensor& input) {
    return dropout(input, p, is_training() || mc_dropout_);
}

std::shared_ptr<Module> MonteCarloDropout::make_fresh() const {
    auto fresh = std::make_shared<MonteCarloDropout>(p);
    fresh->enable_mc_dropout(mc_dropout_);
    return fresh;
}

}  // namespace xg::nn
