"""Fit diagnostics that become warnings and the recorded fitted range."""

from __future__ import annotations

import numpy as np

POINTS_PER_PARAM = 5  # fewer points than 5x the free parameters: warn
MIN_DECADES = 1.0  # N or D spanning less than one decade: exponents not identifiable
OUTLIER_SIGMAS = 4.0  # residuals beyond 4 robust sigma are listed


def too_few_points(n: int, n_free: int) -> list[str]:
    if n < POINTS_PER_PARAM * n_free:
        return [
            f"only {n} points for {n_free} free parameters (fewer than {POINTS_PER_PARAM}x); "
            "the constants are poorly determined"
        ]
    return []


SIZE_GAP_DEX = 0.01  # model sizes within 2% are one size (extracted data jitters)
WIDE_INTERVAL = 0.5  # an exponent whose 95% interval is wider than 50% of it is loose
CORRELATED = 0.95  # |correlation| of two bootstrap exponents above this: not separable


def model_sizes(params) -> np.ndarray:
    """Size label per row: distinct model sizes, rows within 0.01 dex of each other merged."""
    lp = np.log10(np.asarray(params, float))
    order = np.argsort(lp, kind="stable")
    label = np.empty(lp.size, int)
    label[order] = np.concatenate([[0], np.cumsum(np.diff(lp[order]) > SIZE_GAP_DEX)])
    return label


def too_few_sizes(runs, n_free: int) -> list[str]:
    n = int(model_sizes(runs.params).max()) + 1 if len(runs) else 0
    if n < n_free:
        return [
            f"only {n} distinct model sizes for {n_free} free constants; the exponents are "
            "pinned by few sizes (try --form gadre, --fix or --prior)"
        ]
    return []


def poorly_identified(samples: dict) -> list[str]:
    """Exponents with wide bootstrap intervals, or pairs of constants strongly correlated."""
    out = []
    for name in ("alpha", "beta"):
        s = np.asarray(samples.get(name, []), float)
        s = s[np.isfinite(s)]
        if s.size > 10:
            lo, hi = np.percentile(s, [2.5, 97.5])
            mid = np.median(s)
            if mid > 0 and (hi - lo) > WIDE_INTERVAL * mid:
                out.append(
                    f"{name} is poorly identified: 95% interval {lo:.3g}-{hi:.3g} around "
                    f"{mid:.3g}; extrapolations are uncertain (try --form gadre or --prior)"
                )
    names = [n for n in ("E", "alpha", "beta") if n in samples]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x, y = np.asarray(samples[a], float), np.asarray(samples[b], float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() > 10 and np.std(x[ok]) > 0 and np.std(y[ok]) > 0:
                r = float(np.corrcoef(x[ok], y[ok])[0, 1])
                if abs(r) > CORRELATED:
                    out.append(
                        f"{a} and {b} are strongly correlated across the bootstrap "
                        f"(r = {r:.2f}); the data pin only a combination of them"
                    )
    return out


def short_spans(runs, uses) -> list[str]:
    out = []
    for role, label in (("params", "N"), ("tokens", "D")):
        if role in uses:
            x = getattr(runs, role)
            decades = float(np.log10(x.max() / x.min()))
            if decades < MIN_DECADES:
                out.append(
                    f"{label} spans only {decades:.2f} decades (< {MIN_DECADES:g}); its "
                    "exponent is not identifiable from these runs"
                )
    return out


def at_bounds(names, theta, lower, upper) -> list[str]:
    out = []
    for name, t, lo, hi in zip(names, theta, lower, upper):
        tol = 1e-6 * max(1.0, hi - lo)
        if t - lo < tol or hi - t < tol:
            out.append(
                f"fitted parameter {name} = {t:.4g} is at its bound [{lo:g}, {hi:g}]; the form may not suit these data"
            )
    return out


def outliers(resid, lines=None, label="log-loss residual") -> list[str]:
    """List points whose residual exceeds 4 robust sigma (1.4826 x median absolute deviation)."""
    resid = np.asarray(resid, float)
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    if not np.isfinite(sigma) or sigma <= 0:
        return []
    bad = np.flatnonzero(np.abs(resid - np.median(resid)) > OUTLIER_SIGMAS * sigma)
    if bad.size == 0:
        return []
    where = [f"line {int(lines[i])}" if lines is not None else f"row {i + 1}" for i in bad[:12]]
    more = f" and {bad.size - 12} more" if bad.size > 12 else ""
    return [
        f"{bad.size} outlier{'s' if bad.size > 1 else ''} beyond {OUTLIER_SIGMAS:g} robust sigma "
        f"({sigma:.3g}) in {label}: {', '.join(where)}{more}"
    ]


def fitted_range(runs) -> dict:
    return {
        "compute": [float(runs.flops.min()), float(runs.flops.max())],
        "params": [float(runs.params.min()), float(runs.params.max())],
        "tokens": [float(runs.tokens.min()), float(runs.tokens.max())],
    }
