#!/usr/bin/python3
"""Generates reference_values.hpp for the xg::nn::Module tests from PyTorch.

Run with Debian's PyTorch (python3-torch, 1.13):
    /usr/bin/python3 tests/nn/module/reference/gen_reference.py

The Python modules below mirror tests/nn/module/modules.hpp class for class:
same class names, same registration order, same extra_repr, same values. What
torch 1.13 cannot show (prepend, always_call, full backward pre hooks,
named_parameters(remove_duplicate=False), xgrad's "_extra_state.<key>" keys and
shapes printed as [2, 3] rather than torch.Size([2, 3])) is derived by hand in
the tests from PyTorch's documented semantics, with a comment saying so.
"""
import os

import torch
from torch import nn

torch.set_default_dtype(torch.float64)


def values(n, scale=0.1, offset=0.0):
    """The deterministic fill the C++ tests use: scale * (i + 1) + offset, alternating sign."""
    return [((-1) ** i) * scale * (i + 1) + offset for i in range(n)]


class TinyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        w = torch.tensor(values(in_features * out_features)).reshape(out_features, in_features)
        self.register_parameter("weight", nn.Parameter(w))
        self.register_parameter(
            "bias", nn.Parameter(torch.tensor(values(out_features, 0.05))) if bias else None)
        self.register_buffer("running_mean", torch.zeros(out_features))
        self.register_buffer("scratch", torch.zeros(1), persistent=False)

    def forward(self, x):
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return "in_features={}, out_features={}, bias={}".format(
            self.in_features, self.out_features, self.bias is not None)


class TinyTanh(nn.Module):
    def forward(self, x):
        return torch.tanh(x)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_parameter("gain", nn.Parameter(torch.ones(4)))
        self.fc = TinyLinear(4, 4)
        self.register_buffer("count", torch.zeros(1))
        self.register_buffer("tmp", torch.zeros(1), persistent=False)

    def extra_repr(self):
        return "scale=0.5\nmode=fast"

    def forward(self, x):
        return self.fc(x) * self.gain


class Net(nn.Module):
    """a, act, b, a2 (the same module as a), empty (None); a parameter 'tied' is a.weight."""

    def __init__(self):
        super().__init__()
        self.register_parameter("tied", None)
        self.a = TinyLinear(3, 4)
        self.tied = self.a.weight
        self.act = TinyTanh()
        self.b = Block()
        self.a2 = self.a
        self.register_module("empty", None)


class Chain(nn.Module):
    """Children "0", "1", "2" run in order, like Sequential."""

    def __init__(self):
        super().__init__()
        self.add_module("0", TinyLinear(3, 4))
        self.add_module("1", TinyTanh())
        self.add_module("2", TinyLinear(4, 2))

    def forward(self, x):
        for child in self._modules.values():
            x = child(x)
        return x


class Deep(nn.Module):
    """Three levels of nesting with one-line and multi-line extra_repr."""

    def __init__(self):
        super().__init__()
        self.chain = Chain()
        self.block = Block()
        self.head = TinyLinear(2, 1, bias=False)


# ---- C++ emitters ----

def cpp_string(s):
    return 'R"xg(' + s + ')xg"'


def cpp_strings(items):
    return "{" + ", ".join('"' + s + '"' for s in items) + "}"


def cpp_doubles(t):
    return "{" + ", ".join(repr(float(v)) for v in t.detach().reshape(-1).tolist()) + "}"


out = []


def emit(name, kind, value):
    out.append("inline const {} {} = {};".format(kind, name, value))


# ---- printing ----
emit("repr_tiny_linear", "std::string", cpp_string(repr(TinyLinear(3, 2))))
emit("repr_tiny_linear_nobias", "std::string", cpp_string(repr(TinyLinear(3, 2, bias=False))))
emit("repr_tanh", "std::string", cpp_string(repr(TinyTanh())))
emit("repr_block", "std::string", cpp_string(repr(Block())))
emit("repr_chain", "std::string", cpp_string(repr(Chain())))
emit("repr_net", "std::string", cpp_string(repr(Net())))
emit("repr_deep", "std::string", cpp_string(repr(Deep())))

# ---- traversal ----
S = "std::vector<std::string>"
net = Net()
emit("net_named_parameters", S, cpp_strings([n for n, _ in net.named_parameters()]))
emit("net_named_parameters_prefix", S,
     cpp_strings([n for n, _ in net.named_parameters(prefix="model")]))
emit("net_named_parameters_local", S,
     cpp_strings([n for n, _ in net.named_parameters(recurse=False)]))
