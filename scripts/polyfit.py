"""What the polynomial fits of core/src/vec_math.hpp share (scripts/fit_*.py):
Chebyshev nodes, weighted least squares, and float32 Horner evaluation."""
import numpy as np


def chebyshev_nodes(a, b, n):
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos((2 * k + 1) * np.pi / (2 * n))


def least_squares(u, y, degree, weight):
    """Coefficients c[0..degree] of sum c[k] u^k fitting y, weighted, as float32."""
    basis = np.stack([u**k for k in range(degree + 1)], axis=1) * weight[:, None]
    coefficients, *_ = np.linalg.lstsq(basis, y * weight, rcond=None)
    return coefficients.astype(np.float32)


def horner(coefficients, u):
    """The polynomial at u, evaluated in float32 as the C++ code does."""
    p = np.float32(coefficients[-1])
    for c in coefficients[-2::-1]:
        p = p * u + c
    return p
