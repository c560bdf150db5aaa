"""Parametric forms beyond the free five-constant Chinchilla law, and choosing between them.

- ``gadre``: the over-training form of Gadre et al. 2024 (arXiv 2403.08540, eq. 4),
  L(C, M) = E + (a·M**eta + b·M**-eta)·C**-eta with M = D/N the token multiplier. With
  C = 6·N·D it is exactly L = E + A/N**alpha + B/D**alpha with alpha = beta = 2·eta:
  Chinchilla with the exponents tied (docs/reference.md §2.5), one constant fewer, and so
  better pinned from a small ladder.
- ``muennighoff``: the data-constrained form of Muennighoff et al. 2023 (arXiv 2305.16264,
  eq. 5) with repeated data: L = E + A/N**alpha + B/D'**beta, D' = U + U·R*·(1 - exp(-R/R*)),
  U the unique tokens (a ``unique_tokens`` column), R = D/U - 1 the repeated epochs and R* the
  fitted decay (their C4 fit: 15.4). Needs runs that repeat data to pin R*.
- ``auto``: fit each candidate (chinchilla, gadre) and keep the one with the lowest
  leave-largest-size-out error (:mod:`scalecalc.fit.holdout`); the comparison is reported.
"""

from __future__ import annotations

import numpy as np

from scalecalc.fit.models import Chinchilla

CANDIDATES = ("chinchilla", "gadre")
MUENNIGHOFF_RSTAR = 15.4  # Muennighoff et al. 2023, R*_D of their fit: the start of the search


class Gadre:
    """L = E + A/N**alpha + B/D**alpha (Gadre et al. 2024 eq. 4), theta = (a, b, e, alpha)."""

    form = "gadre"
    names = ("a", "b", "e", "alpha")
    constant_names = ("E", "A", "B", "alpha")
    loss_formula = "E + A / N**alpha + B / D**alpha"
    uses = ("params", "tokens")
    lower = Chinchilla.lower[:4].copy()
    upper = Chinchilla.upper[:4].copy()

    def __init__(self):
        self._base = Chinchilla()

    def _expand(self, theta):
        theta = np.atleast_2d(theta)
        return np.concatenate([theta, theta[:, 3:4]], axis=1)

    def starts(self, grid=None) -> np.ndarray:
        full = self._base.starts(grid)
        return np.unique(full[:, :4], axis=0)

    def predict(self, theta, X, jac=True):
        m, J = self._base.predict(self._expand(theta), X, jac)
        if J is None:
            return m, None
        return m, np.concatenate([J[..., :3], J[..., 3:4] + J[..., 4:5]], axis=-1)

    def constants(self, theta) -> dict:
        theta = np.asarray(theta, float)
        return {
            "E": np.exp(theta[..., 2]),
            "A": np.exp(theta[..., 0]),
            "B": np.exp(theta[..., 1]),
            "alpha": theta[..., 3],
        }


class Muennighoff:
    """L = E + A/N**alpha + B/D'**beta with D' the effective data of repeated tokens
    (Muennighoff et al. 2023 eq. 5, data repetition only), theta = (a, b, e, alpha, beta, r),
    R* = exp(r). X rows are (ln N, ln D, ln U)."""

    form = "muennighoff"
    names = ("a", "b", "e", "alpha", "beta", "r")
    constant_names = ("E", "A", "B", "alpha", "beta", "Rstar")
    # The law file plans with fresh data (R = 0, D' = D); Rstar is kept among its constants.
    loss_formula = "E + A / N**alpha + B / D**beta"
    uses = ("params", "tokens")
    lower = np.concatenate([Chinchilla.lower, [np.log(0.1)]])
    upper = np.concatenate([Chinchilla.upper, [np.log(1e4)]])

    def __init__(self):
        self._base = Chinchilla()

    @staticmethod
    def design(params, tokens, unique):
        return np.stack([np.log(params), np.log(tokens), np.log(unique)])

    def starts(self, grid=None) -> np.ndarray:
        full = self._base.starts(grid)
        return np.column_stack([full, np.full(len(full), np.log(MUENNIGHOFF_RSTAR))])

    def _effective(self, r, lnD, lnU):
        """ln D' and d ln D' / d r (per theta row and point)."""
        Rs = np.exp(r)[:, None]
        R = np.maximum(np.exp(lnD - lnU) - 1.0, 0.0)
        decay = np.exp(-R / Rs)
        U = np.exp(lnU)
        Dp = U * (1 + Rs * (1 - decay))
        dDp_dRs = U * ((1 - decay) - (R / Rs) * decay)
        fresh = R <= 0  # no repetition: D' = D exactly (avoids rounding in U·(1 + ...))
        lnDp = np.where(fresh, lnD, np.log(Dp))
        return lnDp, np.where(fresh, 0.0, Rs * dDp_dRs / Dp)

    def predict(self, theta, X, jac=True):
        theta = np.atleast_2d(theta)
        lnN, lnD, lnU = X
        lnDp, dlnDp = self._effective(theta[:, 5], lnD, lnU)
        m, p1, p2, p3 = self._base.evaluate(theta[:, :5], (lnN, lnDp.astype(theta.dtype)))
        if not jac:
            return m, None
        beta = theta[:, 4, None]
        J = np.stack([p1, p2, p3, -p1 * lnN, -p2 * lnDp, -beta * p2 * dlnDp], axis=-1)
        return m, J

    def constants(self, theta) -> dict:
        theta = np.asarray(theta, float)
        return {
            "E": np.exp(theta[..., 2]),
            "A": np.exp(theta[..., 0]),
            "B": np.exp(theta[..., 1]),
            "alpha": theta[..., 3],
            "beta": theta[..., 4],
            "Rstar": np.exp(theta[..., 5]),
        }


def make_model(form: str):
    """The model object of a parametric form name (chinchilla, gadre or muennighoff)."""
    return {"chinchilla": Chinchilla, "gadre": Gadre, "muennighoff": Muennighoff}[form]()


def design(model, runs=None, params=None, tokens=None, unique=None):
    """The X rows a model reads: (ln N, ln D), or (ln N, ln D, ln U) for muennighoff."""
    from scalecalc.errors import UsageError

    if runs is not None:
        params, tokens, unique = runs.params, runs.tokens, runs.unique_tokens
    if hasattr(getattr(model, "base", model), "design"):
        if unique is None:
            raise UsageError(
                "--form muennighoff needs a unique_tokens column (U_D, the distinct "
                "tokens each run saw; D > U_D where data repeat)"
            )
        return getattr(model, "base", model).design(params, tokens, unique)
    return np.stack([np.log(params), np.log(tokens)])


def chinchilla_constants(form: str, consts: dict) -> dict:
    """Constants in the Chinchilla naming (gadre: beta = alpha), for allocation formulas."""
    if form == "gadre":
        return {**consts, "beta": consts["alpha"]}
    if form == "muennighoff":  # compute-optimal allocation with fresh data: R = 0, D' = D
        return {k: v for k, v in consts.items() if k != "Rstar"}
    return consts
