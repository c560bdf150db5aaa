"""Parametric loss laws in log space: predictions, analytic Jacobians, start grids, bounds.

Each model predicts ``m = log L(N, D)`` for a batch of parameter rows ``theta`` (S, P) at the
points ``X`` (rows log N, log D) and returns the Jacobian dm/dtheta (S, n, P). Power terms are
computed as ``exp(log A - alpha log N)`` inside a log-sum-exp, which is Hoffmann et
al.'s (2022, eq. 3 / App. D.2) parametrisation: a = ln A, b = ln B, e = ln E.
"""

from __future__ import annotations

import itertools

import numpy as np

from scalecalc.errors import UsageError


def _lse(*u):
    """Stable log-sum-exp over arrays of equal shape; returns (value, softmax weights)."""
    top = np.maximum.reduce(u)
    ex = [np.exp(v - top) for v in u]
    s = sum(ex)
    return top + np.log(s), [e / s for e in ex]


def check_grid(grid):
    """Validate ``--grid``: None, 'full', 'coarse' or a positive count (returned as int)."""
    if grid in (None, "full", "coarse"):
        return grid
    try:
        count = int(float(grid))
    except (TypeError, ValueError):
        raise UsageError(f"--grid: {grid!r} is not full, coarse or a number of starts") from None
    if count < 1 or count != float(grid):
        raise UsageError(f"--grid: {grid!r} must be a whole number of starts >= 1")
    return count


