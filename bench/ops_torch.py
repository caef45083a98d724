#!/usr/bin/python3
"""The single ops of bench/ops.cpp in PyTorch (Debian's python3-torch), one
thread, for the README's comparison: median ms of forward + backward with a
gradient of ones, on a [2048, 2048] float32 input.

    /usr/bin/python3 bench/ops_torch.py
"""
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)
x0 = torch.randn(2048, 2048)
row = torch.randn(2048, requires_grad=True)
weight, bias = torch.ones(2048, requires_grad=True), torch.zeros(2048, requires_grad=True)
targets = torch.randint(0, 2048, (2048,))
other = torch.randn(2048, 2048)
mask = torch.randn(2048, 2048) > 0
index = torch.randint(0, 2048, (2048, 2048))
F = torch.nn.functional
ops = {
    "dropout": lambda x: F.dropout(x, 0.1, True),
    "relu": torch.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "scale": lambda x: x * 0.5,
    "square": lambda x: x * x,
    "tanh": torch.tanh,
    "exp": torch.exp,
    "add_row": lambda x: x + row,
    "mul_row": lambda x: x * row,
    "sum_rows": lambda x: x.sum(0),
    "sum_cols": lambda x: x.sum(1),
    "softmax": lambda x: torch.softmax(x, -1),
    "log_softmax": lambda x: torch.log_softmax(x, -1),
    "layer_norm": lambda x: F.layer_norm(x, (2048,), weight, bias),
    "transpose": lambda x: x.t().contiguous(),
    "mse_loss": lambda x: F.mse_loss(x, other),
    "cross_entropy": lambda x: F.cross_entropy(x, targets),
    "where": lambda x: torch.where(mask, x, other),
    "clamp": lambda x: torch.clamp(x, -0.5, 0.5),
    "slice_step2": lambda x: x[:, ::2],
    "gather": lambda x: torch.gather(x, 1, index),
    "var": lambda x: x.var(1),
    "logsumexp": lambda x: torch.logsumexp(x, 1),
}
for name, f in ops.items():
    x = x0.clone().requires_grad_()
    times = []
    for _ in range(25):
        start = time.perf_counter()
        y = f(x)
        y.backward(torch.ones_like(y))
        times.append(time.perf_counter() - start)
        x.grad = None
    times.sort()
    print(f"{name:14s} {times[len(times) // 2] * 1e3:7.2f} ms")
