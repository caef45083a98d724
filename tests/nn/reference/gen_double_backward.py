"""Generates double_backward_values.hpp: PyTorch second-order gradients through
the layers, for tests/nn/test_double_backward.cpp. Everything is float64
unless named float32, and every case loads the shared weights below.

- Gradient penalty: for every FeedForward variant (eval mode, dropout off),
  L = sum(ffn(x) * upstream), g = dL/dx with create_graph, P = sum(g^2);
  P, dP/dx and dP/d(every parameter), from P.backward(). The same for
  LayerNorm(4) and for a pre-norm block x + swiglu(norm(x)); and swiglu once
  in float32.
- Hessian-vector products Hv = d/dx (dL/dx . v): for swiglu with L as above,
  and for an MLP Linear(4, 8) -> Tanh -> Linear(8, 3) with L = mse_loss(mlp(x),
  target), where also d/dtheta (dL/dtheta . v_theta) for its parameters.
- WGAN-GP-style training: Linear(4, 8) -> Tanh -> Linear(8, 1) with
  loss = mse + 0.1 * mean_i ||d mse / d x_i||^2 (through create_graph), five
  Adam steps (lr 0.01): the loss before each step and the final parameters.

A gradient that PyTorch leaves as None (an input the penalty does not depend
on, such as LayerNorm's bias) is written as zeros.

Run from anywhere with /usr/bin/python3 (torch 1.13):
    /usr/bin/python3 tests/nn/reference/gen_double_backward.py
"""
import os

import torch
from torch import nn

from torch_layers import FeedForward, cpp_array, cpp_number, named_feed_forward, write_header

HERE = os.path.dirname(os.path.abspath(__file__))
f64 = torch.float64
D_MODEL, D_FF = 4, 6
MLP_IN, MLP_HIDDEN, MLP_OUT, MLP_BATCH = 4, 8, 3, 5
GP_BATCH, GP_STEPS, GP_LR, GP_WEIGHT = 8, 5, 0.01, 0.1

torch.manual_seed(4242)
FFN_WEIGHTS = {
    "layer1.weight": torch.randn(D_FF, D_MODEL, dtype=f64) * 0.5,
    "layer1.bias": torch.randn(D_FF, dtype=f64) * 0.5,
    "layer2.weight": torch.randn(D_MODEL, D_FF, dtype=f64) * 0.5,
    "layer2.bias": torch.randn(D_MODEL, dtype=f64) * 0.5,
    "linear_v.weight": torch.randn(D_FF, D_MODEL, dtype=f64) * 0.5,
    "linear_v.bias": torch.randn(D_FF, dtype=f64) * 0.5,
}
NORM_WEIGHTS = {
    "weight": 1.0 + 0.3 * torch.randn(D_MODEL, dtype=f64),
    "bias": 0.3 * torch.randn(D_MODEL, dtype=f64),
}
X = torch.randn(2, 3, D_MODEL, dtype=f64)
UPSTREAM = torch.randn(2, 3, D_MODEL, dtype=f64)
V = torch.randn(2, 3, D_MODEL, dtype=f64)  # the swiglu Hessian-vector product's v

MLP_WEIGHTS = {
    "0.weight": torch.randn(MLP_HIDDEN, MLP_IN, dtype=f64) * 0.5,
    "0.bias": torch.randn(MLP_HIDDEN, dtype=f64) * 0.5,
    "2.weight": torch.randn(MLP_OUT, MLP_HIDDEN, dtype=f64) * 0.5,
    "2.bias": torch.randn(MLP_OUT, dtype=f64) * 0.5,
}
MLP_X = torch.randn(MLP_BATCH, MLP_IN, dtype=f64)
MLP_TARGET = torch.randn(MLP_BATCH, MLP_OUT, dtype=f64)
MLP_VX = torch.randn(MLP_BATCH, MLP_IN, dtype=f64)
MLP_VPARAMS = {k: torch.randn_like(w) for k, w in MLP_WEIGHTS.items()}

GP_WEIGHTS = {
    "0.weight": torch.randn(MLP_HIDDEN, MLP_IN, dtype=f64) * 0.5,
    "0.bias": torch.randn(MLP_HIDDEN, dtype=f64) * 0.5,
    "2.weight": torch.randn(1, MLP_HIDDEN, dtype=f64) * 0.5,
    "2.bias": torch.randn(1, dtype=f64) * 0.5,
}
GP_X = torch.randn(GP_BATCH, MLP_IN, dtype=f64)
GP_Y = torch.randn(GP_BATCH, 1, dtype=f64)

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "gelu": lambda: nn.GELU(),
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
}
# (variant, is_gated): ungated with every bias, the gated ReLU with every bias,
# then the bias-free named GLU variants.
FFN_CASES = [("relu", False), ("gelu", False), ("gelu_tanh", False), ("relu", True)]
FFN_CASES += [(kind, True) for kind in ("glu", "bilinear", "reglu", "geglu", "swiglu")]