def _grid_subset(full: np.ndarray, grid, form: str) -> np.ndarray:
    """``full`` | ``coarse`` | a count (a seeded subset of the full grid, always reproducible)."""
    if grid in (None, "full"):
        return full
    if grid == "coarse":
        return full[:: max(1, len(full) // 108)]
    count = check_grid(grid)
    if count >= len(full):
        return full
    pick = np.random.default_rng(0).choice(len(full), size=count, replace=False)
    return full[np.sort(pick)]


class Chinchilla:
    """L = E + A/N**alpha + B/D**beta (Hoffmann et al. 2022, eq. 2), theta = (a, b, e, alpha, beta)."""

    form = "chinchilla"
    names = ("a", "b", "e", "alpha", "beta")
    constant_names = ("E", "A", "B", "alpha", "beta")
    loss_formula = "E + A / N**alpha + B / D**beta"
    uses = ("params", "tokens")
    lower = np.array([-30.0, -30.0, -30.0, 0.0, 0.0])
    upper = np.array([60.0, 60.0, 10.0, 5.0, 5.0])

    def starts(self, grid=None) -> np.ndarray:
        # Hoffmann et al. 2022 App. D.2: alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
        # a, b in {0, 5, ..., 25}: 5*5*5*6*6 = 4500 starts.
        alpha = beta = e = np.arange(5) * 0.5
        e = np.arange(-1, 1.01, 0.5)
        a = b = np.arange(0, 26, 5.0)
        full = np.array([(ai, bi, ei, al, be) for al, be, ei, ai, bi in itertools.product(alpha, beta, e, a, b)])
        return _grid_subset(full, grid, self.form)

    def predict(self, theta, X, jac=True):
        m, p1, p2, p3 = self.evaluate(theta, X)
        if not jac:
            return m, None
        lnN, lnD = X
        return m, np.stack([p1, p2, p3, -p1 * lnN, -p2 * lnD], axis=-1)

    def evaluate(self, theta, X):
        """log L and the softmax weights of the three terms (A/N^a, B/D^b, E) in the LSE.

        Within the bounds every exponent lies in [-180, 60], so exp neither overflows nor makes
        the sum vanish, and the LSE needs no max-shift (one exp fewer per point).
        """
        lnN, lnD = (x.astype(theta.dtype, copy=False) for x in X)
        t1 = np.exp(theta[:, 0, None] - theta[:, 3, None] * lnN)  # A / N**alpha
        t2 = np.exp(theta[:, 1, None] - theta[:, 4, None] * lnD)  # B / D**beta
        E = np.exp(theta[:, 2, None])
        s = t1 + t2 + E
        inv = 1.0 / s
        return np.log(s), t1 * inv, t2 * inv, E * inv

    def normal_equations(self, state, X, gw, ww):
        """Gradient J^T gw and matrix J^T diag(ww) J from BLAS products with [1, ln N, ...]."""
        _, p1, p2, p3 = state
        lnN, lnD = (x.astype(p1.dtype, copy=False) for x in X)
        one = np.ones_like(lnN)
        # einsum's own loops, not BLAS: skinny GEMM/GEMV calls are slow, and threaded BLAS
        # thrashes on a shared 2-core machine (measured 10-30x slower than einsum here).
        mom = lambda q, *vs: np.stack([np.einsum("sn,n->s", q, v) for v in vs], 1)  # noqa: E731
        gN, gD, ge = mom(gw * p1, one, lnN), mom(gw * p2, one, lnD), (gw * p3).sum(1)
        w1, w2 = ww * p1, ww * p2
        h11 = mom(w1 * p1, one, lnN, lnN * lnN)
        h22 = mom(w2 * p2, one, lnD, lnD * lnD)
        h12 = mom(w1 * p2, one, lnN, lnD, lnN * lnD)
        h13, h23 = mom(w1 * p3, one, lnN), mom(w2 * p3, one, lnD)
        h33 = (ww * p3 * p3).sum(1)
        S = p1.shape[0]
        g = np.stack([gN[:, 0], gD[:, 0], ge, -gN[:, 1], -gD[:, 1]], 1)
        H = np.empty((S, 5, 5))
        rows = [  # (a, b, e, alpha, beta) x (a, b, e, alpha, beta)
            [h11[:, 0], h12[:, 0], h13[:, 0], -h11[:, 1], -h12[:, 2]],
            [h12[:, 0], h22[:, 0], h23[:, 0], -h12[:, 1], -h22[:, 1]],
            [h13[:, 0], h23[:, 0], h33, -h13[:, 1], -h23[:, 1]],
            [-h11[:, 1], -h12[:, 1], -h13[:, 1], h11[:, 2], h12[:, 3]],
            [-h12[:, 2], -h22[:, 1], -h23[:, 1], h12[:, 3], h22[:, 2]],
        ]
        for i in range(5):
            for j in range(5):
                H[:, i, j] = rows[i][j]
        return g.astype(float), H

    def constants(self, theta) -> dict:
        theta = np.asarray(theta, float)
        return {
            "E": np.exp(theta[..., 2]),
            "A": np.exp(theta[..., 0]),
            "B": np.exp(theta[..., 1]),
            "alpha": theta[..., 3],
            "beta": theta[..., 4],
        }


class KaplanPower:
    """L = (X_c / X)**alpha_X (Kaplan et al. 2020 eq. 1.1 / 1.2), optionally + E.

    ``var`` is ``N`` or ``D``; theta = (alpha, c = ln X_c) or (alpha, c, e = ln E).
    """

    form = "kaplan"
    uses: tuple

    def __init__(self, var: str = "N", irreducible: bool = False):
        self.var, self.irreducible = var, irreducible
        self.uses = ("params",) if var == "N" else ("tokens",)
        self.names = ("alpha", "c") + (("e",) if irreducible else ())
        xc, al = f"{var}c", f"alpha_{var}"
        self.constant_names = (("E",) if irreducible else ()) + (xc, al)
        term = f"({xc} / {var})**{al}"
        self.loss_formula = f"E + {term}" if irreducible else term
        self.lower = np.array([1e-4, -100.0] + ([-30.0] if irreducible else []))
        self.upper = np.array([5.0, 500.0] + ([10.0] if irreducible else []))

    def starts(self, grid=None) -> np.ndarray:
        alpha = [0.02, 0.05, 0.1, 0.2, 0.4, 0.8]
        c = [10.0, 20.0, 30.0, 40.0, 60.0]
        rows = [
            (al, ci) + ((ei,) if self.irreducible else ())
            for al, ci in itertools.product(alpha, c)
            for ei in ([-1.0, 0.0, 0.5, 1.0] if self.irreducible else [None])
        ]
        return _grid_subset(np.array(rows, float), grid, self.form)

    def predict(self, theta, X, jac=True):
        x = X[0] if self.var == "N" else X[1]
        al, c = theta[:, 0, None], theta[:, 1, None]
        u = al * (c - x)
        if not self.irreducible:
            m = u + 0 * x
            return m, (np.stack([c - x + 0 * al, np.broadcast_to(al, m.shape)], -1) if jac else None)
        e = np.broadcast_to(theta[:, 2, None], u.shape)
        m, (p1, p2) = _lse(u, e)
        if not jac:
            return m, None
        return m, np.stack([p1 * (c - x), p1 * al, p2], axis=-1)

    def constants(self, theta) -> dict:
        theta = np.asarray(theta, float)
        out = {f"{self.var}c": np.exp(theta[..., 1]), f"alpha_{self.var}": theta[..., 0]}
        if self.irreducible:
            out = {"E": np.exp(theta[..., 2]), **out}
        return out


class KaplanND:
    """L(N, D) = [(N_c/N)**(alpha_N/alpha_D) + D_c/D]**alpha_D (Kaplan et al. 2020, eq. 1.5).

    theta = (alpha_N, alpha_D, c_N = ln N_c, c_D = ln D_c).
    """

    form = "kaplan"
    names = ("alpha_N", "alpha_D", "cN", "cD")
    constant_names = ("Nc", "Dc", "alpha_N", "alpha_D")
    loss_formula = "((Nc / N)**(alpha_N / alpha_D) + Dc / D)**alpha_D"
    uses = ("params", "tokens")
    lower = np.array([1e-4, 1e-4, -100.0, -100.0])
    upper = np.array([5.0, 5.0, 500.0, 500.0])

    def starts(self, grid=None) -> np.ndarray:
        al = [0.05, 0.1, 0.2, 0.4]
        c = [15.0, 25.0, 35.0, 50.0]
        return _grid_subset(np.array(list(itertools.product(al, al, c, c)), float), grid, self.form)

    def predict(self, theta, X, jac=True):
        aN, aD, cN, cD = (theta[:, i, None] for i in range(4))
        lnN, lnD = X
        u1 = (aN / aD) * (cN - lnN)
        u2 = cD - lnD + 0 * aD
        s, (p1, p2) = _lse(u1, u2)
        m = aD * s
        if not jac:
            return m, None
        return m, np.stack([p1 * (cN - lnN), s - p1 * u1, p1 * aN, aD * p2], axis=-1)

    def constants(self, theta) -> dict:
        theta = np.asarray(theta, float)
        return {
            "Nc": np.exp(theta[..., 2]),
            "Dc": np.exp(theta[..., 3]),
            "alpha_N": theta[..., 0],
            "alpha_D": theta[..., 1],
        }


def kaplan_model(variables: str = "N", irreducible: bool = False):
    v = str(variables).upper()
    if v in ("N", "D"):
        return KaplanPower(v, irreducible)
    if v == "ND":
        if irreducible:
            raise UsageError(
                "--irreducible: not available with --kaplan-vars ND (Kaplan eq. 1.5 "
                "has no irreducible term); use N or D"
            )
        return KaplanND()
    raise UsageError(f"--kaplan-vars: {variables!r} is not N, D or ND")
