#!/usr/bin/env python3
"""Generates print_values.hpp: repr() of tensors as PyTorch prints them with its default print
options (precision 4, threshold 1000, edgeitems 3, linewidth 80), for test_print.cpp.

Run from the repository root with a Python that has torch (tested with 1.13):
    python3 tests/core/reference/gen_print.py > tests/core/reference/print_values.hpp
Each case is written with the data that builds it: explicit row-major values, or for large
tensors the formula  value(i) = ((i * mult) % mod + offset) / div  over the row-major index i,
which C++ evaluates with the same integer steps and one IEEE division, so both sides hold the
same numbers. float32 cases round the float64 values once, as a C++ static_cast<float> does.
"""
import math

import torch

torch.set_printoptions(profile="default")

DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}
nan, inf = float("nan"), float("inf")
cases = []


def case(name, values, shape=None, dtype="float32", requires_grad=False, times_two=False):
    shape = [len(values)] if shape is None else shape
    cases.append(dict(name=name, values=values, shape=shape, dtype=dtype, formula=None,
                      requires_grad=requires_grad, times_two=times_two))


def formula_case(name, shape, mult, mod, offset, div, dtype="float32", requires_grad=False):
    cases.append(dict(name=name, values=[], shape=shape, dtype=dtype,
                      formula=(mult, mod, offset, div), requires_grad=requires_grad,
                      times_two=False))


def build(c):
    n = math.prod(c["shape"])
    if c["formula"]:
        mult, mod, offset, div = c["formula"]
        values = [((i * mult) % mod + offset) / div for i in range(n)]
    else:
        values = c["values"]
    t = torch.tensor(values, dtype=torch.float64).to(DTYPES[c["dtype"]]).reshape(c["shape"])
    if c["requires_grad"] or c["times_two"]:
        t.requires_grad_()
    return t * 2 if c["times_two"] else t


# Fixed notation, int mode (whole floats print "2."), and the sci-mode choice.
case("mixed_fixed", [0.5, -1.0, 0.25])
case("tenth_float32", [0.1, 0.2, 0.3])
case("ties_round_half_even", [1.03125, 0.03125, 2.5])
case("float32_rounding", [1.00005, 2.0])  # 1.0001 in float64
case("tiny_alone", [1e-5])
case("tiny_with_one", [1e-5, 1.0])
case("small_gradients", [-3e-7, 1e-7, 2.5e-7])
case("ratio_over_1000", [0.001, 1.5])
case("ratio_under_1000", [0.001, 0.9])
case("large_value", [1.5e8, 2.0])
case("huge_negative", [-1e10, 1.25])
case("whole_floats", [1.0, 2.0, 3.0])
case("whole_floats_negative", [-1.0, 10.0, 100.0])
case("whole_ratio_sci", [1.0, 2000.0])
case("whole_large_sci", [3.0, 1e9])
case("negative_zero", [-0.0, 0.0, 1.5])
case("negative_zero_whole", [-0.0, 1.0])
case("all_zeros", [0.0, 0.0])
case("nan_inf_fixed", [nan, inf, -inf, 1.5])
case("nan_inf_whole", [nan, 1.0, -inf, 20.0])
case("nan_inf_sci", [nan, 1e-5, -inf, 1.0])
case("only_nonfinite", [nan, inf])
case("negative_nan", [-nan, 1.0])  # the sign bit of a NaN is not printed
# 0-d tensors.
case("scalar_fixed", [3.14159], shape=[])
case("scalar_whole", [2.0], shape=[])
case("scalar_tiny", [1e-5], shape=[])
case("scalar_negative_zero", [-0.0], shape=[])
case("scalar_nan", [nan], shape=[])
case("scalar_int", [7], shape=[], dtype="int64")
case("scalar_float64", [0.5], shape=[], dtype="float64")
# Nesting.
case("matrix", [1.5, -2.25, 3.0, 4.125], shape=[2, 2])
case("cube", [i * 0.75 - 4 for i in range(12)], shape=[2, 2, 3])
case("column", [1.0, -2.0, 3.5], shape=[3, 1])
# Empty tensors print their size unless 1-D, and their dtype unless float32.
case("empty_1d", [], shape=[0])
case("empty_2d", [], shape=[2, 0])
case("empty_3d", [], shape=[0, 3, 2])
case("empty_int64", [], shape=[0], dtype="int64")
case("empty_float64_2d", [], shape=[2, 0], dtype="float64")
# int64 (no dtype suffix) and float64 (dtype=torch.float64).
case("int64_vector", [1, -20, 300], dtype="int64")
case("int64_matrix", [0, 5, -7, 12, 100, -1000], shape=[2, 3], dtype="int64")
case("float64_vector", [0.5, 1.5, -2.0], dtype="float64")
case("float64_whole", [1.0, 2.0], dtype="float64")
# Autograd suffixes: requires_grad, grad_fn (PyTorch's node name; the test substitutes ours).
case("requires_grad", [0.5, -1.0], shape=[1, 2], requires_grad=True)
case("float64_requires_grad", [0.5, -1.0], dtype="float64", requires_grad=True)
case("grad_fn_mul", [1.0, 2.5, -3.0], times_two=True)
# Rows longer than the line width wrap; a suffix that does not fit goes on a line of its own.
formula_case("wrap_fixed", [30], 7, 31, -15, 4.0)
formula_case("wrap_matrix", [3, 20], 11, 97, -40, 8.0)
formula_case("wrap_int64", [40], 37, 1001, -500, 1.0, dtype="int64")
formula_case("wrap_sci", [15], 13, 29, 1, 1e5)
formula_case("suffix_wraps", [9], 3, 10, 1, 3.0, dtype="float64")
formula_case("suffixes_wrap", [9], 3, 10, 1, 3.0, dtype="float64", requires_grad=True)
formula_case("suffix_after_newline", [2, 9], 5, 17, 1, 3.0, dtype="float64",
             requires_grad=True)
