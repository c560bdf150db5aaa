"""Timing of ``scalecalc calibrate design`` with the default search (target: under 2 minutes on
a 2-core machine, with a progress bar).

Times, in one run:
1. the whole default design (72 sweep shapes, halving search, 400 final replicates, trade-off)
   for ``--target-compute 1e23 --budget-gpu-hours 50 --gpu h100``;
2. the simulation of one sweep (400 replicates) with the vectorised fit (``simulate.lm_rows``);
3. the in-run baseline: the same replicates fitted one at a time through the fit engine's entry
   point, ``scalecalc.fit.fit_law(..., "chinchilla")`` with its default 4500-start grid, over a
   subset, extrapolated to 400; and a check that both give the same N* at the target.

Run: ``python bench/design_speed.py [--subset 10]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from scalecalc.calibration.design import Prior, SweepShape, design, simulate
from scalecalc.calibration.design.simulate import noise_draw
from scalecalc.fit import fit_law
from scalecalc.fit.runs import Runs
from scalecalc.hardware import budget_flops
from scalecalc.laws import load_law


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", type=int, default=10, help="replicates for the fit_law baseline")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    prior = Prior.from_law(load_law("besiroglu2024"))
    cost = float(budget_flops("h100", gpu_hours=50))

    t = time.perf_counter()
    result = design(prior, 1e23, cost)
    whole = time.perf_counter() - t
    print(
        f"1. default design (1e23 FLOPs, 50 H100-hours, {result.candidates} shapes): "
        f"{whole:.1f} s (target < 120 s); best {result.best.runs.shape.label()}"
    )

    shape = SweepShape(4, 10.0, 7, 8.0, 1)
    runs = shape.runs(prior, cost)
    t = time.perf_counter()
    out = simulate(prior, runs.N, runs.D, 1e23, replicates=400, seed=0)
    vec = time.perf_counter() - t
    print(f"2. one sweep, 400 replicates, vectorised: {vec:.2f} s ({1e3 * vec / 400:.1f} ms each)")

    eps = noise_draw(args.subset, 0)[:, : runs.N.size]
    t = time.perf_counter()
    ref = []
    for r in range(args.subset):
        loss = prior.loss(runs.N, runs.D) * np.exp(0.01 * eps[r])
        p = fit_law(
            Runs.from_arrays(params=runs.N, tokens=runs.D, loss=loss, flops_convention="6nd", source="bench"),
            "chinchilla",
        ).params
        ref.append(Prior("fit", p["E"], p["A"], p["B"], p["alpha"], p["beta"]).optimum(1e23)[0][0])
    base = (time.perf_counter() - t) / args.subset
    same = np.max(np.abs(np.array(ref) / out.N[: args.subset] - 1))
    print(
        f"3. baseline fit_law one at a time: {1e3 * base:.0f} ms each, 400 would take "
        f"{400 * base:.1f} s: vectorised is {400 * base / vec:.0f}x faster; "
        f"max relative difference in N*: {same:.1e}"
    )


if __name__ == "__main__":
    main()
