#!/usr/bin/env python3
"""Generates gather_values.hpp: PyTorch's index_select, gather, scatter_add, index_add,
one_hot, expand, repeat, flip and roll (values and input gradients) for
tests/core/ops/test_gather.cpp and tests/core/ops/test_shape.cpp.

Run from the repository root with Debian's PyTorch (tested with 1.13):
    /usr/bin/python3 tests/core/reference/gen_gather.py > tests/core/reference/gather_values.hpp

Each op's output is backpropagated from sum(out * upstream), so every gradient entry
is distinct; indices repeat on purpose (their gradients accumulate), dims are given
negative as well, and the 3-d cases work along the middle dim.
"""
import torch
import torch.nn.functional as F


def values_of(shape, seed):
    """Distinct, exactly representable float64 values of `shape`."""
    n = 1
    for s in shape:
        n *= s
    v = (torch.arange(n, dtype=torch.float64) * 37 + seed * 11) % 29 - 14
    return (v / 4).reshape(shape)


def ints_of(shape, seed):
    n = 1
    for s in shape:
        n *= s
    return ((torch.arange(n) * 7 + seed * 5) % 23 - 11).reshape(shape)


def index(values):
    return torch.tensor(values, dtype=torch.int64)


# name, op, params (dim first for the index ops; sizes, repeats, dims or shifts
# otherwise), roll's dims, alpha, x, index, src (or source), integer dtype
CASES = [
    ("index_select middle dim, repeated", "index_select", [1], [], 1.0,
     values_of([2, 3, 4], 1), index([2, 0, 2, 2]), None),
    ("index_select dim -1", "index_select", [-1], [], 1.0,
     values_of([3, 4], 2), index([3, 1, 1]), None),
    ("index_select 0-d index", "index_select", [0], [], 1.0,
     values_of([3, 2], 3), index(2), None),
    ("index_select empty index", "index_select", [1], [], 1.0,
     values_of([2, 3], 4), index([]), None),
    ("index_select int64", "index_select", [0], [], 1.0,
     ints_of([3, 2], 1), index([1, 1, 0]), None),
    ("gather middle dim, repeated", "gather", [1], [], 1.0,
     values_of([2, 3, 4], 5), index([[[2, 0, 2, 1], [0, 0, 1, 2]],
                                     [[1, 1, 1, 1], [2, 2, 0, 0]]]), None),
    ("gather dim -1, index smaller than x", "gather", [-1], [], 1.0,
     values_of([3, 4], 6), index([[3, 3, 0], [1, 2, 1]]), None),
    ("gather dim 0", "gather", [0], [], 1.0,
     values_of([3, 2], 7), index([[2, 0], [2, 2], [0, 1], [1, 1]]), None),
    ("gather int64", "gather", [1], [], 1.0,
     ints_of([2, 3], 2), index([[2, 2], [0, 1]]), None),
    ("scatter_add middle dim, repeated", "scatter_add", [1], [], 1.0,
     values_of([2, 3, 4], 8), index([[[2, 0, 2, 1], [2, 2, 1, 0]],
                                     [[1, 1, 1, 1], [0, 2, 0, 0]]]),
     values_of([2, 2, 4], 9)),
    ("scatter_add dim -2", "scatter_add", [-2], [], 1.0,
     values_of([3, 2], 10), index([[0, 2], [0, 0], [2, 1], [1, 2]]), values_of([4, 2], 11)),
    ("scatter_add int64", "scatter_add", [0], [], 1.0,
     ints_of([2, 3], 3), index([[1, 1, 0], [1, 0, 0]]), ints_of([2, 3], 4)),
    ("index_add middle dim, repeated, alpha", "index_add", [1], [], 0.5,
     values_of([2, 3, 4], 12), index([2, 0, 2, 1]), values_of([2, 4, 4], 13)),
    ("index_add dim -1, negative alpha", "index_add", [-1], [], -2.0,
     values_of([3, 4], 14), index([3, 3, 0]), values_of([3, 3], 15)),
    ("index_add 0-d index", "index_add", [0], [], 1.0,
     values_of([3, 2], 16), index(1), values_of([1, 2], 17)),
    ("index_add int64", "index_add", [0], [], 3.0,
     ints_of([3, 2], 5), index([2, 2]), ints_of([2, 2], 6)),
    ("one_hot inferred classes", "one_hot", [-1], [], 1.0,
     index([[0, 3], [1, 1], [3, 0]]), None, None),
    ("one_hot given classes", "one_hot", [5], [], 1.0, index([2, 0, 4, 2]), None, None),
    ("one_hot 0-d", "one_hot", [3], [], 1.0, index(1), None, None),
    ("expand -1 and a new leading dim", "expand", [2, -1, 4], [], 1.0,
     values_of([3, 1], 18), None, None),
    ("expand the middle dim", "expand", [2, 3, -1], [], 1.0,
     values_of([2, 1, 2], 19), None, None),
    ("expand 0-d", "expand", [2, 3], [], 1.0, values_of([], 20), None, None),
    ("repeat with extra leading dims", "repeat", [2, 1, 3], [], 1.0,
     values_of([2, 3], 21), None, None),
    ("repeat a 1-d tensor", "repeat", [2, 3], [], 1.0, values_of([2], 22), None, None),
    ("repeat every dim", "repeat", [2, 1, 2], [], 1.0, values_of([2, 3, 2], 23), None, None),
    ("repeat int64", "repeat", [1, 2], [], 1.0, ints_of([2, 2], 7), None, None),
    ("flip several dims", "flip", [0, 2], [], 1.0, values_of([2, 3, 4], 24), None, None),
    ("flip negative dims", "flip", [-1, 1], [], 1.0, values_of([2, 3, 4], 25), None, None),
    ("flip the middle dim", "flip", [1], [], 1.0, values_of([2, 3, 2], 26), None, None),
    ("roll with negative shifts", "roll", [1, -2], [1, -1], 1.0,
     values_of([2, 3, 4], 27), None, None),
    ("roll flattened, negative", "roll", [-5], [], 1.0, values_of([2, 3], 28), None, None),
    ("roll flattened", "roll", [4], [], 1.0, values_of([3, 2, 2], 29), None, None),
    ("roll more than the size, one dim twice", "roll", [7, -1, 2], [2, 0, 2], 1.0,
     values_of([2, 3, 4], 30), None, None),
    ("roll int64", "roll", [1], [0], 1.0, ints_of([3, 2], 8), None, None),
]


