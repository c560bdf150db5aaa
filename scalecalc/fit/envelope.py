"""Approach 1 of Hoffmann et al. (2022, §3.1): the lower envelope of learning curves.

Every run's loss curve is interpolated linearly in (log C, log L) onto a log-spaced grid of FLOP
values (Hoffmann et al. used 1500); at each grid value the run with the lowest loss gives N*(C)
and its tokens so far give D*(C). N* = G·C**a and D* = H·C**b are fitted by least squares in log
space over the grid values that at least two runs reach and whose best run is neither the
smallest nor the largest model. The bootstrap resamples whole runs.
"""

from __future__ import annotations

import numpy as np

from scalecalc.errors import DataError, NotEnoughData
from scalecalc.fit import diagnostics as diag
from scalecalc.fit.isoflop import allocation_rows, implied_allocation
from scalecalc.fit.powerlaw import fit_power
from scalecalc.fit.result import FitResult, percentile_interval


def _curves(runs):
    """Per run: sorted log C, log L, log D and N (the run's median params)."""
    if runs.run is None:
        raise DataError(
            f"{runs.source}: --form envelope needs learning curves: a run column "
            "(run, run_id, model) and one row per logged step"
        )
    curves = []
    for rid in np.unique(runs.run):
        idx = np.flatnonzero(runs.run == rid)
        idx = idx[np.argsort(runs.flops[idx], kind="stable")]
        if idx.size >= 2:
            curves.append(
                (
                    np.log(runs.flops[idx]),
                    np.log(runs.loss[idx]),
                    np.log(runs.tokens[idx]),
                    float(np.median(runs.params[idx])),
                )
            )
    if len(curves) < 3:
        raise NotEnoughData(
            f"{runs.source}: {len(curves)} learning curves with 2+ points; "
            "--form envelope needs at least 3 runs of different sizes"
        )
    return curves


def _on_grid(curves, n_grid):
    lo = min(c[0][0] for c in curves)
    hi = max(c[0][-1] for c in curves)
    grid = np.linspace(lo, hi, n_grid)
    R = len(curves)
    lnL = np.full((R, n_grid), np.inf)
    lnD = np.full((R, n_grid), np.nan)
    for i, (x, yl, yd, _) in enumerate(curves):
        inside = (grid >= x[0]) & (grid <= x[-1])
        lnL[i, inside] = np.interp(grid[inside], x, yl)
        lnD[i, inside] = np.interp(grid[inside], x, yd)
    N = np.array([c[3] for c in curves])
    return grid, lnL, lnD, N


def _envelope(grid, lnL, lnD, N, mask=None):
    """Envelope points (C, N*, D*, run index) where 2+ runs reach C and N* is interior.

    A FLOP value whose best run is the smallest or largest model is dropped: the optimum may
    lie beyond the sampled sizes there, which would bias a towards 0 (the same edge rule as
    for IsoFLOP minima).
    """
    L = lnL if mask is None else np.where(mask[:, None], lnL, np.inf)
    covered = np.isfinite(L).sum(axis=0) >= 2
    j = np.argmin(L, axis=0)
    present = N if mask is None else N[mask]
    interior = (N[j] > present.min()) & (N[j] < present.max())
    cols = np.flatnonzero(covered & interior)
    return np.exp(grid[cols]), N[j[cols]], np.exp(lnD[j[cols], cols]), j[cols]


def fit_envelope(runs, *, bootstrap=0, seed=0, budgets=None, n_grid=250) -> FitResult:
    """Envelope fit (approach 1). See the module docstring for the method."""
    curves = _curves(runs)
    grid, lnL, lnD, N = _on_grid(curves, n_grid)
    C, Ns, Ds, who = _envelope(grid, lnL, lnD, N)
    if C.size < 3:
        raise NotEnoughData(
            f"{runs.source}: the learning curves overlap at {C.size} FLOP values; "
            "--form envelope needs runs whose FLOP ranges overlap"
        )
    G, a, resN, objN = fit_power(C, Ns)
    H, b, _, _ = fit_power(C, Ds)
    consts = {"G": G, "a": a, "H": H, "b": b}
    warnings = []
    n_sizes = np.unique(Ns).size
    if n_sizes < 3:
        warnings.append(f"only {n_sizes} model size(s) appear on the envelope; a is not identifiable")
    samples = {}
    if bootstrap:
        samples = _bootstrap(grid, lnL, lnD, N, int(bootstrap), seed)
    warnings = diag.too_few_points(len(curves), 2) + diag.short_spans(runs, ("params",)) + warnings
    return FitResult(
        form="envelope",
        params=consts,
        success=True,
        message="least squares",
        nfev=1 + int(bootstrap),
        n_points=len(runs),
        objective=objN,
        residual_rms=float(np.sqrt(np.mean(resN**2))),
        method=f"lower envelope of {len(curves)} learning curves on {n_grid} log-spaced FLOP values, "
        "least squares of log N*, log D* against log C",
        stderr={n: float(np.std(s, ddof=1)) for n, s in samples.items()},
        intervals={n: percentile_interval(s) for n, s in samples.items()},
        warnings=tuple(warnings),
        fitted_range=diag.fitted_range(runs),
        bootstrap=samples,
        derived=allocation_rows(consts, samples, budgets),
        implied=implied_allocation(consts),
        objective_name="ols",
        delta=None,
        flops_convention=runs.flops_convention,
        source=runs.source,
        params_formula="G * C**a",
        tokens_formula="H * C**b",
        details={"envelope": {"compute": C, "params": Ns, "tokens": Ds}, "seed": seed, "curves": curves},
    )


def _bootstrap(grid, lnL, lnD, N, K, seed):
    rng = np.random.default_rng(seed)
    R = len(N)
    out = {n: np.full(K, np.nan) for n in ("G", "a", "H", "b")}
    for r in range(K):
        mask = np.zeros(R, bool)
        mask[rng.integers(0, R, size=R)] = True
        C, Ns, Ds, _ = _envelope(grid, lnL, lnD, N, mask)
        if C.size >= 3 and np.unique(Ns).size >= 2:
            out["G"][r], out["a"][r], _, _ = fit_power(C, Ns)
            out["H"][r], out["b"][r], _, _ = fit_power(C, Ds)
    good = np.all([np.isfinite(v) for v in out.values()], axis=0)
    return {n: v[good] for n, v in out.items()}
