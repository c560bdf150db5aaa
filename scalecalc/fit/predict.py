"""Predicted loss of a fitted parametric law at new (N, D), with bootstrap prediction intervals."""

from __future__ import annotations

import numpy as np

from scalecalc.fit.result import percentile_interval


def log_loss(model, thetas, params, tokens, unique=None) -> np.ndarray:
    """log L at each (N, D) (and unique tokens U, muennighoff) for each row of thetas: (S, n)."""
    from scalecalc.fit.forms import design

    X = design(model, params=np.asarray(params, float), tokens=np.asarray(tokens, float), unique=unique)
    n = X.shape[1]
    if getattr(model, "n_pseudo", 0):
        X, _, _ = model.augment(X, np.zeros(n), np.ones(n))
    return model.predict(np.atleast_2d(thetas), X, jac=False)[0][:, :n]


def predict(result, params, tokens, *, unique=None, level=0.95, seed=0):
    """Point predictions and, with bootstrap replicates, prediction intervals for the loss.

    The interval of a new run's loss combines the uncertainty of the constants (the bootstrap
    replicates) with the run-to-run scatter about the law: each replicate's prediction gets one
    residual of the fit drawn at random (a residual bootstrap prediction interval; Davison &
    Hinkley 1997 §6.3.3). Returns (loss (n,), intervals (n, 2) or None).
    """
    model, theta = result.details["model"], result.details["theta"]
    point = np.exp(log_loss(model, theta, params, tokens, unique)[0])
    thetas = result.details.get("thetas")
    if thetas is None or len(thetas) == 0:
        return point, None
    reps = log_loss(model, thetas, params, tokens, unique)  # (K, n)
    resid = np.asarray(result.details["residuals"], float)
    rng = np.random.default_rng(seed)
    reps = reps - rng.choice(resid, size=reps.shape)  # resid = pred - obs
    ci = np.array([percentile_interval(np.exp(reps[:, j]), level) for j in range(reps.shape[1])])
    return point, ci
