"""Timing of ``scalecalc fit --form chinchilla`` on the Epoch AI data.

Times, in one run:
1. the approach-3 fit with Hoffmann's 4500-start grid (target <= 5 s on a 2-core machine);
2. 1000 bootstrap replicates (target <= 60 s);
3. the in-run baseline: a naive loop of ``scipy.optimize.minimize(method="L-BFGS-B")`` per
   start (analytic gradient, default tolerances) over a subset of the grid, extrapolated to
   4500 starts, and a check that its best start agrees with the fast search.

Run: ``python bench/fit_speed.py [--subset 100] [--replicates 1000]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from scalecalc.fit import fit_law, read_runs
from scalecalc.fit.models import Chinchilla
from scalecalc.fit.optim import single_threaded_blas

EPOCH = Path(__file__).resolve().parent.parent / "tests" / "data" / "chinchilla_fig4_epoch_extracted.csv"


def naive_objective(X, y, delta=1e-3):
    """Sum of Huber(LSE(a - alpha ln N, b - beta ln D, e) - ln L) and its gradient, per start."""
    from scipy.special import logsumexp, softmax

    lnN, lnD = X

    def fun(p):
        a, b, e, al, be = p
        u = np.stack([a - al * lnN, b - be * lnD, np.full_like(lnN, e)])
        r = logsumexp(u, axis=0) - y
        w = softmax(u, axis=0)
        psi = np.clip(r, -delta, delta)
        f = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta)).sum()
        g = np.array([psi @ w[0], psi @ w[1], psi @ w[2], -psi @ (w[0] * lnN), -psi @ (w[1] * lnD)])
        return f, g

    return fun


def baseline(runs, subset: int):
    from scipy.optimize import minimize

    X = np.stack([np.log(runs.params), np.log(runs.tokens)])
    fun = naive_objective(X, np.log(runs.loss))
    starts = Chinchilla().starts()
    pick = starts[:: len(starts) // subset][:subset]
    t = time.perf_counter()
    with single_threaded_blas():  # be fair to scipy on a busy machine
        results = [minimize(fun, s, jac=True, method="L-BFGS-B") for s in pick]
    dt = time.perf_counter() - t
    best = min(results, key=lambda r: r.fun)
    return dt, len(pick), best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=100, help="grid starts for the naive baseline")
    ap.add_argument("--replicates", type=int, default=1000, help="bootstrap replicates")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the 4500-start fit")
    args = ap.parse_args()

    runs = read_runs(EPOCH, drop_top_loss=5)
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
        f"python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"data: {EPOCH.name}, {len(runs)} points (5 highest-loss dropped)\n")

    fit_law(runs, "chinchilla", grid=30)  # warm imports and caches
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = fit_law(runs, "chinchilla")
        times.append(time.perf_counter() - t)
    c = res.params
    print(
        f"[1] 4500-start fit: median {np.median(times):.2f} s, min {min(times):.2f} s "
        f"over {args.repeats} runs (target <= 5 s)"
    )
    print(
        f"    E = {c['E']:.4f}, A = {c['A']:.2f}, B = {c['B']:.1f}, alpha = {c['alpha']:.4f}, "
        f"beta = {c['beta']:.4f}, objective = {res.objective:.6e}, nfev = {res.nfev}, "
        f"starts raced to the end that reach the best: {res.details['starts_at_best']}"
    )

    t = time.perf_counter()
    boot = fit_law(runs, "chinchilla", bootstrap=args.replicates, seed=0)
    total = time.perf_counter() - t
    print(
        f"[2] {args.replicates} bootstrap replicates: {total - np.median(times):.1f} s "
        f"(fit + bootstrap {total:.1f} s; {os.cpu_count()} worker processes; target <= 60 s)"
    )
    for k in ("E", "alpha", "beta"):
        lo, hi = boot.intervals[k]
        print(f"    {k}: 95% interval ({lo:.4f}, {hi:.4f})")

    dt, n, best = baseline(runs, args.subset)
    est = dt / n * 4500
    print(
        f"[3] naive scipy L-BFGS-B loop: {dt:.1f} s for {n} starts -> {est:.0f} s extrapolated "
        f"to 4500 ({est / np.median(times):.0f}x the batched search)"
    )
    a, b, e, al, be = best.x
    agree = abs(best.fun - res.objective) / res.objective
    print(
        f"    its best of {n}: E = {np.exp(e):.4f}, alpha = {al:.4f}, beta = {be:.4f}, "
        f"objective = {best.fun:.6e} (relative difference from [1]: {agree:.1e})"
    )
    print(f"    bootstrap by the naive loop would take ~{est * args.replicates / 3600:.0f} h")


if __name__ == "__main__":
    main()
