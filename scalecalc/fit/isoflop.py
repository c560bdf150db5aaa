"""Approach 2 of Hoffmann et al. (2022, §3.2): IsoFLOP profiles.

Points are grouped by compute budget (a ``budget`` column, else clusters of log C). Each curve
of log loss against log N is fitted by a parabola (Hoffmann et al.) or an Akima spline evaluated
on a fine geometric grid (Porian et al. 2024, ``analysis.py``; docs/reference.md §5.5); its minimum gives
N*(C), likewise D*(C) against log D, and L*(C). Budgets whose minimum is at the edge of the
sampled sizes are dropped. N* = G·C**a and D* = H·C**b are then fitted by weighted least squares
in log space. The bootstrap resamples points within each budget and adds Gaussian "seed noise"
to log loss (Porian et al.: 1000 replicates, noise 0.002 for RefinedWeb), which also gives the
weights 1/sigma**2 of the final fit, sigma floored at a third of the log spacing of the sizes.
"""

from __future__ import annotations

import numpy as np

from scalecalc.errors import NotEnoughData, UsageError
from scalecalc.fit import diagnostics as diag
from scalecalc.fit.powerlaw import fit_power
from scalecalc.fit.result import IMPLIED_BUDGETS, FitResult, percentile_interval

BUDGET_GAP_DEX = 0.05  # consecutive log10 C values further apart than this start a new budget
MIN_SIZES = 3  # distinct sizes a curve needs


def group_budgets(runs, gap_dex: float = BUDGET_GAP_DEX):
    """List of (budget C, row indices): the ``budget`` column, else clusters in log10 C."""
    if runs.budget is not None:
        keys = np.unique(runs.budget)
        return [(float(k), np.flatnonzero(runs.budget == k)) for k in keys]
    order = np.argsort(runs.flops, kind="stable")
    lc = np.log10(runs.flops[order])
    cuts = np.flatnonzero(np.diff(lc) > gap_dex) + 1
    return [(float(10 ** lc[g].mean()), order[g]) for g in np.split(np.arange(lc.size), cuts)]


INTERPS = ("auto", "parabola", "local", "akima")
ASYMMETRY_F = 10.0  # F statistic of the cubic term above which a profile counts as asymmetric
LOCAL_WIDTH_DEX = 0.5  # std (decades of N) of the Gaussian weights of the local parabola


def choose_interp(curves) -> str:
    """``auto``: the estimator for a sweep, chosen by the data (docs/reference.md §2.5).

    ``curves`` lists (log N, log loss) per budget. A parabola in log N is unbiased for a
    symmetric profile and the least noisy estimator; a profile spanning decades of N is
    asymmetric (Chinchilla-form L(N, D) rises faster on one side) and the parabola then moves
    the minimum. The check is an F test pooled over budgets with 6+ sizes: does a cubic term
    reduce the residual sum of squares by more than ``ASYMMETRY_F`` times the cubic fits'
    residual variance? If so, every budget uses the ``local`` parabola (Gaussian weights of
    0.5 decades about the lowest point), else the plain parabola. One choice for all budgets,
    because mixing estimators across budgets bends the fitted N*(C).
    """
    gain = resid = 0.0
    tests = dof = 0
    for x, ylog in curves:
        if np.unique(x).size < 6:
            continue
        xm = x - x.mean()
        rss2 = float(np.sum((np.polyval(np.polyfit(xm, ylog, 2), xm) - ylog) ** 2))
        rss3 = float(np.sum((np.polyval(np.polyfit(xm, ylog, 3), xm) - ylog) ** 2))
        gain, resid, tests, dof = gain + rss2 - rss3, resid + rss3, tests + 1, dof + x.size - 4
    if tests == 0 or dof < 1:
        return "parabola"
    F = (gain / tests) / max(resid / dof, 1e-300)
    return "local" if F > ASYMMETRY_F else "parabola"


def curve_minimum(x, ylog, interp: str = "parabola"):
    """argmin and min of log loss along one IsoFLOP curve; (nan, nan, reason) if unusable."""
    ux = np.unique(x)
    if ux.size < MIN_SIZES:
        return np.nan, np.nan, f"only {ux.size} distinct sizes"
    if interp == "auto":
        interp = choose_interp([(x, ylog)])
    if interp == "local":
        x0 = x[int(np.argmin(ylog))]
        w = np.exp(-0.5 * ((x - x0) / (LOCAL_WIDTH_DEX * np.log(10))) ** 2)
        c2, c1, c0 = np.polyfit(x - x0, ylog, 2, w=np.sqrt(w))
        if not c2 > 0:
            return np.nan, np.nan, "the parabola opens downwards"
        xs = x0 - c1 / (2 * c2)
        ys = c0 - c1 * c1 / (4 * c2)
    elif interp == "parabola":
        xm = x.mean()
        c2, c1, c0 = np.polyfit(x - xm, ylog, 2)
        if not c2 > 0:
            return np.nan, np.nan, "the parabola opens downwards"
        xs = xm - c1 / (2 * c2)
        ys = c0 - c1 * c1 / (4 * c2)
    elif interp == "akima":
        from scipy.interpolate import Akima1DInterpolator

        ym = np.array([ylog[x == u].mean() for u in ux])  # repeated sizes: mean log loss
        grid = np.linspace(ux[0], ux[-1], (ux.size - 1) * 25)
        vals = Akima1DInterpolator(ux, ym)(grid)
        j = int(np.nanargmin(vals))
        if j in (0, grid.size - 1):
            return np.nan, np.nan, "the minimum is at the edge of the sampled sizes"
        xs, ys = grid[j], vals[j]
    else:
        raise UsageError(f"--interp: {interp!r} is not {', '.join(INTERPS)}")
    if not (ux[0] < xs < ux[-1]):
        return np.nan, np.nan, "the minimum is at the edge of the sampled sizes"
    return xs, ys, ""


