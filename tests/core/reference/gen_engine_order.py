#!/usr/bin/env python3
"""Prints the order in which PyTorch's backward reaches tensor hooks in the two
graphs of tests/core/test_engine.cpp's "a leaf's accumulator runs as soon as it is
ready" test (the expected orders there were taken from this script's output).

Run with Debian's PyTorch (tested with 1.13):
    /usr/bin/python3 tests/core/reference/gen_engine_order.py

A leaf's hook runs when its AccumulateGrad runs. PyTorch gives AccumulateGrad
the highest priority, so it runs as soon as every gradient for the leaf has
arrived, even before ready nodes created after the leaf's first use.
"""
import torch

order = []
w = torch.tensor([0.5, 0.25], dtype=torch.float64, requires_grad=True)

# x was used in an earlier graph; then n's chain is built before x's use.
x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
x.register_hook(lambda g: order.append("x"))
(x * 3).sum().backward()
order.clear()
n = torch.exp(w)
n.register_hook(lambda g: order.append("n"))
c = x * 5
(n.sum() + c.sum()).backward()
print("used before:", order)

# x is first used before n's chain: its gradient arrives only after n's.
order.clear()
x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
x.register_hook(lambda g: order.append("x"))
a = x * 2
n = torch.exp(w)
n.register_hook(lambda g: order.append("n"))
c = a * 5
(n.sum() + c.sum()).backward()
print("first use first:", order)
