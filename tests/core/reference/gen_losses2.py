#!/usr/bin/env python3
"""Generates losses2_values.hpp: PyTorch's cross_entropy (every option), nll_loss,
binary_cross_entropy, kl_div, cosine_similarity and cosine_embedding_loss, with values
and gradients, for tests/core/ops/test_loss.cpp.

Run from the repository root with Debian's PyTorch (tested with 1.13):
    /usr/bin/python3 tests/core/reference/gen_losses2.py > tests/core/reference/losses2_values.hpp

Each case holds its inputs, the loss and the gradients of the input and of the target
(or second input) where PyTorch differentiates it. The loss is backpropagated from
sum(loss * upstream) for unreduced losses and from the loss itself otherwise.
"""
import math

import torch
import torch.nn.functional as F

D = torch.float64
torch.manual_seed(0)


def randn(*shape):
    return torch.randn(*shape, dtype=D)


def probs(*shape, dim):
    return torch.softmax(randn(*shape), dim)


LOGITS = randn(4, 5)
LOGITS3 = randn(2, 3, 4)          # [N, C, d]
LOGITS4 = randn(2, 3, 2, 2)       # [N, C, d1, d2]
LOGITS1 = randn(5)                # unbatched
WEIGHT5 = torch.tensor([0.5, 1.0, 2.0, 0.25, 1.5], dtype=D)
WEIGHT3 = torch.tensor([2.0, 0.5, 1.0], dtype=D)
TARGETS = torch.tensor([4, 0, 2, 2])
TARGETS_IGNORED = torch.tensor([4, -100, 2, -100])
ALL_IGNORED = torch.tensor([-100, -100, -100, -100])
TARGETS3 = torch.tensor([[0, 2, 1, 1], [2, -100, 0, 1]])
TARGETS4 = torch.tensor([[[0, 2], [1, -100]], [[2, 2], [0, 1]]])
PROBS = probs(4, 5, dim=1)
PROBS3 = probs(2, 3, 4, dim=1)
PROBS1 = probs(5, dim=0)

# Probabilities on and near the edges, where logs clamp at -100 and the gradient's
# denominator clamps at 1e-12.
BCE_INPUT = torch.tensor([[0.0, 1.0, 0.5, 1e-50], [0.2, 0.7, 0.999, 1.0 - 1e-10],
                          [0.05, 0.9, 0.3, 0.6]], dtype=D)
BCE_TARGET = torch.tensor([[0.0, 0.0, 1.0, 0.5], [1.0, 0.3, 0.0, 1.0],
                           [0.25, 1.0, 0.0, 0.6]], dtype=D)
BCE_INPUT_SMOOTH = torch.tensor([[0.1, 0.8, 0.5, 0.35], [0.2, 0.7, 0.95, 0.4],
                                 [0.05, 0.9, 0.3, 0.6]], dtype=D)

KL_INPUT = torch.log_softmax(randn(3, 4), 1)
KL_TARGET = torch.tensor([[0.0, 0.2, 0.3, 0.5], [0.1, 0.1, 0.4, 0.4], [0.7, 0.0, 0.0, 0.3]],
                         dtype=D)
KL_TARGET_POS = probs(3, 4, dim=1)
KL_LOG_TARGET = torch.log_softmax(randn(3, 4), 1)

COS_A = randn(3, 4)
COS_B = randn(3, 4)
# Row 0 has a norm below eps = 1e-8 (clamped), row 1 is zero, row 2 is ordinary.
COS_SMALL = torch.tensor([[1e-9, 2e-9, 0.0, -1e-9], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, -1.0, 0.5]],
                         dtype=D)
COS_ROW = randn(4)
COS_3D_A = randn(2, 3, 4)
COS_3D_B = randn(1, 3, 4)
COS_COL = randn(3, 1)
EMB_A = torch.cat([randn(3, 5), torch.zeros(1, 5, dtype=D)])
EMB_B = randn(4, 5)
EMB_T = torch.tensor([1, -1, -1, 1])
EMB_A1 = randn(5)
EMB_B1 = randn(5)

REDUCTIONS = ("none", "mean", "sum")

# name, op, params, input, target, weight, reductions, grad of target?
CASES = []


def case(op, params, x, y, weight=None, reductions=REDUCTIONS, grad_target=False):
    CASES.append((op, params, x, y, weight, reductions, grad_target))