def build_ffn(variant, gated, dtype=f64):
    if variant in ACTIVATIONS:
        model = FeedForward(D_MODEL, D_FF, 0.1, ACTIVATIONS[variant](), gated)
    else:
        model = named_feed_forward(variant, D_MODEL, D_FF, 0.1)
    # Convert first, so float64 models load the weights without rounding.
    model = model.to(dtype).eval()
    model.load_state_dict({k: FFN_WEIGHTS[k] for k in model.state_dict()})
    return model


def build_mlp(weights, out_features):
    model = nn.Sequential(nn.Linear(MLP_IN, MLP_HIDDEN), nn.Tanh(),
                          nn.Linear(MLP_HIDDEN, out_features)).to(f64)
    model.load_state_dict(weights)
    return model


def grad_or_zeros(p):
    return p.grad if p.grad is not None else torch.zeros_like(p)


def penalty(fn, params, dtype=f64):
    """P = sum((d sum(fn(x) * upstream) / dx)^2): P, dP/dx, [(name, dP/dp)]."""
    x = X.to(dtype).clone().requires_grad_(True)
    loss = (fn(x) * UPSTREAM.to(dtype)).sum()
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    p = (g * g).sum()
    p.backward()
    return p, grad_or_zeros(x), [(name, grad_or_zeros(t)) for name, t in params]


def penalty_record(name, result, float32=False):
    p, gx, grads = result
    named = ", ".join("{\"%s\", %s}" % (k, cpp_array(v, float32)) for k, v in grads)
    return ("    {\"%s\", %s,\n     %s,\n     {%s}}"
            % (name, cpp_number(p.item(), float32), cpp_array(gx, float32), named))


