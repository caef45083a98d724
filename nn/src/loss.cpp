// Loss modules: options checked at construction, forward one call into core's
// functional op (see loss.hpp).
#include "xgrad/nn/loss.hpp"

#include <utility>

#include "xgrad/ops.hpp"

namespace xg::nn {

namespace {

void check_reduction(const char* module, const std::string& reduction, bool allow_batchmean) {
    if (reduction == "none" || reduction == "mean" || reduction == "sum") return;
    if (allow_batchmean) {
        check(reduction == "batchmean",
              "{}: expected reduction 'none', 'batchmean', 'mean' or 'sum' (got '{}')", module,
              reduction);
    } else {
        fail("{}: expected reduction 'none', 'mean' or 'sum' (got '{}')", module, reduction);
    }
}

}  // namespace

// ---- Loss, WeightedLoss ----
// A weighted loss's make_fresh builds it without its buffers: clone() then
// registers copies of those the original holds.

Loss::Loss(const char* module, std::string reduction, bool allow_batchmean)
    : reduction(std::move(reduction)) {
    check_reduction(module, this->reduction, allow_batchmean);
}

Value Loss::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"input", "target"};
    return invoke_forward<Loss>(*this, &Loss::forward, signature, args, kwargs);
}

WeightedLoss::WeightedLoss(const char* module, const Tensor& weight, std::string reduction)
    : Loss(module, std::move(reduction)) {
    register_buffer("weight", weight);
}

void WeightedLoss::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "weight") weight = value;
}

// ---- elementwise regression losses ----

MSELoss::MSELoss(std::string reduction) : Loss("MSELoss", std::move(reduction)) {}
Tensor MSELoss::forward(const Tensor& input, const Tensor& target) {
    return mse_loss(input, target, reduction);
}
std::shared_ptr<Module> MSELoss::make_fresh() const { return std::make_shared<MSELoss>(reduction); }

L1Loss::L1Loss(std::string reduction) : Loss("L1Loss", std::move(reduction)) {}
Tensor L1Loss::forward(const Tensor& input, const Tensor& target) {
    return l1_loss(input, target, reduction);
}
std::shared_ptr<Module> L1Loss::make_fresh() const { return std::make_shared<L1Loss>(reduction); }

SmoothL1Loss::SmoothL1Loss(std::string reduction, double beta)
    : Loss("SmoothL1Loss", std::move(reduction)), beta(beta) {
    check(beta >= 0.0, "SmoothL1Loss: expected beta >= 0 (got {})", beta);
}
Tensor SmoothL1Loss::forward(const Tensor& input, const Tensor& target) {
    return smooth_l1_loss(input, target, reduction, beta);
}
std::shared_ptr<Module> SmoothL1Loss::make_fresh() const {
    return std::make_shared<SmoothL1Loss>(reduction, beta);
}

HuberLoss::HuberLoss(std::string reduction, double delta)
    : Loss("HuberLoss", std::move(reduction)), delta(delta) {
    check(delta > 0.0, "HuberLoss: expected delta > 0 (got {})", delta);
}
Tensor HuberLoss::forward(const Tensor& input, const Tensor& target) {
    return huber_loss(input, target, reduction, delta);
}
std::shared_ptr<Module> HuberLoss::make_fresh() const {
    return std::make_shared<HuberLoss>(reduction, delta);
}

// ---- classification losses ----

CrossEntropyLoss::CrossEntropyLoss(const Tensor& weight, std::int64_t ignore_index,
                                   std::string reduction, double label_smoothing)
    : WeightedLoss("CrossEntropyLoss", weight, std::move(reduction)),
      ignore_index(ignore_index),
      label_smoothing(label_smoothing) {
    check(label_smoothing >= 0.0 && label_smoothing <= 1.0,
          "CrossEntropyLoss: expected label_smoothing in [0, 1] (got {})", label_smoothing);
}
Tensor CrossEntropyLoss::forward(const Tensor& input, const Tensor& target) {
    return cross_entropy(input, target, reduction, weight, ignore_index, label_smoothing);
}
std::shared_ptr<Module> CrossEntropyLoss::make_fresh() const {
    return std::make_shared<CrossEntropyLoss>(Tensor(), ignore_index, reduction, label_smoothing);
}