# cross_entropy: params = [ignore_index, label_smoothing]
case("cross_entropy", [-100, 0.0], LOGITS, TARGETS)
case("cross_entropy", [-100, 0.0], LOGITS, TARGETS, WEIGHT5)
case("cross_entropy", [-100, 0.0], LOGITS, TARGETS_IGNORED)
case("cross_entropy", [-100, 0.0], LOGITS, TARGETS_IGNORED, WEIGHT5)
case("cross_entropy", [2, 0.0], LOGITS, TARGETS, WEIGHT5)
case("cross_entropy", [-100, 0.0], LOGITS, ALL_IGNORED)
case("cross_entropy", [-100, 0.2], LOGITS, ALL_IGNORED, WEIGHT5)
case("cross_entropy", [-100, 0.1], LOGITS, TARGETS)
case("cross_entropy", [-100, 0.1], LOGITS, TARGETS_IGNORED, WEIGHT5)
case("cross_entropy", [2, 0.3], LOGITS, TARGETS, WEIGHT5)
case("cross_entropy", [-100, 1.0], LOGITS, TARGETS_IGNORED)
case("cross_entropy", [-100, 0.0], LOGITS, PROBS, grad_target=True)
case("cross_entropy", [-100, 0.0], LOGITS, PROBS, WEIGHT5, grad_target=True)
case("cross_entropy", [-100, 0.25], LOGITS, PROBS, grad_target=True)
case("cross_entropy", [-100, 0.25], LOGITS, PROBS, WEIGHT5, grad_target=True)
case("cross_entropy", [-100, 0.0], LOGITS3, TARGETS3)
case("cross_entropy", [-100, 0.15], LOGITS3, TARGETS3, WEIGHT3)
case("cross_entropy", [-100, 0.0], LOGITS4, TARGETS4, WEIGHT3)
case("cross_entropy", [-100, 0.1], LOGITS3, PROBS3, WEIGHT3, grad_target=True)
case("cross_entropy", [-100, 0.0], LOGITS1, torch.tensor(3))
case("cross_entropy", [-100, 0.2], LOGITS1, torch.tensor(1), WEIGHT5)
case("cross_entropy", [-100, 0.0], LOGITS1, torch.tensor(-100))
case("cross_entropy", [-100, 0.1], LOGITS1, PROBS1, WEIGHT5, grad_target=True)
# nll_loss: params = [ignore_index]
LOGP = torch.log_softmax(LOGITS, 1)
case("nll_loss", [-100], LOGP, TARGETS)
case("nll_loss", [-100], LOGP, TARGETS_IGNORED, WEIGHT5)
case("nll_loss", [0], LOGP, TARGETS, WEIGHT5)
case("nll_loss", [-100], LOGP, ALL_IGNORED, WEIGHT5)
case("nll_loss", [-100], LOGITS3, TARGETS3, WEIGHT3)
case("nll_loss", [-100], LOGITS4, TARGETS4)
case("nll_loss", [-100], LOGITS1, torch.tensor(2), WEIGHT5)
# binary_cross_entropy: no params
case("binary_cross_entropy", [], BCE_INPUT, BCE_TARGET, grad_target=True)
case("binary_cross_entropy", [], BCE_INPUT_SMOOTH, BCE_TARGET,
     torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=D), grad_target=True)
case("binary_cross_entropy", [], BCE_INPUT_SMOOTH, BCE_TARGET,
     torch.tensor([[0.5], [2.0], [1.5]], dtype=D), grad_target=True)
# kl_div: params = [log_target]
KL_REDUCTIONS = ("none", "mean", "sum", "batchmean")
case("kl_div", [0], KL_INPUT, KL_TARGET, reductions=KL_REDUCTIONS, grad_target=True)
case("kl_div", [0], KL_INPUT, KL_TARGET_POS, reductions=KL_REDUCTIONS, grad_target=True)
case("kl_div", [1], KL_INPUT, KL_LOG_TARGET, reductions=KL_REDUCTIONS, grad_target=True)
case("kl_div", [0], KL_INPUT[0], KL_TARGET[0], reductions=("batchmean",), grad_target=True)
# cosine_similarity: params = [dim, eps]; its result is always unreduced
case("cosine_similarity", [1, 1e-8], COS_A, COS_B, reductions=("none",), grad_target=True)
case("cosine_similarity", [-1, 1e-8], COS_A, COS_ROW, reductions=("none",), grad_target=True)
case("cosine_similarity", [0, 1e-8], COS_A, COS_B, reductions=("none",), grad_target=True)
case("cosine_similarity", [1, 1e-8], COS_SMALL, COS_B, reductions=("none",), grad_target=True)
case("cosine_similarity", [1, 0.5], COS_A, COS_SMALL, reductions=("none",), grad_target=True)
case("cosine_similarity", [0, 1e-8], COS_3D_A, COS_3D_B, reductions=("none",), grad_target=True)
case("cosine_similarity", [2, 1e-8], COS_3D_A, COS_3D_B, reductions=("none",), grad_target=True)
case("cosine_similarity", [1, 1e-8], COS_COL, COS_A, reductions=("none",), grad_target=True)
# cosine_embedding_loss: params = [margin]; the weight slot holds the +-1 target
case("cosine_embedding_loss", [0.0], EMB_A, EMB_B, EMB_T, grad_target=True)
case("cosine_embedding_loss", [0.3], EMB_A, EMB_B, EMB_T, grad_target=True)
case("cosine_embedding_loss", [-0.5], EMB_A, EMB_B, EMB_T.to(D), grad_target=True)
case("cosine_embedding_loss", [0.0], EMB_A1, EMB_B1, torch.tensor(1), grad_target=True)
case("cosine_embedding_loss", [0.2], EMB_A1, EMB_B1, torch.tensor(-1), grad_target=True)


