#!/usr/bin/env python3
"""Generates optim_reference.hpp: PyTorch's parameter trajectories for every optimizer option
combination and every learning-rate scheduler on one small least-squares problem.

Run from the repository root with Debian's python3-torch (tested with 1.13):
    /usr/bin/python3 tests/optim/reference/gen_optim.py > tests/optim/reference/optim_reference.hpp

Problem: params w [3, 2] and b [2], loss = sum((x @ w + b - y) ** 2) on the fixed x [5, 3], y [5, 2]
below. Each configuration runs 50 steps of zero_grad, loss, backward, optimizer.step() and (if any)
scheduler.step(), once in float64 and once in float32, with the single-tensor (foreach=False)
implementations. After every step the header records w (row-major) then b, and for schedulers the
lr of every group. tests/optim/test_trajectories.cpp builds the same configurations in C++; its
table of configurations and the list below must name the same set.
"""
import torch

STEPS = 50
X = [[0.5, -1.2, 0.3], [1.5, 0.2, -0.7], [-0.4, 0.9, 1.1], [0.8, -0.3, -1.6], [-1.3, 0.6, 0.4]]
Y = [[1.0, -0.5], [0.3, 2.0], [-1.2, 0.7], [0.6, -1.1], [-0.8, 0.4]]
W0 = [[0.23, -0.41], [0.68, 0.12], [-0.33, 0.52]]
B0 = [0.07, -0.13]

SGD, Adam, AdamW, sched = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.lr_scheduler


def two_groups(cls, w, b, b_options, **defaults):
    # b's group sets only b_options and inherits every other option from the defaults.
    return cls([{"params": [w]}, dict(params=[b], **b_options)], foreach=False, **defaults)


# name -> (make optimizer(w, b), make scheduler(optimizer) or None)
CONFIGS = {
    "sgd_plain": (lambda w, b: SGD([w, b], lr=0.01, foreach=False), None),
    "sgd_momentum": (lambda w, b: SGD([w, b], lr=0.01, momentum=0.9, foreach=False), None),
    "sgd_dampening": (lambda w, b: SGD([w, b], lr=0.01, momentum=0.9, dampening=0.3, foreach=False), None),
    "sgd_nesterov": (lambda w, b: SGD([w, b], lr=0.01, momentum=0.8, nesterov=True, foreach=False), None),
    "sgd_weight_decay": (lambda w, b: SGD([w, b], lr=0.01, weight_decay=0.1, foreach=False), None),
    "sgd_momentum_weight_decay": (
        lambda w, b: SGD([w, b], lr=0.01, momentum=0.9, weight_decay=0.05, foreach=False), None),
    "sgd_maximize": (lambda w, b: SGD([w, b], lr=0.002, momentum=0.5, maximize=True, foreach=False), None),
    "sgd_groups": (lambda w, b: two_groups(SGD, w, b, {"lr": 0.03, "nesterov": True}, lr=0.01, momentum=0.7),
                   None),
    "adam_plain": (lambda w, b: Adam([w, b], lr=0.05, foreach=False), None),
    "adam_weight_decay": (lambda w, b: Adam([w, b], lr=0.05, weight_decay=0.1, foreach=False), None),
    "adam_amsgrad": (lambda w, b: Adam([w, b], lr=0.05, betas=(0.8, 0.9), amsgrad=True, foreach=False), None),
    "adam_maximize": (lambda w, b: Adam([w, b], lr=0.01, maximize=True, foreach=False), None),
    "adam_eps": (lambda w, b: Adam([w, b], lr=0.05, eps=1e-3, foreach=False), None),
    "adam_groups": (lambda w, b: two_groups(Adam, w, b, {"amsgrad": True, "weight_decay": 0.2}, lr=0.04,
                                            betas=(0.85, 0.95)), None),
    "adamw_plain": (lambda w, b: AdamW([w, b], lr=0.05, foreach=False), None),
    "adamw_amsgrad": (lambda w, b: AdamW([w, b], lr=0.05, weight_decay=0.1, amsgrad=True, foreach=False),
                      None),
    "adamw_maximize": (lambda w, b: AdamW([w, b], lr=0.01, maximize=True, foreach=False), None),
}

