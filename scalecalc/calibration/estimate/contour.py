"""Step 2 of the Kaplan / Su et al. procedure: B*, α_B by the contour-line method.

For runs of one model size at several batch sizes B_j and a target loss L_k, read the steps S_jk at
which each run first reaches L_k and the tokens E_jk = B_j S_jk (an equal-loss contour). Kaplan
eq 5.1 (McCandlish et al. 2018) says the contour obeys (S/S_min − 1)(E/E_min − 1) = 1. Expanding
and dividing by S E gives the identity 1 = S_min/S + E_min/E, *linear* in (S_min, E_min); with
E = B S it is the one-dimensional hyperbola S(B) = S_min + E_min/B. We solve it by non-negative
least squares on the relative residual 1 − S_min/S − E_min/E (so each run's step count weighs by
its relative error), then B_crit(L_k) = E_min/S_min (eq 5.2) and regress ln B_crit on ln L:
slope −1/α_B, intercept ln B* (eq 5.3). docs/reference.md §1.6, §6 step 2.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scalecalc.errors import NotEnoughData

from .curves import Curve, smooth_log_loss

_MONOTONE: weakref.WeakKeyDictionary[Curve, tuple[np.ndarray, np.ndarray]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Contour:
    """One equal-loss contour across the batch sizes of one model size.

    Attributes
    ----------
    N : float
        Non-embedding parameters of the runs.
    L : float
        Target loss, nats/token.
    B, S : tuple of float
        Batch size (tokens) and interpolated steps to first reach L, per run.
    S_min, E_min, B_crit : float
        Fitted minimum steps, minimum tokens and critical batch E_min/S_min (tokens); NaN on failure.
    ok : bool
    message : str
        Why the contour was rejected, empty when ``ok``.
    """

    N: float
    L: float
    B: tuple[float, ...]
    S: tuple[float, ...]
    S_min: float
    E_min: float
    B_crit: float
    ok: bool
    message: str = ""


@dataclass(frozen=True)
class BcritFit:
    """Power law B_crit(L) = B*/L^(1/α_B) through the contours (Kaplan eq 1.4 / 5.3)."""

    Bstar: float
    alpha_B: float
    rms: float  # RMS residual of ln B_crit
    n_contours: int


def monotone_curve(curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """(ln S, running minimum of smoothed ln L) after warmup; cached per curve object.

    The running minimum turns "first step where the loss reaches L" into a monotone inverse.
    """
    cached = _MONOTONE.get(curve)
    if cached is None:
        keep = curve.after_warmup()
        S, L = curve.steps[keep], curve.loss[keep]
        m = np.minimum.accumulate(smooth_log_loss(S, L)) if len(S) else np.array([])
        cached = (np.log(S), m)
        _MONOTONE[curve] = cached
    return cached


def first_reach(curve: Curve, L: float) -> float:
    """Steps at which the smoothed curve first reaches loss L (log-log interpolation), NaN if never
    or if it is already below L at the first point after warmup."""
    lnS, m = monotone_curve(curve)
    target = np.log(L)
    i = int(np.argmax(m <= target)) if len(m) and m[-1] <= target else -1
    if i <= 0:
        return float("nan")
    t = (m[i - 1] - target) / (m[i - 1] - m[i])
    return float(np.exp(lnS[i - 1] + t * (lnS[i] - lnS[i - 1])))


def loss_levels(group: Sequence[Curve], n_levels: int = 12, min_runs: int = 3) -> np.ndarray:
    """Geometric grid of losses that at least ``min_runs`` runs of the group cross after warmup.

    Requiring every run would confine the contours to the losses the slowest run (the smallest
    batch) reaches; requiring three keeps each contour's hyperbola determined by three points
    while the larger batches extend the range of L that the B_crit(L) regression sees.
    """
    ends = [m for m in (monotone_curve(c)[1] for c in group) if len(m) >= 2]
    k = min(min_runs, len(ends))
    if k < 2:
        return np.array([])
    hi = np.sort([m[0] for m in ends])[-k]  # k runs are still above this at their first point
    lo = np.sort([m[-1] for m in ends])[k - 1]  # ... and k runs get below this by their last
    if lo >= hi:
        return np.array([])
    return np.exp(np.linspace(lo, hi, n_levels + 2)[1:-1])


def fit_contour(N: float, L: float, B: np.ndarray, S: np.ndarray) -> Contour:
    """Fit 1 = S_min/S + E_min/(B S) (Kaplan eq 5.1) to one contour by non-negative least squares."""
    from scipy.optimize import nnls

    ok = np.isfinite(S)
    B, S = B[ok], S[ok]
    bad = dict(N=N, L=L, B=tuple(B), S=tuple(S), S_min=np.nan, E_min=np.nan, B_crit=np.nan, ok=False)
    if len(np.unique(B)) < 2:
        return Contour(**bad, message="fewer than 2 batch sizes reach this loss")
    A = np.column_stack([1.0 / S, 1.0 / (B * S)])
    (S_min, E_min), _ = nnls(A, np.ones(len(S)))
    if S_min <= 0 or E_min <= 0:
        which = "S_min" if S_min <= 0 else "E_min"
        return Contour(**bad, message=f"{which} = 0: steps do not trade against batch size here")
    return Contour(N, L, tuple(B), tuple(S), float(S_min), float(E_min), float(E_min / S_min), True)


def contours(group: Sequence[Curve], n_levels: int = 12) -> list[Contour]:
    """Equal-loss contours of one model size's batch-size sweep (empty if < 2 batch sizes)."""
    B = np.array([c.batch_tokens for c in group])
    if len(np.unique(B)) < 2:
        return []
    N = group[0].N_non_embedding
    return [fit_contour(N, L, B, np.array([first_reach(c, L) for c in group])) for L in loss_levels(group, n_levels)]


def fit_bcrit(found: Sequence[Contour], *, spread: float = 10.0) -> BcritFit:
    """Regress ln B_crit on ln L over the good contours: slope −1/α_B, intercept ln B* (eq 5.3).

    Contours whose B_crit lies more than ``spread`` times outside the batch sizes that were run
    are extrapolations of the hyperbola and are left out.
    """
    good = [c for c in found if c.ok and min(c.B) / spread <= c.B_crit <= max(c.B) * spread]
    if len({round(np.log(c.L), 9) for c in good}) < 2:
        raise NotEnoughData(
            f"B*, alpha_B not estimated: they need equal-loss contours at 2 or "
            f"more losses, got {len(good)} usable; run one model size at 3 or "
            "more batch sizes that bracket the critical batch"
        )
    lnL = np.log([c.L for c in good])
    lnB = np.log([c.B_crit for c in good])
    slope, intercept = np.polyfit(lnL, lnB, 1)
    if slope >= 0:
        raise NotEnoughData(
            f"B*, alpha_B not estimated: the critical batch does not fall with "
            f"the loss (slope {slope:+.3g}); "
            "widen the batch-size grid or train longer"
        )
    rms = float(np.sqrt(np.mean((lnB - intercept - slope * lnL) ** 2)))
    return BcritFit(float(np.exp(intercept)), float(-1.0 / slope), rms, len(good))
