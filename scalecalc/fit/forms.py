"""Parametric forms beyond the free five-constant Chinchilla law, and choosing between them.

- ``gadre``: the over-training form of Gadre et al. 2024 (arXiv 2403.08540, eq. 4),
  L(C, M) = E + (a·M**eta + b·M**-eta)·C**-eta with M = D/N the token multiplier. With
  C = 6·N·D it is exactly L = E + A/N**alpha + B/D**alpha with alpha = beta = 2·eta:
  Chinchilla with the exponents tied (docs/reference.md §2.5), one constant fewer, and so
  better pinned from a small ladder.
- ``auto``: fit each candidate (chinchilla, gadre) and keep the one with the lowest
  leave-largest-size-out error (:mod:`scalecalc.fit.holdout`); the comparison is reported.
"""

from __future__ import annotations

import numpy as np

from scalecalc.fit.models import Chinchilla

CANDIDATES = ("chinchilla", "gadre")


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
        return {"E": np.exp(theta[..., 2]), "A": np.exp(theta[..., 0]), "B": np.exp(theta[..., 1]),
                "alpha": theta[..., 3]}


def make_model(form: str):
    """The model object of a parametric form name (chinchilla or gadre)."""
    return Chinchilla() if form == "chinchilla" else Gadre()


def chinchilla_constants(form: str, consts: dict) -> dict:
    """Constants in the Chinchilla naming (gadre: beta = alpha), for allocation formulas."""
    if form == "gadre":
        return {**consts, "beta": consts["alpha"]}
    return consts
