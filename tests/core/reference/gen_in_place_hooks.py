#!/usr/bin/env python3
"""Prints what PyTorch's tensor hooks and retain_grad see around an in-place op,
the values tests/core/test_in_place.cpp's hook tests expect.

Run with Debian's PyTorch (tested with 1.13):
    /usr/bin/python3 tests/core/reference/gen_in_place_hooks.py

A hook belongs to the grad_fn the tensor had when the hook was registered, so
one registered before y.mul_(3) sees the gradient of the old values (3 times
the new one), once. retain_grad keeps the gradient of the tensor's latest
values. The test's hook registered after mul_ sees the new values' gradient,
by that same rule; PyTorch 1.13 differs there (the second case below): it runs
every later hook of a tensor on the node its first hook went to.
"""
import torch


def run(register_before, register_after, retain):
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    y = x * 2
    seen = []
    if register_before:
        y.register_hook(lambda g: seen.append(("before", g.tolist())))
    if retain:
        y.retain_grad()
    y.mul_(3)
    if register_after:
        y.register_hook(lambda g: seen.append(("after", g.tolist())))
    (y * torch.tensor([1.0, 10.0], dtype=torch.float64)).sum().backward()
    return seen, x.grad.tolist(), (y.grad.tolist() if retain else None)


print("hook before mul_:", run(True, False, False))
print("hooks before and after mul_:", run(True, True, False))
print("retain_grad before mul_:", run(False, False, True))
