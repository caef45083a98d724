// Loss modules, as torch.nn's (PyTorch 1.13, without the deprecated size_average
// and reduce): each holds its options and calls its functional op in core
// (xgrad/ops.hpp), so module and function give the same value and gradient.
//
//   (*loss)(input, target) -> a 0-d tensor, or the elementwise loss with reduction "none"
//   MSELoss:           (x - y)^2              L1Loss:      |x - y|
//   SmoothL1Loss:      0.5 (x - y)^2 / beta where |x - y| < beta, else |x - y| - 0.5 beta
//   HuberLoss:         0.5 (x - y)^2 where |x - y| < delta, else delta (|x - y| - 0.5 delta)
//   CrossEntropyLoss:  logits [N, C, ...], class indices [N, ...] (int64) or probabilities
//   NLLLoss:           log-probabilities [N, C, ...], class indices [N, ...] (int64)
//   BCELoss:           -w (y log x + (1 - y) log(1 - x)), x probabilities
//   BCEWithLogitsLoss: -w (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), p = pos_weight
//   KLDivLoss:         target (log target - input), input log-probabilities
//   CosineEmbeddingLoss(input1, input2, target): 1 - cos where target is 1,
//                      max(0, cos - margin) where it is -1; cos along dim 1
//   CosineSimilarity(x1, x2) -> x1 . x2 / (|x1| |x2|) along dim, each norm clamped at eps
//                      (not a loss, but kept beside CosineEmbeddingLoss, which uses it)
//
// reduction is "none", "mean" or "sum" ("batchmean" too for KLDivLoss: the sum
// divided by the batch size); anything else throws at construction. The class
// weights (weight, [C]) and BCEWithLogitsLoss's pos_weight are buffers, as in
// PyTorch: registered always, undefined (None) when not given, and in the
// state_dict only when given. Like PyTorch's, these modules print with empty
// parentheses: `CrossEntropyLoss()`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "xgrad/nn/module.hpp"

namespace xg::nn {

// PyTorch's _Loss: a module called on (input, target) with a reduction.
class Loss : public Module {
public:
    using Module::forward;
    virtual Tensor forward(const Tensor& input, const Tensor& target) = 0;
    // Through Module::call, so hooks see both tensors.
    Tensor operator()(const Tensor& input, const Tensor& target) {
        return call_as<Tensor>(input, target);
    }
    Value forward_args(const Args& args, const Kwargs& kwargs) override;

    std::string reduction;

protected:
    // `module` names the class in the error for a reduction other than
    // "none", "mean", "sum" (or "batchmean", when allowed).
    Loss(const char* module, std::string reduction, bool allow_batchmean = false);
};

// PyTorch's _WeightedLoss: a Loss with a per-class weight buffer.
class WeightedLoss : public Loss {
public:
    Tensor weight;  // the "weight" buffer; undefined when not given

protected:
    WeightedLoss(const char* module, const Tensor& weight, std::string reduction);
    void on_tensor_set(const std::string& member, const Tensor& value) override;
};

class MSELoss : public Loss {
public:
    explicit MSELoss(std::string reduction = "mean");
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class L1Loss : public Loss {
public:
    explicit L1Loss(std::string reduction = "mean");
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class SmoothL1Loss : public Loss {
public:
    explicit SmoothL1Loss(std::string reduction = "mean", double beta = 1.0);
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

    double beta;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class HuberLoss : public Loss {
public:
    explicit HuberLoss(std::string reduction = "mean", double delta = 1.0);
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

    double delta;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class CrossEntropyLoss : public WeightedLoss {
public:
    explicit CrossEntropyLoss(const Tensor& weight = Tensor(), std::int64_t ignore_index = -100,
                              std::string reduction = "mean", double label_smoothing = 0.0);
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

    std::int64_t ignore_index;
    double label_smoothing;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class NLLLoss : public WeightedLoss {
public:
    explicit NLLLoss(const Tensor& weight = Tensor(), std::int64_t ignore_index = -100,
                     std::string reduction = "mean");
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

    std::int64_t ignore_index;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class BCELoss : public WeightedLoss {
public:
    explicit BCELoss(const Tensor& weight = Tensor(), std::string reduction = "mean");
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

// Buffers "weight" (broadcast over the loss) then "pos_weight" (over the last dim),
// as PyTorch registers them (its class derives from _Loss and registers both itself).
class BCEWithLogitsLoss : public WeightedLoss {
public:
    explicit BCEWithLogitsLoss(const Tensor& weight = Tensor(), std::string reduction = "mean",
                               const Tensor& pos_weight = Tensor());
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

    Tensor pos_weight;  // undefined when not given

protected:
    std::shared_ptr<Module> make_fresh() const override;
    void on_tensor_set(const std::string& member, const Tensor& value) override;
};

class KLDivLoss : public Loss {
public:
    explicit KLDivLoss(std::string reduction = "mean", bool log_target = false);
    using Loss::forward;
    Tensor forward(const Tensor& input, const Tensor& target) override;

    bool log_target;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

class CosineSimilarity : public Module {
public:
    explicit CosineSimilarity(int dim = 1, double eps = 1e-8);
    using Module::forward;
    Tensor forward(const Tensor& x1, const Tensor& x2);
    Tensor operator()(const Tensor& x1, const Tensor& x2) { return call_as<Tensor>(x1, x2); }
    Value forward_args(const Args& args, const Kwargs& kwargs) override;

    int dim;
    double eps;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

// A loss of three tensors, so a Module beside Loss rather than one of them.
class CosineEmbeddingLoss : public Module {
public:
    explicit CosineEmbeddingLoss(double margin = 0.0, std::string reduction = "mean");
    using Module::forward;
    Tensor forward(const Tensor& input1, const Tensor& input2, const Tensor& target);
    Tensor operator()(const Tensor& input1, const Tensor& input2, const Tensor& target) {
        return call_as<Tensor>(input1, input2, target);
    }
    Value forward_args(const Args& args, const Kwargs& kwargs) override;

    double margin;
    std::string reduction;

protected:
    std::shared_ptr<Module> make_fresh() const override;
};

}  // namespace xg::nn
