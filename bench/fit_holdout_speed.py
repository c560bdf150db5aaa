"""Timing of a default ``scalecalc fit`` with its built-in holdout and bootstrap(1000).

On 250 synthetic runs (10 sizes 10M-3B x 25 token multipliers, noise 0.5%): the default fit
(chinchilla, 4500-start grid, leave-largest-size-out holdout) with ``--bootstrap 1000``. Target:
under 10 s on the 2-core machine. Also reported as a ratio against a baseline in the same run:
the same fit without holdout and without bootstrap (what `fit` did by default before held-out checks), so a
busy machine shows up in both numbers.

Run: ``python bench/fit_holdout_speed.py [--replicates 1000] [--repeats 2]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from scalecalc.fit import Runs, fit_law


def synthetic_runs(n_sizes=10, per=25, seed=0):
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 3e9, n_sizes), per)
    D = N * np.tile(np.geomspace(2, 200, per), n_sizes)
    L = (1.69 + 406.4 / N**0.34 + 410.7 / D**0.28) * np.exp(rng.normal(0, 0.005, N.size))
    return Runs.from_arrays(params=N, tokens=D, loss=L, source="synthetic-250")


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    runs = synthetic_runs()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {len(runs)} runs")
    fit_law(runs, grid=30, holdout="none")  # warm imports
    base, _ = timed(lambda: fit_law(runs, holdout="none"), args.repeats)
    full, res = timed(lambda: fit_law(runs, bootstrap=args.replicates), args.repeats)
    h = res.holdout
    print(f"baseline (fit, no holdout, no bootstrap): {base:.2f} s")
    print(
        f"default fit + holdout + bootstrap({args.replicates}): {full:.2f} s (ratio {full / base:.1f}x; target < 10 s)"
    )
    print(
        f"held-out: {h['n_held_out']} runs of N = {h['runs'][0]['params']:.3g}, mean |error| "
        f"{h['mean_abs_rel_error']:.2%}, covered {h.get('covered')}/{h['n_held_out']}"
    )


if __name__ == "__main__":
    main()