def _minima(runs, groups, interp, noise=None):
    """(G, 3) array of ln N*, ln D*, ln L* per budget and the reasons for failures."""
    out = np.full((len(groups), 3), np.nan)
    reasons = []
    lnN, lnD, lnL = np.log(runs.params), np.log(runs.tokens), np.log(runs.loss)
    if noise is not None:
        lnL = lnL + noise
    per_budget = [interp] * len(groups) if isinstance(interp, str) else interp
    for i, (_, idx) in enumerate(groups):
        xn, yn, why = curve_minimum(lnN[idx], lnL[idx], per_budget[i])
        xd, _, why_d = curve_minimum(lnD[idx], lnL[idx], per_budget[i])
        out[i] = (xn, xd, yn)
        reasons.append(why or why_d)
    return out, reasons


def fit_isoflop(runs, *, interp="auto", bootstrap=0, seed=0, budgets=None, seed_noise=0.002) -> FitResult:
    """IsoFLOP fit (approach 2). See the module docstring for the method."""
    if interp not in INTERPS:
        raise UsageError(f"--interp: {interp!r} is not {', '.join(INTERPS)}")
    groups = group_budgets(runs)
    chosen = interp
    if interp == "auto":  # choose once on the data; bootstrap replicates reuse the choice
        lnN, lnL = np.log(runs.params), np.log(runs.loss)
        chosen = choose_interp([(lnN[idx], lnL[idx]) for _, idx in groups])
    per_budget = [chosen] * len(groups) if isinstance(chosen, str) else chosen
    mins, reasons = _minima(runs, groups, chosen)
    keep = np.array([not why for why in reasons])
    warnings = [f"budget C = {C:.3g} dropped: {why}" for (C, _), why in zip(groups, reasons) if why]
    if keep.sum() < 2:
        raise NotEnoughData(
            f"{runs.source}: {int(keep.sum())} usable IsoFLOP budget(s) out of "
            f"{len(groups)}; --form isoflop needs at least 2 budgets, each with "
            f"{MIN_SIZES}+ model sizes around the loss minimum"
        )
    Cb = np.array([g[0] for g in groups])
    sigma = np.ones((len(groups), 2))
    reps = None
    if bootstrap:
        reps, sigma, boot_warn = _bootstrap(runs, groups, chosen, int(bootstrap), seed, seed_noise)
        warnings += boot_warn
        keep &= np.all(np.isfinite(sigma), axis=1)
    k = keep
    G, a, resN, objN = fit_power(Cb[k], np.exp(mins[k, 0]), 1 / sigma[k, 0] ** 2)
    H, b, resD, objD = fit_power(Cb[k], np.exp(mins[k, 1]), 1 / sigma[k, 1] ** 2)
    consts = {"G": G, "a": a, "H": H, "b": b}
    samples = {}
    if reps is not None:
        samples = _refit_replicates(Cb, reps, sigma, k)
    n_used = int(sum(len(groups[i][1]) for i in np.flatnonzero(k)))
    warnings = (
        diag.too_few_points(int(k.sum()), 2)
        + _span(Cb[k])
        + warnings
        + diag.outliers(resN, None, "log N* about the fit")
    )
    if abs(a + b - 1) > 0.05:
        warnings.append(f"a + b = {a + b:.3f} differs from 1; N*·D* does not scale like C")
    minima = [
        {
            "compute": float(Cb[i]),
            "params": float(np.exp(mins[i, 0])),
            "tokens": float(np.exp(mins[i, 1])),
            "loss": float(np.exp(mins[i, 2])),
            "n_points": int(len(groups[i][1])),
            "used": bool(k[i]),
            "interp": per_budget[i],
        }
        for i in range(len(groups))
    ]
    how = interp if interp != "auto" else f"auto ({chosen}: an asymmetry test, see --interp)"
    return FitResult(
        form="isoflop",
        params=consts,
        success=True,
        message="weighted least squares",
        nfev=len(groups) * (1 + int(bootstrap)),
        n_points=n_used,
        objective=objN,
        residual_rms=float(np.sqrt(np.mean(resN**2))),
        method=f"IsoFLOP minima by {how} in log N ({int(k.sum())} of {len(groups)} budgets), "
        "WLS fit of log N*, log D* against log C",
        stderr={n: float(np.nanstd(s, ddof=1)) for n, s in samples.items()},
        intervals={n: percentile_interval(s) for n, s in samples.items()},
        warnings=tuple(warnings),
        fitted_range=diag.fitted_range(runs.subset(np.concatenate([groups[i][1] for i in np.flatnonzero(k)]))),
        bootstrap=samples,
        derived=allocation_rows(consts, samples, budgets),
        implied=implied_allocation(consts),
        objective_name="wls",
        delta=None,
        flops_convention=runs.flops_convention,
        source=runs.source,
        params_formula="G * C**a",
        tokens_formula="H * C**b",
        estimator={"interp": interp, "used": chosen if isinstance(chosen, str) else list(chosen)},
        details={
            "minima": minima,
            "interp": interp,
            "seed": seed,
            "seed_noise": seed_noise,
            "points": runs,
            "groups": groups,
        },
    )