def run(op, params, dims, alpha, x, idx, src):
    if op == "index_select":
        return torch.index_select(x, params[0], idx)
    if op == "gather":
        return torch.gather(x, params[0], idx)
    if op == "scatter_add":
        return torch.scatter_add(x, params[0], idx, src)
    if op == "index_add":
        return torch.index_add(x, params[0], idx, src, alpha=alpha)
    if op == "one_hot":
        return F.one_hot(x, params[0])
    if op == "expand":
        return x.expand(*params)
    if op == "repeat":
        return x.repeat(*params)
    if op == "flip":
        return torch.flip(x, params)
    if op == "roll":
        return torch.roll(x, params, dims) if dims else torch.roll(x, params)
    raise ValueError(op)


def flat(t):
    return "{" + ", ".join(repr(float(v)) for v in t.detach().reshape(-1).tolist()) + "}"


def ints(values):
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def shape(t):
    return ints(t.shape) if t is not None else "{}"


def main():
    print("// clang-format off")
    print("// GENERATED by tests/core/reference/gen_gather.py with PyTorch "
          f"{torch.__version__}; do not edit by hand.")
    print("// Regenerate: /usr/bin/python3 tests/core/reference/gen_gather.py > "
          "tests/core/reference/gather_values.hpp")
    print("#pragma once\n\n#include <cstddef>\n#include <cstdint>\n#include <vector>\n")
    print("namespace gather_ref {\n")
    print("using Sizes = std::vector<std::size_t>;\n")
    print("struct Case {")
    print("    const char* name;")
    print("    const char* op;")
    print("    std::vector<std::int64_t> params;  // dim first (one_hot: num_classes); else the sizes,")
    print("                                       // repeats, dims (flip) or shifts (roll)")
    print("    std::vector<int> dims;             // roll's dims")
    print("    double alpha;                      // index_add")
    print("    bool integer;                      // x and src are int64: values only, no gradients")
    print("    Sizes x_shape;")
    print("    std::vector<double> x;")
    print("    Sizes index_shape;                 // {} for a 0-d index (or none: has_index)")
    print("    std::vector<std::int64_t> index;")
    print("    bool has_index;")
    print("    Sizes src_shape;")
    print("    std::vector<double> src;           // empty when the op takes none")
    print("    Sizes out_shape;")
    print("    std::vector<double> out, upstream;  // upstream: the gradient seeded at out")
    print("    std::vector<double> grad_x, grad_src;  // empty for int64 cases")
    print("};\n")
    print("inline const std::vector<Case> kCases = {")
    for name, op, params, dims, alpha, x, idx, src in CASES:
        integer = not x.is_floating_point()
        if not integer:
            x = x.clone().requires_grad_(True)
            if src is not None:
                src = src.clone().requires_grad_(True)
        out = run(op, params, dims, alpha, x, idx, src)
        upstream = values_of(list(out.shape), 31) + 0.125
        grad_x, grad_src = "{}", "{}"
        if not integer:
            (out * upstream).sum().backward()
            grad_x = flat(x.grad)
            if src is not None:
                grad_src = flat(src.grad)
        print(f'    {{"{name}", "{op}", {ints(params)}, {ints(dims)}, {alpha!r}, '
              f'{"true" if integer else "false"},\n'
              f'     {shape(x)}, {flat(x)},\n'
              f'     {shape(idx)}, {ints(idx.reshape(-1).tolist()) if idx is not None else "{}"}, '
              f'{"true" if idx is not None else "false"},\n'
              f'     {shape(src)}, {flat(src) if src is not None else "{}"},\n'
              f'     {shape(out)}, {flat(out)},\n'
              f'     {flat(upstream)},\n'
              f'     {grad_x}, {grad_src}}},')
    print("};\n\n}  // namespace gather_ref")


if __name__ == "__main__":
    main()
