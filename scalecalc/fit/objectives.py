"""Robust objectives on log-loss residuals, as tiny pure functions.

Residuals are ``r = log(L_pred) - log(L_obs)`` (nats/token inside the log). Each objective gives
three vectorised pieces that the optimisers need:

- ``rho(r)``: the per-point penalty; the fit minimises the **sum** over points (Hoffmann et al.
  2022, eq. 3). The sum, not the mean, matters: with a mean the objective is ~240x smaller and
  L-BFGS's default tolerances stop before convergence (Besiroglu et al. 2024, abstract;
  docs/reference.md §2.2).
- ``psi(r) = d rho / d r``, for gradients.
- ``weight(r) = psi(r) / r``, the iteratively-reweighted-least-squares weight (Beaton & Tukey
  1974); ``J^T diag(weight) J`` majorises the Hessian and gives stable Gauss-Newton steps.
"""

from __future__ import annotations

import numpy as np

from scalecalc.errors import UsageError

OBJECTIVES = ("huber", "mse", "asymmetric")
ASYMMETRY = 0.75  # weight on under-predictions (r < 0) in "asymmetric"; over-predictions get 0.25


def huber(r, delta):
    """Huber penalty: r**2/2 inside [-delta, delta], delta*(|r| - delta/2) outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def huber_psi(r, delta):
    return np.clip(r, -delta, delta)


def huber_weight(r, delta):
    a = np.abs(r)
    return np.where(a <= delta, 1.0, delta / np.maximum(a, delta))  # a > delta where used


def mse(r, delta=None):
    """Half squared residual (delta unused)."""
    return 0.5 * r * r


def _asym(r):
    # Under-predicting the loss (r < 0) makes a plan look better than it is, so it costs more.
    return np.where(r < 0, 2 * ASYMMETRY, 2 * (1 - ASYMMETRY))


def asymmetric(r, delta):
    """Huber with weight 1.5 on under-predictions (r < 0) and 0.5 on over-predictions."""
    return _asym(r) * huber(r, delta)


def penalty(name: str):
    """Return ``(rho, psi, weight)`` functions of ``(r, delta)`` for an objective name."""
    if name == "huber":
        return huber, huber_psi, huber_weight
    if name == "mse":
        return mse, (lambda r, d: r), (lambda r, d: np.ones_like(r))
    if name == "asymmetric":
        return (asymmetric, lambda r, d: _asym(r) * huber_psi(r, d), lambda r, d: _asym(r) * huber_weight(r, d))
    raise UsageError(f"--objective: unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
