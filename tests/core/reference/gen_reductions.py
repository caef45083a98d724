#!/usr/bin/env python3
"""Generates reductions_values.hpp: PyTorch's prod, cumsum, amax, amin and
linalg.vector_norm (values and input gradients) for tests/core/ops/test_reduce.cpp.

Run from the repository root with Debian's PyTorch (tested with 1.13):
    /usr/bin/python3 tests/core/reference/gen_reductions.py > tests/core/reference/reductions_values.hpp

Each case backpropagates sum(out * upstream), upstream a fixed pattern of out's shape.
The inputs hold the awkward spots on purpose: rows with one and with two zeros (prod),
tied extremes (amax, amin, the inf norm), an all-zero row (the 2-norm's 0 / 0), a 0-d
tensor and empty tensors.
"""
import math

import torch

INPUTS = {
    # prod: row 0 has no zero, row 1 one zero, row 2 two zeros; columns mix them too.
    "zeros": [[1.5, -2.0, 0.5, 3.0],
              [2.0, 0.0, -1.5, 4.0],
              [0.0, 0.0, 2.5, -1.0]],
    # prod over everything with a single zero: only that entry gets a gradient.
    "one_zero": [[1.5, -0.5, 2.0],
                 [0.0, 3.0, -1.25]],
    # amax / amin / inf norm: ties of the max, of the min, of |x| across signs, a flat row.
    "ties": [[1.0, 3.0, 3.0, -2.0],
             [-4.0, 2.0, -4.0, 4.0],
             [0.5, 0.5, 0.5, 0.5]],
    # norm: an all-zero row, and a row with one zero.
    "zero_row": [[0.0, 0.0, 0.0],
                 [3.0, -4.0, 0.0]],
    "cube": None,  # [2, 3, 4], filled below
    "scalar": 1.75,
    "empty": None,  # [2, 0]
}
INF = math.inf


def cube():
    g = torch.Generator().manual_seed(7)
    return torch.randn(2, 3, 4, generator=g, dtype=torch.float64)


def make_input(name):
    if name == "cube":
        return cube()
    if name == "empty":
        return torch.zeros(2, 0, dtype=torch.float64)
    return torch.tensor(INPUTS[name], dtype=torch.float64)


def prod(x, dims, keepdim, p):
    return torch.prod(x) if not dims else torch.prod(x, dims[0], keepdim=keepdim)


def cumsum(x, dims, keepdim, p):
    return torch.cumsum(x, dims[0])


def amax(x, dims, keepdim, p):
    return torch.amax(x, dim=dims, keepdim=keepdim)


def amin(x, dims, keepdim, p):
    return torch.amin(x, dim=dims, keepdim=keepdim)


def norm(x, dims, keepdim, p):
    return torch.linalg.vector_norm(x, ord=p, dim=dims if dims else None, keepdim=keepdim)


OPS = {"prod": prod, "cumsum": cumsum, "amax": amax, "amin": amin, "norm": norm}