NLLLoss::NLLLoss(const Tensor& weight, std::int64_t ignore_index, std::string reduction)
    : WeightedLoss("NLLLoss", weight, std::move(reduction)), ignore_index(ignore_index) {}
Tensor NLLLoss::forward(const Tensor& input, const Tensor& target) {
    return nll_loss(input, target, reduction, weight, ignore_index);
}
std::shared_ptr<Module> NLLLoss::make_fresh() const {
    return std::make_shared<NLLLoss>(Tensor(), ignore_index, reduction);
}

BCELoss::BCELoss(const Tensor& weight, std::string reduction)
    : WeightedLoss("BCELoss", weight, std::move(reduction)) {}
Tensor BCELoss::forward(const Tensor& input, const Tensor& target) {
    return binary_cross_entropy(input, target, reduction, weight);
}
std::shared_ptr<Module> BCELoss::make_fresh() const {
    return std::make_shared<BCELoss>(Tensor(), reduction);
}

BCEWithLogitsLoss::BCEWithLogitsLoss(const Tensor& weight, std::string reduction,
                                     const Tensor& pos_weight)
    : WeightedLoss("BCEWithLogitsLoss", weight, std::move(reduction)) {
    register_buffer("pos_weight", pos_weight);
}
Tensor BCEWithLogitsLoss::forward(const Tensor& input, const Tensor& target) {
    if (!weight.defined()) {
        return binary_cross_entropy_with_logits(input, target, reduction, pos_weight);
    }
    // core's function has no weight: weigh the elementwise loss and reduce here,
    // as PyTorch does (loss * weight, then the mean or sum of the product).
    Tensor loss = binary_cross_entropy_with_logits(input, target, "none", pos_weight) * weight;
    if (reduction == "mean") return mean(loss);
    if (reduction == "sum") return sum(loss);
    return loss;
}
void BCEWithLogitsLoss::on_tensor_set(const std::string& member, const Tensor& value) {
    if (member == "pos_weight")
        pos_weight = value;
    else
        WeightedLoss::on_tensor_set(member, value);
}
std::shared_ptr<Module> BCEWithLogitsLoss::make_fresh() const {
    return std::make_shared<BCEWithLogitsLoss>(Tensor(), reduction, Tensor());
}

// ---- distributions ----

KLDivLoss::KLDivLoss(std::string reduction, bool log_target)
    : Loss("KLDivLoss", std::move(reduction), /*allow_batchmean=*/true), log_target(log_target) {}
Tensor KLDivLoss::forward(const Tensor& input, const Tensor& target) {
    return kl_div(input, target, reduction, log_target);
}
std::shared_ptr<Module> KLDivLoss::make_fresh() const {
    return std::make_shared<KLDivLoss>(reduction, log_target);
}

// ---- cosine ----

CosineSimilarity::CosineSimilarity(int dim, double eps) : dim(dim), eps(eps) {}
Tensor CosineSimilarity::forward(const Tensor& x1, const Tensor& x2) {
    return cosine_similarity(x1, x2, dim, eps);
}
Value CosineSimilarity::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"x1", "x2"};
    return invoke_forward<CosineSimilarity>(*this, &CosineSimilarity::forward, signature, args,
                                            kwargs);
}
std::shared_ptr<Module> CosineSimilarity::make_fresh() const {
    return std::make_shared<CosineSimilarity>(dim, eps);
}

CosineEmbeddingLoss::CosineEmbeddingLoss(double margin, std::string reduction)
    : margin(margin), reduction(std::move(reduction)) {
    check_reduction("CosineEmbeddingLoss", this->reduction, false);
}
Tensor CosineEmbeddingLoss::forward(const Tensor& input1, const Tensor& input2,
                                    const Tensor& target) {
    return cosine_embedding_loss(input1, input2, target, margin, reduction);
}
Value CosineEmbeddingLoss::forward_args(const Args& args, const Kwargs& kwargs) {
    static const Signature signature{"input1", "input2", "target"};
    return invoke_forward<CosineEmbeddingLoss>(*this, &CosineEmbeddingLoss::forward, signature,
                                               args, kwargs);
}
std::shared_ptr<Module> CosineEmbeddingLoss::make_fresh() const {
    return std::make_shared<CosineEmbeddingLoss>(margin, reduction);
}

}  // namespace xg::nn
