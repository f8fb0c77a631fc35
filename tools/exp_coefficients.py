#!/usr/bin/env python3
"""exp_coefficients.py: the polynomial of fast_exp (engine/attention/vector_math.h).

fast_exp reduces x to r = x - n ln2 with |r| <= ln2 / 2 and evaluates exp(r) by a
polynomial of degree 6. This script finds that polynomial: the one that equals exp at
the 7 Chebyshev nodes of [-ln2/2, ln2/2], solved in double precision (a 7 x 7
Vandermonde system, Gaussian elimination with partial pivoting). Interpolation at
Chebyshev nodes is close to the minimax polynomial (its error is within a small factor
of the best possible), which is why degree 6 suffices where the Taylor polynomial needs
degree 7 for the same error.

Prints the coefficients c0..c6 (exp(r) ~ sum c_j r^j) and the largest relative error
over 100001 points of the interval, both in double. Plain Python; no arguments.

    python3 tools/exp_coefficients.py
"""
import math

DEGREE = 6
HALF_LN2 = math.log(2.0) / 2.0


def solve(a, b):
    """x with a x = b for a square list-of-lists a (Gaussian elimination, partial pivoting)."""
    n = len(b)
    m = [row[:] + [rhs] for row, rhs in zip(a, b)]
    for i in range(n):
        pivot = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[pivot] = m[pivot], m[i]
        for r in range(n):
            if r != i:
                f = m[r][i] / m[i][i]
                for c in range(i, n + 1):
                    m[r][c] -= f * m[i][c]
    return [m[i][n] / m[i][i] for i in range(n)]


def main():
    nodes = [HALF_LN2 * math.cos((2 * k + 1) * math.pi / (2 * (DEGREE + 1))) for k in range(DEGREE + 1)]
    coeffs = solve([[x**j for j in range(DEGREE + 1)] for x in nodes], [math.exp(x) for x in nodes])
    grid = [-HALF_LN2 + 2 * HALF_LN2 * i / 100000 for i in range(100001)]
    worst = max(abs(sum(c * x**j for j, c in enumerate(coeffs)) / math.exp(x) - 1.0) for x in grid)
    for j, c in enumerate(coeffs):
        print(f"c{j} = {c!r}")
    print(f"largest relative error on [-ln2/2, ln2/2]: {worst:.3g}")


if __name__ == "__main__":
    main()