def call(op, params, x, y, weight, reduction):
    if op == "cross_entropy":
        return F.cross_entropy(x, y, weight=weight, ignore_index=int(params[0]),
                               reduction=reduction, label_smoothing=params[1])
    if op == "nll_loss":
        return F.nll_loss(x, y, weight=weight, ignore_index=int(params[0]), reduction=reduction)
    if op == "binary_cross_entropy":
        return F.binary_cross_entropy(x, y, weight=weight, reduction=reduction)
    if op == "kl_div":
        return F.kl_div(x, y, reduction=reduction, log_target=bool(params[0]))
    if op == "cosine_similarity":
        return F.cosine_similarity(x, y, dim=int(params[0]), eps=params[1])
    if op == "cosine_embedding_loss":
        return F.cosine_embedding_loss(x, y, weight, margin=params[0], reduction=reduction)
    raise ValueError(op)


def number(v):
    if math.isnan(v):
        return "NAN"
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return repr(float(v))


def array(t):
    if t is None:
        return "{{}, {}}"
    t = t.detach()
    shape = ", ".join(str(s) for s in t.shape)
    return ("{{" + shape + "}, {" + ", ".join(number(v) for v in t.reshape(-1).tolist()) + "}}")


def upstream_for(loss):
    n = loss.numel()
    return torch.tensor([0.5 + 0.25 * ((3 * i) % 7) - 0.75 * (i % 2) for i in range(n)],
                        dtype=D).reshape(loss.shape)


def main():
    print("// clang-format off")
    print("// GENERATED by tests/core/reference/gen_losses2.py with PyTorch "
          f"{torch.__version__}; do not edit by hand.")
    print("// Regenerate: /usr/bin/python3 tests/core/reference/gen_losses2.py > "
          "tests/core/reference/losses2_values.hpp")
    print("#pragma once\n\n#include <cmath>\n#include <cstddef>\n#include <vector>\n")
    print("namespace losses2_ref {\n")
    print("struct Array {")
    print("    std::vector<std::size_t> shape;")
    print("    std::vector<double> values;")
    print("};\n")
    print("struct Case {")
    print("    const char* op;")
    print("    std::vector<double> params;  // see gen_losses2.py for each op's")
    print("    const char* reduction;")
    print("    Array input, target;  // an int64 target is stored as doubles")
    print("    bool target_is_index;")
    print("    Array weight;  // empty shape and values: none (cosine_embedding_loss: its target)")
    print("    bool has_weight;")
    print("    Array upstream;  // for unreduced losses")
    print("    Array loss, grad_input, grad_target;  // grad_target empty when not differentiated")
    print("};\n")
    print("inline const std::vector<Case> kCases = {")
    for op, params, x0, y0, weight, reductions, grad_target in CASES:
        for reduction in reductions:
            x = x0.clone().requires_grad_(True)
            is_index = not y0.is_floating_point()
            y = y0.clone().requires_grad_(grad_target and not is_index)
            loss = call(op, params, x, y, weight, reduction)
            unreduced = reduction == "none" or loss.dim() > 0
            upstream = upstream_for(loss) if unreduced else None
            root = (loss * upstream).sum() if unreduced else loss
            root.backward()
            gt = y.grad if y.requires_grad else None
            has_weight = weight is not None
            params_text = "{" + ", ".join(number(float(p)) for p in params) + "}"
            print(f'    {{"{op}", {params_text}, "{reduction}", {array(x0)}, {array(y0)}, '
                  f'{str(is_index).lower()}, {array(weight)}, {str(has_weight).lower()}, '
                  f'{array(upstream)}, {array(loss)}, {array(x.grad)}, {array(gt)}}},')
    print("};\n\n}  // namespace losses2_ref")


if __name__ == "__main__":
    main()
