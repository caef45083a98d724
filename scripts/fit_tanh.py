#!/usr/bin/python3
"""Fits the polynomial of fast_tanh (core/src/vec_math.hpp) and prints it.

tanh(x) for 0 <= x < SPLIT is x + x^3 * A(x^2); for larger x it is
1 - 2 / (exp(2x) + 1), accurate there because the result is at least
tanh(SPLIT) and 2 / (exp(2x) + 1) is small. Least squares on Chebyshev nodes,
in float64 against math.tanh, weighted to relative error; then the float32
evaluation is checked in units in the last place.

    /usr/bin/python3 scripts/fit_tanh.py
"""
import math

import numpy as np

from polyfit import chebyshev_nodes, horner, least_squares

SPLIT, END, DEGREE = 1.0, 9.5, 6

tanh = np.vectorize(math.tanh)


x = chebyshev_nodes(0, SPLIT, 600)
u = x * x
target = (tanh(x) - x) / (x * u)
# Relative error of x + x^3 A: weight by x^3 / tanh(x).
weight = x * u / tanh(x)
a = least_squares(u, target, DEGREE, weight)

xs = np.linspace(0, END, 4_000_001, dtype=np.float32)[1:]
small = xs + xs * (xs * xs) * horner(a, xs * xs)
large = np.float32(1) - np.float32(2) / (np.exp(np.float32(2) * xs) + np.float32(1))
approx = np.where(xs < np.float32(SPLIT), small, large)
exact = tanh(xs.astype(np.float64))
ulps = np.abs(approx - exact) / np.spacing(np.float32(exact)).astype(np.float64)
print(f"// worst error {ulps.max():.2f} ulp (numpy's float32 exp), "
      f"small {ulps[xs < SPLIT].max():.2f}, large {ulps[xs >= SPLIT].max():.2f}")
print("constexpr float kSmall[] = {" + ", ".join(f"{v:.9g}f" for v in a) + "};")