# Summarised: more than 1000 elements show 3 edge items per dimension and "...".
formula_case("threshold_exact", [1000], 1, 1000, 0, 1.0, dtype="int64")
formula_case("threshold_plus_one", [1001], 1, 1001, 0, 1.0, dtype="int64")
formula_case("zeros_100x100", [100, 100], 0, 1, 0, 1.0)
formula_case("summarised_matrix", [50, 40], 37, 1009, -500, 7.0)
formula_case("summarised_columns_only", [5, 300], 13, 257, -100, 3.0)
formula_case("summarised_rows_only", [2000, 1], 17, 499, 0, 2.0)
formula_case("summarised_cube", [12, 10, 10], 29, 997, -300, 9.0, dtype="float64")
formula_case("summarised_4d", [2, 3, 20, 20], 31, 1013, -7, 1e6)
formula_case("summarised_sci", [40, 40], 41, 100003, 1, 1e3, requires_grad=True)
formula_case("summarised_large", [2000, 2000], 7, 1000003, -500000, 4.0)


def c_double(v):
    if math.isnan(v):
        return "-kNan" if math.copysign(1.0, v) < 0 else "kNan"
    if math.isinf(v):
        return "kInf" if v > 0 else "-kInf"
    return repr(float(v))


def c_case(c):
    values = ", ".join(c_double(v) for v in c["values"])
    mult, mod, offset, div = c["formula"] or (0, 1, 0, 1.0)
    text = repr(build(c))
    assert ")xg\"" not in text
    return (f'    {{"{c["name"]}", "{c["dtype"]}", {{{", ".join(map(str, c["shape"]))}}}, '
            f'{{{values}}}, {{{mult}, {mod}, {offset}, {c_double(div)}}}, '
            f'{str(c["requires_grad"]).lower()}, {str(c["times_two"]).lower()},\n'
            f'     R"xg({text})xg"}},')


print(f"""// GENERATED by tests/core/reference/gen_print.py with PyTorch {torch.__version__}; do not edit by hand.
// Regenerate: python3 tests/core/reference/gen_print.py > tests/core/reference/print_values.hpp
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace print_ref {{

inline constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// value(i) = ((i * mult) % mod + offset) / div over the row-major index i.
struct Formula {{
    std::int64_t mult, mod, offset;
    double div;
}};

struct Case {{
    const char* name;
    const char* dtype;  // "float32", "float64" or "int64"
    std::vector<std::size_t> shape;
    std::vector<double> values;  // row-major; empty: the formula gives them
    Formula formula;
    bool requires_grad;
    bool times_two;        // the printed tensor is x * 2, x requiring grad
    const char* expected;  // repr() of the tensor in PyTorch
}};

inline const std::vector<Case> cases = {{""")
for c in cases:
    print(c_case(c))
print("""};

}  // namespace print_ref""")
