"""Weighted least-squares power laws y = K·C**p in log space, shared by isoflop and envelope."""

from __future__ import annotations

import numpy as np


def fit_power(C, y, weights=None):
    """Fit log y = log K + p log C by weighted least squares.

    Returns (K, p, residuals of log y, weighted sum of squares). ``weights`` are 1/sigma**2.
    """
    x, t = np.log(np.asarray(C, float)), np.log(np.asarray(y, float))
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    xm = np.sum(w * x) / np.sum(w)
    tm = np.sum(w * t) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    p = np.sum(w * (x - xm) * (t - tm)) / sxx if sxx > 0 else np.nan
    logK = tm - p * xm
    resid = t - (logK + p * x)
    return float(np.exp(logK)), float(p), resid, float(np.sum(w * resid**2))