emit("net_named_buffers", S, cpp_strings([n for n, _ in net.named_buffers()]))
emit("net_named_children", S, cpp_strings([n for n, _ in net.named_children()]))
emit("net_named_modules", S, cpp_strings([n for n, _ in net.named_modules()]))
emit("net_named_modules_prefix", S, cpp_strings([n for n, _ in net.named_modules(prefix="m")]))
emit("net_named_modules_all", S,
     cpp_strings([n for n, _ in net.named_modules(remove_duplicate=False)]))
emit("net_state_dict_keys", S, cpp_strings(list(net.state_dict().keys())))
emit("net_state_dict_keys_prefix", S, cpp_strings(list(net.state_dict(prefix="p.").keys())))
deep = Deep()
emit("deep_named_parameters", S, cpp_strings([n for n, _ in deep.named_parameters()]))
emit("deep_state_dict_keys", S, cpp_strings(list(deep.state_dict().keys())))
visited = []
deep.apply(lambda m: visited.append(type(m).__name__))
emit("deep_apply_order", S, cpp_strings(visited))

# ---- load_state_dict error text ----
# Net2 mirrors the C++ test's "Net": a = TinyLinear(3, 2), b = TinyLinear(4, 2).
class Net2(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = TinyLinear(3, 2)
        self.b = TinyLinear(4, 2)


sd = Net2().state_dict()
del sd["a.bias"]
sd["zzz"] = torch.zeros(1)
sd["b.weight"] = torch.zeros(3, 3)
try:
    Net2().load_state_dict(sd)
    raise SystemExit("expected load_state_dict to fail")
except RuntimeError as e:
    # xgrad prints shapes as [3, 3], PyTorch as torch.Size([3, 3]); the rest is verbatim.
    text = str(e).replace("torch.Size(", "").replace("])", "]")
emit("load_error_net", "std::string", cpp_string(text))
result = Net2().load_state_dict({k: v for k, v in sd.items() if k != "b.weight"}, strict=False)
emit("load_nonstrict_missing", S, cpp_strings(result.missing_keys))
emit("load_nonstrict_unexpected", S, cpp_strings(result.unexpected_keys))

# ---- hook order ----
def trace_hooks(x_requires_grad):
    """Global and local forward pre / forward / full backward hooks on every module of a Chain."""
    model = Chain()
    names = {m: (n or "root") for n, m in model.named_modules()}
    trace = []
    handles = [
        nn.modules.module.register_module_forward_pre_hook(
            lambda m, i: trace.append("gpre:" + names.get(m, "?"))),
        nn.modules.module.register_module_forward_hook(
            lambda m, i, o: trace.append("gfwd:" + names.get(m, "?"))),
        nn.modules.module.register_module_full_backward_hook(
            lambda m, gi, go: trace.append(
                "gbwd:" + names.get(m, "?") + ("" if gi[0] is not None else "(none)"))),
    ]
    for m, n in names.items():
        handles.append(m.register_forward_pre_hook(lambda m, i, n=n: trace.append("pre:" + n)))
        handles.append(m.register_forward_hook(lambda m, i, o, n=n: trace.append("fwd:" + n)))
        handles.append(m.register_full_backward_hook(
            lambda m, gi, go, n=n: trace.append("bwd:" + n + ("" if gi[0] is not None else "(none)"))))
    model.register_forward_hook(lambda m, i, o: trace.append("fwd2:root"))
    x = torch.tensor(values(6, 0.3)).reshape(2, 3).requires_grad_(x_requires_grad)
    y = model(x)
    trace.append("backward")
    y.sum().backward()
    for h in handles:
        h.remove()
    return trace


emit("hook_trace_input_grad", S, cpp_strings(trace_hooks(True)))
emit("hook_trace_no_input_grad", S, cpp_strings(trace_hooks(False)))

# ---- full backward hook values ----
lin = TinyLinear(3, 2)
seen = {}


def grab(m, gi, go):
    seen["gi"], seen["go"] = gi[0].clone(), go[0].clone()


lin.register_full_backward_hook(grab)
x = torch.tensor(values(6, 0.3)).reshape(2, 3).requires_grad_(True)
c = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
(lin(x) * c).sum().backward()
D = "std::vector<double>"
emit("bwd_grad_input", D, cpp_doubles(seen["gi"]))
emit("bwd_grad_output", D, cpp_doubles(seen["go"]))
emit("bwd_weight_grad", D, cpp_doubles(lin.weight.grad))
emit("bwd_x_grad", D, cpp_doubles(x.grad))

# ---- write ----
header = """// Generated by gen_reference.py (torch {}) -- do not edit by hand.
#pragma once

#include <string>
#include <vector>

namespace module_ref {{
""".format(torch.__version__)
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_values.hpp")
with open(path, "w") as f:
    f.write(header + "\n".join(out) + "\n}  // namespace module_ref\n")
print("wrote", path)
