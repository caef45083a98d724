"""Generates loss_modules_reference.hpp: for each torch.nn loss module (and
CosineSimilarity), one float64 case with non-default options -- its inputs, the
output, and the gradients of sum(output * upstream) -- plus the repr() and the
registered buffers (name, and whether it holds a tensor or None) of several
configurations, for tests/nn/test_loss.cpp.

The options of each case are spelled again in test_loss.cpp's make_case();
keep the two in step.

Run with /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 tests/nn/reference/gen_loss_modules.py
"""
import os

import torch
from torch import nn

from torch_layers import cpp_array, cpp_string

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(1313)
f64 = torch.float64


def randn(*shape):
    return torch.randn(*shape, dtype=f64)


def case(name, module, inputs, extra):
    """Runs module(*inputs) and back-propagates sum(output * upstream) into the
    floating-point inputs. `inputs` is a list of (name, tensor, differentiable)."""
    leaves = []
    for _, tensor, differentiable in inputs:
        leaves.append(tensor.clone().requires_grad_(differentiable))
    out = module(*leaves)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    arrays = [(n, t) for n, t, _ in inputs] + list(extra.items())
    arrays += [("upstream", upstream), ("output", out.detach())]
    arrays += [("grad_" + n, leaf.grad) for (n, _, d), leaf in zip(inputs, leaves) if d]
    body = "\n".join("    {\"%s\", %s}," % (k, cpp_array(v.to(f64))) for k, v in arrays)
    return "inline const std::vector<std::pair<std::string, Array>> %s = {\n%s\n};" % (name, body)