class PreNorm(nn.Module):
    """x + feed_forward(norm(x)): the FeedForward half of a pre-norm encoder layer."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(D_MODEL).to(f64)
        self.norm.load_state_dict(NORM_WEIGHTS)
        self.feed_forward = build_ffn("swiglu", True)

    def forward(self, x):
        return x + self.feed_forward(self.norm(x))


def penalty_cases():
    records = []
    for variant, gated in FFN_CASES:
        model = build_ffn(variant, gated)
        name = variant + ("_gated" if gated and variant in ACTIVATIONS else "")
        records.append(penalty_record(name, penalty(model, list(model.named_parameters()))))
    norm = nn.LayerNorm(D_MODEL).to(f64)
    norm.load_state_dict(NORM_WEIGHTS)
    records.append(penalty_record("layer_norm", penalty(norm, list(norm.named_parameters()))))
    block = PreNorm()
    records.append(penalty_record("pre_norm_swiglu", penalty(block, list(block.named_parameters()))))
    swiglu32 = build_ffn("swiglu", True, torch.float32)
    float32 = penalty_record("swiglu", penalty(swiglu32, list(swiglu32.named_parameters()),
                                               torch.float32), True)
    return records, float32


def hvp_cases():
    ffn = build_ffn("swiglu", True)
    x = X.clone().requires_grad_(True)
    (g,) = torch.autograd.grad((ffn(x) * UPSTREAM).sum(), x, create_graph=True)
    (swiglu_hvp,) = torch.autograd.grad((g * V).sum(), x)

    mlp = build_mlp(MLP_WEIGHTS, MLP_OUT)
    x = MLP_X.clone().requires_grad_(True)
    loss = nn.functional.mse_loss(mlp(x), MLP_TARGET)
    (g,) = torch.autograd.grad(loss, x, create_graph=True)
    (mlp_hvp,) = torch.autograd.grad((g * MLP_VX).sum(), x)

    names = [k for k, _ in mlp.named_parameters()]
    params = [p for _, p in mlp.named_parameters()]
    loss = nn.functional.mse_loss(mlp(MLP_X), MLP_TARGET)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * MLP_VPARAMS[k]).sum() for k, g in zip(names, grads))
    param_hvp = torch.autograd.grad(dot, params)
    return swiglu_hvp, mlp_hvp, list(zip(names, param_hvp))


def gradient_penalty_training():
    model = build_mlp(GP_WEIGHTS, 1)
    opt = torch.optim.Adam(model.parameters(), lr=GP_LR)
    x = GP_X.clone().requires_grad_(True)
    losses = []
    for _ in range(GP_STEPS):
        opt.zero_grad()
        mse = nn.functional.mse_loss(model(x), GP_Y)
        (gx,) = torch.autograd.grad(mse, x, create_graph=True)
        loss = mse + GP_WEIGHT * (gx * gx).sum(1).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, list(model.named_parameters())


def named_list(items):
    return ", ".join("{\"%s\", %s}" % (k, cpp_array(v)) for k, v in items)


def main():
    penalties, float32 = penalty_cases()
    swiglu_hvp, mlp_hvp, param_hvp = hvp_cases()
    losses, final = gradient_penalty_training()

    body = [
        "",
        "using Named = std::vector<std::pair<std::string, Array>>;",
        "",
        "inline constexpr std::size_t d_model = %d, d_ff = %d;" % (D_MODEL, D_FF),
        "",
        "// FeedForward weights (a variant loads the keys its state_dict has) and LayerNorm's.",
        "inline const Named ffn_weights = {%s};" % named_list(FFN_WEIGHTS.items()),
        "inline const Named norm_weights = {%s};" % named_list(NORM_WEIGHTS.items()),
        "// The input x, the upstream gradient of L = sum(f(x) * upstream), and swiglu's HVP vector.",
        "inline const Array x = %s;" % cpp_array(X),
        "inline const Array upstream = %s;" % cpp_array(UPSTREAM),
        "inline const Array v = %s;" % cpp_array(V),
        "",
        "// P = sum((dL/dx)^2), dP/dx and dP/d(parameter), named_parameters order.",
        "struct Penalty {",
        "    std::string name;  // a FeedForward variant (relu_gated: gated ReLU with biases),",
        "                       // layer_norm, or pre_norm_swiglu (x + swiglu(norm(x)))",
        "    double penalty;",
        "    Array grad_input;",
        "    Named grads;",
        "};",
        "",
        "inline const std::vector<Penalty>& penalties() {",
        "    static const std::vector<Penalty> all = {",
        ",\n".join(penalties),
        "    };",
        "    return all;",
        "}",
        "",
        "// swiglu's penalty with float32 model and input (PyTorch's float32 values).",
        "inline const Penalty& swiglu_float32() {",
        "    static const Penalty value =",
        float32 + ";",
        "    return value;",
        "}",
        "",
        "// Hv = d/dx (dL/dx . v) for swiglu, L = sum(ffn(x) * upstream).",
        "inline const Array swiglu_hvp = %s;" % cpp_array(swiglu_hvp),
        "",
        "// MLP Linear(%d, %d) -> Tanh -> Linear(%d, %d), L = mse_loss(mlp(x), target):"
        % (MLP_IN, MLP_HIDDEN, MLP_HIDDEN, MLP_OUT),
        "// Hv in x, and d/dtheta (dL/dtheta . v_theta) over its parameters.",
        "inline const Named mlp_weights = {%s};" % named_list(MLP_WEIGHTS.items()),
        "inline const Array mlp_x = %s;" % cpp_array(MLP_X),
        "inline const Array mlp_target = %s;" % cpp_array(MLP_TARGET),
        "inline const Array mlp_vx = %s;" % cpp_array(MLP_VX),
        "inline const Array mlp_hvp = %s;" % cpp_array(mlp_hvp),
        "inline const Named mlp_vparams = {%s};" % named_list(MLP_VPARAMS.items()),
        "inline const Named mlp_param_hvp = {%s};" % named_list(param_hvp),
        "",
        "// Linear(%d, %d) -> Tanh -> Linear(%d, 1) trained by Adam(lr %s) on" % (
            MLP_IN, MLP_HIDDEN, MLP_HIDDEN, GP_LR),
        "// mse + %s * mean_i ||d mse / d x_i||^2: the loss before each step, then the weights."
        % GP_WEIGHT,
        "inline constexpr double gp_lr = %s, gp_weight = %s;" % (GP_LR, GP_WEIGHT),
        "inline const Named gp_weights = {%s};" % named_list(GP_WEIGHTS.items()),
        "inline const Array gp_x = %s;" % cpp_array(GP_X),
        "inline const Array gp_y = %s;" % cpp_array(GP_Y),
        "inline const std::vector<double> gp_losses = {%s};"
        % ", ".join(cpp_number(v, False) for v in losses),
        "inline const Named gp_final = {%s};" % named_list(final),
        "",
    ]
    write_header(
        os.path.join(HERE, "double_backward_values.hpp"),
        "gen_double_backward.py",
        [
            "Second-order gradients: gradient penalties through FeedForward and LayerNorm,",
            "Hessian-vector products, and gradient-penalty training with Adam.",
        ],
        "reference::double_backward",
        body,
    )


if __name__ == "__main__":
    main()
