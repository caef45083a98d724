#!/usr/bin/env python3
"""Generates nonfinite_values.hpp: PyTorch's values and gradients at NaN, +-inf, -0.0 and
overflowing inputs, for tests/core/ops/test_nonfinite.cpp.

Run from the repository root with a Python that has torch (tested with 1.13):
    python3 tests/core/reference/gen_nonfinite.py > tests/core/reference/nonfinite_values.hpp

Every case runs in float32 and float64. Gradients come for two upstream gradients, all ones and
all NaN: elementwise ops treat each position on its own, so NaN everywhere shows at every input
whether a NaN upstream gradient survives (PyTorch multiplies it by the derivative) or is
selected away (relu's threshold_backward).
Dropout in training cannot reproduce PyTorch's random stream, so for each input value we record
the output and gradients at one kept and one dropped position, read off a run on ones.
"""
import math

import torch
import torch.nn.functional as F

INPUT = [math.nan, -math.inf, -1e20, -100.0, -2.0, -0.0, 0.0, 1.5, 100.0, 1e20, math.inf]
GATE = [math.nan, -math.inf, -2.0, -0.0, 1.5, math.inf]
DTYPES = [(torch.float32, "float"), (torch.float64, "double")]

ACTIVATIONS = [  # the fused op's activations, by xgrad's name
    ("identity", lambda t: t),
    ("relu", torch.relu),
    ("gelu", lambda t: F.gelu(t, approximate="none")),
    ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh")),
    ("sigmoid", torch.sigmoid),
    ("silu", F.silu),
    ("tanh", torch.tanh),
]
POW_EXPONENTS = [0.0, 0.5, 1.0, 2.0, 2.5, 3.0, -0.5, -1.0, -2.0]
SINGLE_OPS = ACTIVATIONS[1:] + [
    ("abs", torch.abs),
    ("exp", torch.exp),
    ("log", torch.log),
    ("sqrt", torch.sqrt),
    ("dropout_eval", lambda t: F.dropout(t, 0.5, training=False)),
] + [(f"pow {e!r}", lambda t, e=e: torch.pow(t, e)) for e in POW_EXPONENTS]


def fmt(v, ctype):
    if math.isnan(v):
        return "L::quiet_NaN()"
    if math.isinf(v):
        return "L::infinity()" if v > 0 else "-L::infinity()"
    # repr of the float32 value widened to double is exact, and so is its conversion back.
    return ctype + "(" + repr(float(v)) + ")"


def fmt_list(values, ctype):
    return "{" + ", ".join(fmt(v, ctype) for v in values) + "}"


def value_and_grads(f, inputs, dtype):
    """f's output and the inputs' gradients for upstream ones and upstream NaN."""
    xs = [torch.tensor(x, dtype=dtype, requires_grad=True) for x in inputs]
    y = f(*xs)
    result = [y.detach().tolist()]
    for fill in (1.0, math.nan):
        grads = torch.autograd.grad(y, xs, torch.full_like(y, fill), retain_graph=True,
                                    allow_unused=True)
        result += [(g if g is not None else torch.zeros_like(x)).tolist()
                   for g, x in zip(grads, xs)]
    return result


def dropout_columns(f, dtype, p=0.5, width=64, seed=0):
    """Output and gradients of F.dropout(f(x)) at the first kept and first dropped
    position of each row of x = INPUT repeated `width` times along a row."""
    torch.manual_seed(seed)
    keep = F.dropout(torch.ones(len(INPUT), width, dtype=dtype), p, training=True) != 0
    kept = keep.int().argmax(dim=1)
    dropped = (~keep).int().argmax(dim=1)
    assert keep.gather(1, kept[:, None]).all() and not keep.gather(1, dropped[:, None]).any()
    x = torch.tensor(INPUT, dtype=dtype)[:, None].repeat(1, width).requires_grad_()
    torch.manual_seed(seed)
    y = F.dropout(f(x), p, training=True)
    (g_ones,) = torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True)
    (g_nan,) = torch.autograd.grad(y, x, torch.full_like(y, math.nan))
    rows = torch.arange(len(INPUT))
    return [t.detach()[rows, col].tolist() for col in (kept, dropped) for t in (y, g_ones, g_nan)]


def emit_dtype(torch_dtype, ctype):
    out = [f"template <>\nstruct Values<{ctype}> {{",
           f"    using L = std::numeric_limits<{ctype}>;",
           f"    static inline const std::vector<{ctype}> input = {fmt_list(INPUT, ctype)};",
           f"    static inline const std::vector<Unary<{ctype}>> unary = {{"]
    for name, f in SINGLE_OPS:
        y, g, g_nan = value_and_grads(f, [INPUT], torch_dtype)
        out.append(f'        {{"{name}", {fmt_list(y, ctype)},\n'
                   f"         {fmt_list(g, ctype)},\n         {fmt_list(g_nan, ctype)}}},")
    out.append("    };")

    # Every (h, v) pair, flattened row-major: h from INPUT, v from GATE.
    h = [a for a in INPUT for _ in GATE]
    v = [b for _ in INPUT for b in GATE]
    out.append(f"    static inline const std::vector<{ctype}> gated_h = {fmt_list(h, ctype)};")
    out.append(f"    static inline const std::vector<{ctype}> gated_v = {fmt_list(v, ctype)};")
    out.append(f"    static inline const std::vector<Gated<{ctype}>> gated = {{")
    for name, f in ACTIVATIONS:
        y, gh, gv, gh_nan, gv_nan = value_and_grads(lambda a, b: f(a) * b, [h, v], torch_dtype)
        rows = ",\n         ".join(fmt_list(r, ctype) for r in (y, gh, gv, gh_nan, gv_nan))
        out.append(f'        {{"{name}",\n         {rows}}},')
    out.append("    };")

    out.append(f"    static inline const std::vector<Dropped<{ctype}>> dropout = {{")
    for name, f in ACTIVATIONS:
        rows = ",\n         ".join(fmt_list(r, ctype) for r in dropout_columns(f, torch_dtype))
        out.append(f'        {{"{name}",\n         {rows}}},')
    out.append("    };")
    out.append("};")
    return out


HEADER = """\
// GENERATED by tests/core/reference/gen_nonfinite.py with PyTorch {version}; do not edit by hand.
// Regenerate: python3 tests/core/reference/gen_nonfinite.py > tests/core/reference/nonfinite_values.hpp
#pragma once

#include <limits>
#include <vector>

namespace nonfinite {{

// op(input): its output, and the input's gradient for upstream ones and upstream NaN.
template <class T>
struct Unary {{
    const char* name;
    std::vector<T> out, grad, grad_nan;
}};

// act(h) * v over every (gated_h, gated_v) pair; gradients for upstream ones, then NaN.
template <class T>
struct Gated {{
    const char* name;
    std::vector<T> out, grad_h, grad_v, grad_h_nan, grad_v_nan;
}};

// dropout(act(input), p = {p}) at a kept and at a dropped position of each input value.
template <class T>
struct Dropped {{
    const char* name;
    std::vector<T> kept_out, kept_grad, kept_grad_nan, dropped_out, dropped_grad, dropped_grad_nan;
}};

template <class T>
struct Values;
"""

lines = [HEADER.format(version=torch.__version__.split("+")[0], p=0.5)]
for torch_dtype, ctype in DTYPES:
    lines += emit_dtype(torch_dtype, ctype) + [""]
lines.append("}  // namespace nonfinite")
print("\n".join(lines))