# Every scheduler drives SGD(momentum 0.5) with two groups: w at lr 0.02, b at lr 0.05.
def sched_sgd(w, b):
    return two_groups(SGD, w, b, {"lr": 0.05}, lr=0.02, momentum=0.5)


CONFIGS.update({
    "step_lr": (sched_sgd, lambda o: sched.StepLR(o, step_size=7, gamma=0.5)),
    "multi_step_lr": (sched_sgd, lambda o: sched.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.5)),
    "exponential_lr": (sched_sgd, lambda o: sched.ExponentialLR(o, gamma=0.95)),
    "cosine_annealing_lr": (sched_sgd, lambda o: sched.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
    "linear_lr": (sched_sgd, lambda o: sched.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=8)),
    # The C++ test uses the same function: 1 / (1 + 0.1 * epoch), then halved from epoch 20.
    "lambda_lr": (sched_sgd, lambda o: sched.LambdaLR(
        o, lambda e: 1.0 / (1.0 + 0.1 * e) * (0.5 if e >= 20 else 1.0))),
})


def run(make_opt, make_sched, dtype):
    x, y = torch.tensor(X, dtype=dtype), torch.tensor(Y, dtype=dtype)
    w = torch.tensor(W0, dtype=dtype, requires_grad=True)
    b = torch.tensor(B0, dtype=dtype, requires_grad=True)
    opt = make_opt(w, b)
    scheduler = make_sched(opt) if make_sched else None
    params, lrs = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).sum()
        loss.backward()
        opt.step()
        if scheduler:
            scheduler.step()
            lrs.append(scheduler.get_last_lr())
        params.append(w.detach().flatten().tolist() + b.detach().tolist())
    return params, lrs


def f64(v):
    return repr(float(v))


def f32(v):
    return "%.9gf" % v


def rows(table, fmt):
    return "{\n" + ",\n".join("    {" + ", ".join(fmt(v) for v in row) + "}" for row in table) + "}"


out = ["// Generated by tests/optim/reference/gen_optim.py from PyTorch " + torch.__version__ + ": do not edit.",
       "#pragma once", "", "namespace optim_ref {", "",
       f"inline constexpr int kSteps = {STEPS};",
       "inline constexpr int kValues = 8;  // w [3, 2] row-major, then b [2]",
       "inline constexpr double x[5][3] = " + rows(X, f64) + ";",
       "inline constexpr double y[5][2] = " + rows(Y, f64) + ";",
       "inline constexpr double w0[3][2] = " + rows(W0, f64) + ";",
       "inline constexpr double b0[2] = {" + ", ".join(f64(v) for v in B0) + "};", ""]
for name, (make_opt, make_sched) in CONFIGS.items():
    p64, lrs = run(make_opt, make_sched, torch.float64)
    p32, _ = run(make_opt, make_sched, torch.float32)
    out.append(f"inline constexpr double {name}_f64[{STEPS}][8] = " + rows(p64, f64) + ";")
    out.append(f"inline constexpr float {name}_f32[{STEPS}][8] = " + rows(p32, f32) + ";")
    if make_sched:
        out.append(f"inline constexpr double {name}_lr[{STEPS}][2] = " + rows(lrs, f64) + ";")
    out.append("")

out.append("struct Reference {")
out.append("    const char* name;")
out.append("    const double (*f64)[8];")
out.append("    const float (*f32)[8];")
out.append("    const double (*lr)[2];  // null without a scheduler")
out.append("};")
out.append("inline constexpr Reference references[] = {")
for name, (_, make_sched) in CONFIGS.items():
    lr = f"{name}_lr" if make_sched else "nullptr"
    out.append(f'    {{"{name}", {name}_f64, {name}_f32, {lr}}},')
out.append("};")
out.append("")
out.append("}  // namespace optim_ref")
print("\n".join(out))
