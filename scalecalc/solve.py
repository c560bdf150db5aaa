"""Vectorised scalar solvers in numpy (no scipy: they sit on the path of a plain ``plan``).

Each solver works element-wise on arrays of problems at once, so planning 100,000 budgets costs
about as much Python overhead as planning one. All searches run in log space, where scaling-law
quantities are smooth and span many decades.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Array = np.ndarray
_INVPHI = (math.sqrt(5.0) - 1.0) / 2.0  # 1/golden ratio


def bisect_increasing(
    f: Callable[[Array], Array], target: Array, lo: Array | float, hi: Array | float, iterations: int = 100
) -> Array:
    """Solve f(x) = target element-wise for increasing f on [lo, hi] by bisection.

    Returns NaN where the target is not bracketed by f(lo) and f(hi).
    """
    target = np.asarray(target, dtype=float)
    lo = np.broadcast_to(np.asarray(lo, dtype=float), target.shape).copy()
    hi = np.broadcast_to(np.asarray(hi, dtype=float), target.shape).copy()
    with np.errstate(all="ignore"):
        ok = (f(lo) <= target) & (f(hi) >= target)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            below = f(mid) < target
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
    return np.where(ok, 0.5 * (lo + hi), np.nan)


def solve_monotone(f: Callable[[Array], Array], target: Array, lo: float, hi: float, iterations: int = 100) -> Array:
    """Solve f(x) = target for f monotone (either direction) on [lo, hi]."""
    f_lo, f_hi = f(np.full(1, lo)), f(np.full(1, hi))
    if np.all(f_lo > f_hi):  # decreasing: flip the sign
        return bisect_increasing(lambda x: -f(x), -np.asarray(target, dtype=float), lo, hi, iterations)
    return bisect_increasing(f, target, lo, hi, iterations)


def derivative(f: Callable[[Array], Array], x: Array, h: float = 1e-3) -> Array:
    """Five-point central difference (error O(h^4)); accurate to ~1e-12 for smooth laws in log space."""
    return (8.0 * (f(x + h) - f(x - h)) - (f(x + 2 * h) - f(x - 2 * h))) / (12.0 * h)


def second_derivative(f: Callable[[Array], Array], x: Array, h: float = 1e-3) -> Array:
    """Five-point central second difference (error O(h^4))."""
    return (-f(x + 2 * h) + 16.0 * f(x + h) - 30.0 * f(x) + 16.0 * f(x - h) - f(x - 2 * h)) / (12.0 * h * h)


def minimize(f: Callable[[Array], Array], lo: Array, hi: Array, *, grid: int = 32, iterations: int = 14) -> Array:
    """Minimise f element-wise on [lo, hi]: a grid scan, then safeguarded Newton on f' = 0.

    The scan finds the basin (robust to a non-convex tail) and a bracket around it; Newton steps
    on the five-point derivative converge quadratically to ~1e-12 relative, far better than a
    golden-section search, whose comparisons stall at sqrt(machine epsilon). A step that would
    leave the bracket (or a non-convex point) is replaced by bisection on the derivative's sign.
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    lo, hi = np.broadcast_arrays(lo, hi)
    t = np.linspace(0.0, 1.0, grid)[:, None]
    xs = lo[None, :] + t * (hi - lo)[None, :]  # (grid, n)
    with np.errstate(all="ignore"):
        values = f(xs)
        values = np.where(np.isfinite(values), values, np.inf)
        best = np.argmin(values, axis=0)
        cols = np.arange(xs.shape[1])
        a = xs[np.maximum(best - 1, 0), cols]
        b = xs[np.minimum(best + 1, grid - 1), cols]
        x = xs[best, cols]
        for _ in range(iterations):
            g, curvature = derivative(f, x), second_derivative(f, x)
            done = g == 0  # exactly stationary: keep x (the bracket collapses onto it)
            a = np.where((g < 0) | done, x, a)  # the minimum lies where the derivative changes sign
            b = np.where((g > 0) | done, x, b)
            newton = x - g / curvature
            inside = (curvature > 0) & (newton >= a) & (newton <= b)
            x = np.where(done, x, np.where(inside, newton, 0.5 * (a + b)))
    return x


def golden_section(f: Callable[[Array], Array], lo: Array, hi: Array, steps: int = 55) -> Array:
    """Minimise f element-wise on [lo, hi] by golden-section search (comparisons only).

    For objectives with kinks or flat bottoms (e.g. the saturating repetition terms of
    Muennighoff et al.), where a derivative is unreliable; accurate to ~sqrt(machine epsilon).
    """
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    x1, x2 = hi - _INVPHI * (hi - lo), lo + _INVPHI * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(steps):
        left = f1 < f2  # the minimum lies in [lo, x2]; else in [x1, hi]
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        x1, x2 = (np.where(left, hi - _INVPHI * (hi - lo), x2), np.where(left, x1, lo + _INVPHI * (hi - lo)))
        f_new = f(np.where(left, x1, x2))  # one new evaluation per step
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
    return 0.5 * (lo + hi)