CASES = [  # op, input, dims, keepdim, p
    ("prod", "zeros", [], False, 0.0),
    ("prod", "zeros", [1], False, 0.0),
    ("prod", "zeros", [-1], True, 0.0),
    ("prod", "zeros", [0], False, 0.0),
    ("prod", "zeros", [-2], True, 0.0),
    ("prod", "one_zero", [], False, 0.0),
    ("prod", "one_zero", [0], False, 0.0),
    ("prod", "cube", [], False, 0.0),
    ("prod", "cube", [1], False, 0.0),
    ("prod", "cube", [-3], True, 0.0),
    ("prod", "scalar", [], False, 0.0),
    ("prod", "scalar", [-1], True, 0.0),
    ("prod", "empty", [], False, 0.0),
    ("prod", "empty", [1], False, 0.0),
    ("prod", "empty", [0], True, 0.0),
    ("cumsum", "zeros", [0], False, 0.0),
    ("cumsum", "zeros", [1], False, 0.0),
    ("cumsum", "cube", [-1], False, 0.0),
    ("cumsum", "cube", [1], False, 0.0),
    ("cumsum", "scalar", [0], False, 0.0),
    ("cumsum", "empty", [1], False, 0.0),
    ("amax", "ties", [], False, 0.0),
    ("amax", "ties", [1], False, 0.0),
    ("amax", "ties", [-1], True, 0.0),
    ("amax", "ties", [0], False, 0.0),
    ("amax", "cube", [0, 2], False, 0.0),
    ("amax", "cube", [-1, 1], True, 0.0),
    ("amax", "scalar", [], False, 0.0),
    ("amax", "empty", [0], False, 0.0),
    ("amin", "ties", [], False, 0.0),
    ("amin", "ties", [1], False, 0.0),
    ("amin", "ties", [-2], True, 0.0),
    ("amin", "cube", [2, 0], False, 0.0),
    ("amin", "scalar", [0], True, 0.0),
    ("norm", "cube", [], False, 2.0),
    ("norm", "cube", [], False, 1.0),
    ("norm", "cube", [], False, 3.0),
    ("norm", "cube", [], False, INF),
    ("norm", "cube", [0, -1], True, 2.0),
    ("norm", "cube", [1], False, 3.0),
    ("norm", "cube", [-1], False, 0.5),
    ("norm", "cube", [2], True, 1.5),
    ("norm", "zero_row", [1], False, 1.0),
    ("norm", "zero_row", [1], False, 2.0),
    ("norm", "zero_row", [-1], True, 3.0),
    ("norm", "zero_row", [1], False, 0.5),
    ("norm", "zero_row", [1], False, 1.5),
    ("norm", "zero_row", [1], False, INF),
    ("norm", "ties", [1], False, INF),
    ("norm", "ties", [0], True, INF),
    ("norm", "ties", [], False, INF),
    ("norm", "scalar", [], False, 3.0),
    ("norm", "empty", [], False, 2.0),
    ("norm", "empty", [1], True, 1.0),
]


def upstream(shape):
    n = math.prod(shape)
    u = torch.tensor([0.5 + 0.25 * k if k % 2 == 0 else -0.75 - 0.5 * k for k in range(n)],
                     dtype=torch.float64)
    return u.reshape(shape)


def floats(values):
    return "{" + ", ".join(num(v) for v in values) + "}"


def num(v):
    v = float(v)
    if math.isinf(v):
        return "kInf" if v > 0 else "-kInf"
    return repr(v)


def ints(values):
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def main():
    print("// clang-format off")
    print("// GENERATED by tests/core/reference/gen_reductions.py with PyTorch "
          f"{torch.__version__}; do not edit by hand.")
    print("// Regenerate: /usr/bin/python3 tests/core/reference/gen_reductions.py > "
          "tests/core/reference/reductions_values.hpp")
    print("#pragma once\n\n#include <cstddef>\n#include <limits>\n#include <vector>\n")
    print("namespace reductions_ref {\n")
    print("inline constexpr double kInf = std::numeric_limits<double>::infinity();\n")
    print("struct Input {")
    print("    const char* name;")
    print("    std::vector<std::size_t> shape;")
    print("    std::vector<double> values;  // row-major")
    print("};\n")
    print("inline const std::vector<Input> kInputs = {")
    names = list(INPUTS)
    for name in names:
        x = make_input(name)
        print(f'    {{"{name}", {ints(x.shape)}, {floats(x.reshape(-1).tolist())}}},')
    print("};\n")
    print("struct Case {")
    print("    const char* op;  // prod (no dims: the 0-d prod(x)), cumsum, amax, amin, norm")
    print("    std::size_t input;  // into kInputs")
    print("    std::vector<int> dims;  // prod and cumsum: dims[0]")
    print("    bool keepdim;")
    print("    double p;  // norm only")
    print("    std::vector<std::size_t> out_shape;")
    print("    std::vector<double> out, upstream, grad;  // grad of sum(out * upstream)")
    print("};\n")
    print("inline const std::vector<Case> kCases = {")
    for op, name, dims, keepdim, p in CASES:
        x = make_input(name).requires_grad_(True)
        out = OPS[op](x, dims, keepdim, p)
        u = upstream(tuple(out.shape))
        (out * u).sum().backward()
        grad = x.grad if x.grad is not None else torch.zeros_like(x)
        print(f'    {{"{op}", {names.index(name)}, {ints(dims)}, {"true" if keepdim else "false"}, '
              f'{num(p)}, {ints(out.shape)}, {floats(out.detach().reshape(-1).tolist())}, '
              f'{floats(u.reshape(-1).tolist())}, {floats(grad.reshape(-1).tolist())}}},')
    print("};\n\n}  // namespace reductions_ref")


if __name__ == "__main__":
    main()
