"""Steps 1 and 3 of the Kaplan / Su et al. procedure: L(N) from final losses, L(N, S_min) from curves.

Step 1 (Kaplan eq 1.1; Su et al. 2024 step 1; docs/reference.md §6): regress ln L on ln N over the final
validation losses, L = (N_c/N)^α_N, and again with an irreducible term L = E + (N_c/N)^α_N.
Step 3 (Kaplan eq 5.6, Table 3; Su et al. step 3): with S_min = S/(1 + B_crit(L)/B) (eq 5.4) fit
L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S to every logged step after warmup, either solving
the implicit model for L at each step (default) or converting steps with the measured loss
(Kaplan's literal recipe); see :func:`fit_curves`.

Power terms are parameterised in centred log space, ln L_N = c − α (ln N − m), because ln N_c and
α_N are almost collinear in the raw form (N_c ~ 1e13 with α_N ~ 0.08).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scalecalc.errors import NotEnoughData

from .curves import Curve, group_by_size, smooth_log_loss
from .kaplan import b_crit, solve_ln_loss


@dataclass(frozen=True)
class PowerLawN:
    """Fit of L(N) = [E +] (N_c/N)^α_N to final losses (one point per model size).

    Attributes
    ----------
    N_c, alpha_N : float
        Kaplan eq 1.1 constants (non-embedding N).
    E : float or None
        Irreducible loss in nats, None for the pure power law.
    rms : float
        Root-mean-square residual of ln L.
    n_points : int
    at_bound : bool
        E ended at a bound (0 or just under the smallest loss): the data do not determine it.
    """

    N_c: float
    alpha_N: float
    E: float | None
    rms: float
    n_points: int
    at_bound: bool = False


@dataclass(frozen=True)
class CurveFit:
    """Fit of L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S to learning curves (Kaplan eq 5.6)."""

    N_c: float
    alpha_N: float
    S_c: float
    alpha_S: float
    rms: float  # RMS residual of ln L over the points used
    n_points: int
    joint: bool  # True: N_c, α_N refitted with S_c, α_S; False: held at step-1 values
    batch_adjusted: bool  # False when no B_crit(L) was available and S_min = S was used
    residual: str = "forward"  # "forward" (L solved per step) or "convert" (S_min from measured L)
    at_bound: bool = False  # an exponent or scale ended on a bound of the search box


def final_points(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """(N, final loss) per model size from its longest run at the sweep's reference batch size.

    The reference batch is the one run at the most model sizes (ties: the larger), so a batch
    sweep at one size does not put a longer, larger-batch run into L(N) next to the other sizes'
    shorter ones. Within a size: the run with the most tokens (closest to converged, as Kaplan's
    L(N) asks), then among equally long runs the lowest loss (the best-tuned one).
    """
    groups = group_by_size(curves)
    counts: dict[float, int] = {}
    for group in groups:
        for B in {c.batch_tokens for c in group}:
            counts[B] = counts.get(B, 0) + 1
    B_ref = max(counts, key=lambda B: (counts[B], B))
    N, L = [], []
    for group in groups:
        pool = [c for c in group if c.batch_tokens == B_ref] or group
        longest = max(c.tokens[-1] for c in pool)
        best = min((c for c in pool if c.tokens[-1] >= 0.99 * longest), key=lambda c: c.final_loss)
        N.append(best.N_non_embedding)
        L.append(best.final_loss)
    return np.array(N), np.array(L)


def fit_loss_n(N, L) -> PowerLawN:
    """L = (N_c/N)^α_N by least squares on ln L against ln N (Kaplan eq 1.1)."""
    N, L = np.asarray(N, float), np.asarray(L, float)
    if len(np.unique(N)) < 2:
        raise NotEnoughData(
            f"L(N) needs runs of at least 2 model sizes, got {len(np.unique(N))}; add sizes to the recipe's grid"
        )
    slope, intercept = np.polyfit(np.log(N), np.log(L), 1)
    alpha = -slope
    if alpha <= 0:
        raise NotEnoughData(
            f"final loss does not fall with N (slope {slope:+.3g}); train longer or widen the range of model sizes"
        )
    resid = np.log(L) - (intercept + slope * np.log(N))
    return PowerLawN(float(np.exp(intercept / alpha)), float(alpha), None, float(np.sqrt(np.mean(resid**2))), len(N))


def fit_loss_n_e(N, L) -> PowerLawN:
    """L = E + (N_c/N)^α_N by bounded least squares on ln L, 0 <= E < min L (scipy TRF)."""
    from scipy.optimize import least_squares

    N, L = np.asarray(N, float), np.asarray(L, float)
    if len(np.unique(N)) < 3:
        raise NotEnoughData(f"L(N) with an irreducible term needs at least 3 model sizes, got {len(np.unique(N))}")
    lnN, lnL = np.log(N), np.log(L)
    m = lnN.mean()
    E_hi = 0.999 * L.min()

    def resid(p):
        E, c, a = p
        return np.log(E + np.exp(c - a * (lnN - m))) - lnL

    base = fit_loss_n(N, L)
    best = None
    for frac in (0.0, 0.5, 0.9):  # a few starts: the E direction is flat when α_N is small
        E0 = frac * E_hi
        c0 = np.log(max(np.exp(lnL.mean()) - E0, 1e-3))
        res = least_squares(resid, [E0, c0, base.alpha_N], method="trf", bounds=([0.0, -50.0, 1e-4], [E_hi, 50.0, 5.0]))
        if best is None or res.cost < best.cost:
            best = res
    E, c, a = best.x
    at_bound = E <= 1e-6 * L.min() or E >= 0.99 * E_hi
    return PowerLawN(
        float(np.exp(m + c / a)), float(a), float(E), float(np.sqrt(np.mean(best.fun**2))), len(N), bool(at_bound)
    )


def curve_points(curves: Sequence[Curve]) -> dict[str, np.ndarray]:
    """Arrays of all points after warmup: N, S, B (tokens), ln L, smoothed ln L and a weight.

    Each run gets equal total weight (1/sqrt(points) per point), so densely logged runs do not
    dominate the fit.
    """
    cols: dict[str, list] = {k: [] for k in ("N", "S", "B", "lnL", "lnLs", "w")}
    for c in curves:
        keep = c.after_warmup()
        n = int(keep.sum())
        if n < 2:
            continue
        S, L = c.steps[keep], c.loss[keep]
        for k, v in (
            ("N", np.full(n, c.N_non_embedding)),
            ("S", S),
            ("B", np.full(n, c.batch_tokens)),
            ("lnL", np.log(L)),
            ("lnLs", smooth_log_loss(S, L)),
            ("w", np.full(n, n**-0.5)),
        ):
            cols[k].append(v)
    if not cols["N"]:
        raise NotEnoughData("no run has at least 2 evaluations after warmup; evaluate more often or lower warmup_steps")
    return {k: np.concatenate(v) for k, v in cols.items()}


def fit_curves(
    curves: Sequence[Curve],
    *,
    bcrit: tuple[float, float] | None,
    start: PowerLawN | CurveFit,
    joint: bool = True,
    residual: str = "forward",
) -> CurveFit:
    """Fit L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S to every point after warmup.

    Parameters
    ----------
    curves : runs to fit (several sizes when ``joint``).
    bcrit : (B*, α_B) for S_min = S/(1 + B_crit(L)/B) (Kaplan eq 5.4), or None for S_min = S.
    start : step-1 fit (or a previous CurveFit) giving N_c, α_N (held fixed when not ``joint``).
    joint : refit N_c and α_N together with S_c and α_S (Kaplan Table 3 fits all four jointly);
        otherwise hold them at ``start`` (Su et al. fix them from converged losses).
    residual : ``"forward"`` (default): ln L_measured − ln L_model(N, S, B), the model solved for
        L at each logged step (the implicit eq 1.6 + 5.4, as ``heldout_check`` predicts curves).
        ``"convert"``: Kaplan's literal recipe, S_min from the *measured* (smoothed) L, then a
        regression of ln L on (N, S_min). Both agree on exact data; on short real runs, where
        the curve falls faster than the B_crit(L) law allows, the converted S_min stops growing
        while L falls, and that errors-in-variables regression fits far worse (RMS 0.12 against
        0.05 in ln L on a 600-step byte-level sweep).
    """
    from scipy.optimize import least_squares

    if residual not in ("forward", "convert"):
        raise ValueError(f"residual must be 'forward' or 'convert', not {residual!r}")
    pts = curve_points(curves)
    lnN, lnS, lnL, w = np.log(pts["N"]), np.log(pts["S"]), pts["lnL"], pts["w"]
    mN, mS = lnN.mean(), lnS.mean()
    joint = joint and len(np.unique(pts["N"])) >= 2
    cN0, aN0 = start.alpha_N * (np.log(start.N_c) - mN), start.alpha_N

    def lnS_min(x):  # ln S_min at ln L = x (Kaplan eq 5.4), and its derivative in x
        if bcrit is None:
            return lnS, 0.0
        r = b_crit(np.exp(x), *bcrit) / pts["B"]
        return lnS - np.log1p(r), r / (1.0 + r) / bcrit[1]

    def model(cN, aN, cS, aS):
        ln_floor = cN - aN * (lnN - mN)
        if residual == "convert" or bcrit is None:
            return np.logaddexp(ln_floor, cS - aS * (lnS_min(pts["lnLs"])[0] - mS))

        def ln_s_term(x):
            lnSm, dlnSm = lnS_min(x)
            return cS - aS * (lnSm - mS), -aS * dlnSm

        return solve_ln_loss(ln_floor, ln_s_term)

    def resid(p):
        return w * (model(*(p if joint else (cN0, aN0, *p))) - lnL)

    lo = np.array([-50.0, 1e-4, -50.0, 1e-3] if joint else [-50.0, 1e-3])
    hi = np.array([50.0, 5.0, 50.0, 10.0] if joint else [50.0, 10.0])
    best = None
    for cS, aS in _s_starts(start, lnL, lnN, lnS, mN, mS, cN0, aN0):
        p0 = np.array([cN0, aN0, cS, aS] if joint else [cS, aS])
        p0 = np.clip(p0, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))  # a start on a bound stalls
        res = least_squares(resid, p0, method="trf", bounds=(lo, hi), x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    at_bound = bool(
        np.any(
            np.isclose(best.x, lo, rtol=0, atol=1e-6 * (hi - lo))
            | np.isclose(best.x, hi, rtol=0, atol=1e-6 * (hi - lo))
        )
    )
    cN, aN, cS, aS = best.x if joint else (cN0, aN0, *best.x)
    rms = float(np.sqrt(np.mean((model(cN, aN, cS, aS) - lnL) ** 2)))
    with np.errstate(over="ignore"):  # an absurd fit shows as inf, and the caller warns
        N_c, S_c = np.exp(mN + cN / aN), np.exp(mS + cS / aS)
    return CurveFit(
        float(N_c), float(aN), float(S_c), float(aS), rms, len(lnL), bool(joint), bcrit is not None, residual, at_bound
    )


def _s_starts(start, lnL, lnN, lnS, mN, mS, cN0, aN0):
    """Starting (c_S, α_S) pairs: a previous fit, or the median excess over L(N) at a few α_S."""
    if isinstance(start, CurveFit):
        return [(start.alpha_S * (np.log(start.S_c) - mS), start.alpha_S)]
    excess = np.exp(lnL) - np.exp(cN0 - aN0 * (lnN - mN))
    level = np.log(np.median(excess[excess > 0])) if np.any(excess > 0) else np.log(0.1)
    return [(level, a) for a in (0.3, 0.8, 2.0)]
