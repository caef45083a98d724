#!/usr/bin/python3
"""Fits the polynomials of fast_erf (core/src/vec_math.hpp) and prints them.

erf(x) for 0 <= x < 0.921875 is x + x * A(x^2); for larger x it is
1 - exp(-x^2) * B(x - 2), where B fits erfc(x) exp(x^2), a smooth function
between 0.14 and 0.45, up to 3.95 (beyond it erf(x) rounds to 1 in float).
Weighted least squares on Chebyshev nodes, in float64 against math.erf; then
the float32 evaluation is checked in units in the last place.

    /usr/bin/python3 scripts/fit_erf.py
"""
import math

import numpy as np

from polyfit import chebyshev_nodes, horner, least_squares

SPLIT, END, CENTRE = 0.921875, 3.95, 2.0
DEGREE_A, DEGREE_B = 6, 11

erf = np.vectorize(math.erf)
erfc = np.vectorize(math.erfc)


x = chebyshev_nodes(0, SPLIT, 400)
a = least_squares(x * x, erf(x) / x - 1.0, DEGREE_A, np.ones_like(x))
x = chebyshev_nodes(SPLIT, END, 800)
target = erfc(x) * np.exp(x * x)
b = least_squares(x - CENTRE, target, DEGREE_B, 1 / target)

xs = np.linspace(0, END, 2_000_001, dtype=np.float32)[1:]
small = xs + xs * horner(a, xs * xs)
large = np.float32(1) - np.exp(-(xs * xs)) * horner(b, xs - np.float32(CENTRE))
approx = np.where(xs < np.float32(SPLIT), small, large)
exact = erf(xs.astype(np.float64))
ulps = np.abs(approx - exact) / np.spacing(np.float32(exact)).astype(np.float64)
print(f"// worst error {ulps.max():.2f} ulp (numpy's float32 exp)")
for name, c in (("kSmall", a), ("kLarge", b)):
    print(f"constexpr float {name}[] = {{" + ", ".join(f"{v:.9g}f" for v in c) + "};")