def _span(C) -> list[str]:
    dec = float(np.log10(C.max() / C.min()))
    if dec < diag.MIN_DECADES:
        return [f"the budgets span only {dec:.2f} decades of compute (< 1); the exponents a and b are not identifiable"]
    return []


def _bootstrap(runs, groups, interp, K, seed, seed_noise):
    rng = np.random.default_rng(seed)
    reps = np.full((K, len(groups), 3), np.nan)
    for r in range(K):
        idx = np.concatenate([rng.choice(g, size=g.size, replace=True) for _, g in groups])
        sub = runs.subset(idx)
        noise = rng.normal(0.0, seed_noise, size=idx.size) if seed_noise > 0 else None
        sizes = np.cumsum([0] + [g.size for _, g in groups])
        sub_groups = [(C, np.arange(sizes[i], sizes[i + 1])) for i, (C, _) in enumerate(groups)]
        reps[r], _ = _minima(sub, sub_groups, interp, noise)
    valid = np.isfinite(reps[:, :, 0]) & np.isfinite(reps[:, :, 1])
    frac = valid.mean(axis=0)
    sigma = np.full((len(groups), 2), np.nan)
    warnings = []
    for i, (C, idx) in enumerate(groups):
        if frac[i] < 0.5:  # Porian et al.: at least half the replicates must be interior
            warnings.append(
                f"budget C = {C:.3g} dropped: its minimum is interior in only {frac[i]:.0%} of bootstrap replicates"
            )
            continue
        u = np.unique(np.log(runs.params[idx]))
        floor = np.median(np.diff(u)) / 3 if u.size > 1 else 0.0
        for j in range(2):
            s = np.std(reps[valid[:, i], i, j], ddof=1) if valid[:, i].sum() > 1 else 0.0
            sigma[i, j] = max(s, floor, 1e-6) * np.sqrt(1 / frac[i])  # inflate by K / valid
    return reps, sigma, warnings


def _refit_replicates(Cb, reps, sigma, keep):
    out = {n: np.full(len(reps), np.nan) for n in ("G", "a", "H", "b")}
    for r, rep in enumerate(reps):
        ok = keep & np.isfinite(rep[:, 0]) & np.isfinite(rep[:, 1])
        if ok.sum() < 2:
            continue
        out["G"][r], out["a"][r], _, _ = fit_power(Cb[ok], np.exp(rep[ok, 0]), 1 / sigma[ok, 0] ** 2)
        out["H"][r], out["b"][r], _, _ = fit_power(Cb[ok], np.exp(rep[ok, 1]), 1 / sigma[ok, 1] ** 2)
    good = np.all([np.isfinite(v) for v in out.values()], axis=0)
    return {n: v[good] for n, v in out.items()}


def allocation_rows(c, samples, budgets):
    """Derived N* = G·C**a, D* = H·C**b (and intervals) at the requested budgets."""
    if budgets is None or len(budgets) == 0:
        return ()
    rows = []
    for C in np.asarray(budgets, float):
        N, D = c["G"] * C ** c["a"], c["H"] * C ** c["b"]
        row = {
            "compute": float(C),
            "params": float(N),
            "tokens": float(D),
            "loss": None,
            "tokens_per_param": float(D / N),
        }
        if samples:
            row["params_ci"] = list(percentile_interval(samples["G"] * C ** samples["a"]))
            row["tokens_ci"] = list(percentile_interval(samples["H"] * C ** samples["b"]))
        rows.append(row)
    return tuple(rows)


def implied_allocation(c):
    return {
        "a": c["a"],
        "b": c["b"],
        "tokens_per_param": {f"{C:.0e}": float(c["H"] * C ** c["b"] / (c["G"] * C ** c["a"])) for C in IMPLIED_BUDGETS},
    }