def main():
    sections = []

    x, y = randn(3, 4), randn(3, 4)
    sections.append(case("mse", nn.MSELoss(reduction="sum"),
                         [("input", x, True), ("target", y, False)], {}))
    x, y = randn(3, 4), randn(3, 4)
    sections.append(case("l1", nn.L1Loss(), [("input", x, True), ("target", y, False)], {}))
    # Differences on both sides of beta and delta.
    x, y = randn(3, 4), randn(3, 4) * 0.5
    sections.append(case("smooth_l1", nn.SmoothL1Loss(reduction="none", beta=0.5),
                         [("input", x, True), ("target", y, False)], {}))
    x, y = randn(3, 4), randn(3, 4) * 0.5
    sections.append(case("huber", nn.HuberLoss(delta=0.7),
                         [("input", x, True), ("target", y, False)], {}))

    # Class weights, an ignored class (index 1, twice) and label smoothing together.
    w = torch.rand(4, dtype=f64) + 0.5
    x, t = randn(5, 4), torch.tensor([0, 1, 3, 2, 1])
    sections.append(case("cross_entropy",
                         nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1),
                         [("input", x, True), ("target", t, False)], {"weight": w}))
    w = torch.rand(3, dtype=f64) + 0.5
    x, t = torch.log_softmax(randn(5, 3), 1), torch.tensor([0, 2, 1, 1, 0])
    sections.append(case("nll", nn.NLLLoss(weight=w, ignore_index=2),
                         [("input", x, True), ("target", t, False)], {"weight": w}))
    w = torch.rand(4, dtype=f64) + 0.5
    x, y = torch.sigmoid(randn(3, 4)), torch.rand(3, 4, dtype=f64)
    sections.append(case("bce", nn.BCELoss(weight=w),
                         [("input", x, True), ("target", y, False)], {"weight": w}))
    # weight [3, 1] broadcasts over rows, pos_weight [4] over the last dim.
    w, pw = torch.rand(3, 1, dtype=f64) + 0.5, torch.rand(4, dtype=f64) + 0.5
    x, y = randn(3, 4), torch.rand(3, 4, dtype=f64)
    sections.append(case("bce_logits", nn.BCEWithLogitsLoss(weight=w, reduction="sum",
                                                            pos_weight=pw),
                         [("input", x, True), ("target", y, False)],
                         {"weight": w, "pos_weight": pw}))
    # The mean of the weighted elementwise loss (not divided by the weights' sum).
    w, pw = torch.rand(4, dtype=f64) + 0.5, torch.rand(4, dtype=f64) + 0.5
    x, y = randn(3, 4), torch.rand(3, 4, dtype=f64)
    sections.append(case("bce_logits_mean", nn.BCEWithLogitsLoss(weight=w, pos_weight=pw),
                         [("input", x, True), ("target", y, False)],
                         {"weight": w, "pos_weight": pw}))
    x, y = torch.log_softmax(randn(3, 4), 1), torch.log_softmax(randn(3, 4), 1)
    sections.append(case("kl_div", nn.KLDivLoss(reduction="batchmean", log_target=True),
                         [("input", x, True), ("target", y, False)], {}))

    x1, x2 = randn(3, 4), randn(3, 4)
    sections.append(case("cosine_similarity", nn.CosineSimilarity(dim=0, eps=1e-6),
                         [("x1", x1, True), ("x2", x2, True)], {}))
    # Rows 1 and 2 have target -1: row 1 near input1 (cos above the margin), row 2 opposite.
    x1 = randn(4, 5)
    x2 = randn(4, 5)
    x2[1] = x1[1] + 0.3 * randn(5)
    x2[2] = -x1[2] + 0.3 * randn(5)
    t = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=f64)
    sections.append(case("cosine_embedding", nn.CosineEmbeddingLoss(margin=0.2),
                         [("input1", x1, True), ("input2", x2, True), ("target", t, False)], {}))

    w3, w4 = torch.ones(3), torch.ones(4)
    configs = {
        "mse": nn.MSELoss(),
        "mse_sum": nn.MSELoss(reduction="sum"),
        "l1": nn.L1Loss(reduction="none"),
        "smooth_l1": nn.SmoothL1Loss(beta=0.5),
        "huber": nn.HuberLoss(delta=2.0),
        "cross_entropy": nn.CrossEntropyLoss(),
        "cross_entropy_weighted": nn.CrossEntropyLoss(weight=w3, ignore_index=0,
                                                      label_smoothing=0.1),
        "nll": nn.NLLLoss(),
        "nll_weighted": nn.NLLLoss(weight=w3, reduction="sum"),
        "bce": nn.BCELoss(),
        "bce_weighted": nn.BCELoss(weight=w4),
        "bce_logits": nn.BCEWithLogitsLoss(),
        "bce_logits_pos_weight": nn.BCEWithLogitsLoss(pos_weight=w4),
        "bce_logits_both": nn.BCEWithLogitsLoss(weight=w4, pos_weight=w4),
        "kl_div": nn.KLDivLoss(reduction="batchmean", log_target=True),
        "cosine_similarity": nn.CosineSimilarity(dim=0, eps=1e-6),
        "cosine_embedding": nn.CosineEmbeddingLoss(margin=0.5, reduction="sum"),
    }

    out = [
        "// clang-format off",
        "// Generated by gen_loss_modules.py from PyTorch %s; do not edit." % torch.__version__,
        "#pragma once",
        "",
        "#include <string>",
        "#include <utility>",
        "#include <vector>",
        "",
        "#include \"nn/reference/array.hpp\"",
        "",
        "namespace reference::loss_modules {",
        "",
    ]
    out += [s + "\n" for s in sections]
    out += ["// repr() of each configuration, by name.",
            "inline const std::vector<std::pair<std::string, std::string>> reprs = {"]
    out += ["    {\"%s\", %s}," % (k, cpp_string(repr(m))) for k, m in configs.items()]
    out += ["};", ""]
    out += ["// Each configuration's registered buffers in order: name, and whether it holds a",
            "// tensor (false: None, left out of the state_dict).",
            "inline const std::vector<std::pair<std::string, "
            "std::vector<std::pair<std::string, bool>>>> buffers = {"]
    for k, m in configs.items():
        items = ", ".join("{\"%s\", %s}" % (n, "true" if b is not None else "false")
                          for n, b in m._buffers.items())
        out.append("    {\"%s\", {%s}}," % (k, items))
    out += ["};", ""]
    out += ["// Each configuration's state_dict keys.",
            "inline const std::vector<std::pair<std::string, std::vector<std::string>>> "
            "state_dict_keys = {"]
    for k, m in configs.items():
        out.append("    {\"%s\", {%s}}," % (k, ", ".join("\"%s\"" % n for n in m.state_dict())))
    out += ["};", "", "}  // namespace reference::loss_modules", ""]
    with open(os.path.join(HERE, "loss_modules_reference.hpp"), "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
