"""Seed replicates in the estimator: the seed bootstrap, the spread per configuration, the
held-out interval, and the law file's replicates (recipe ``seeds: N``).

Replicates are synthetic Kaplan curves (Table 5 constants) whose seeds differ by a whole-run
level shift of ln L (sigma 0.01, about Kaplan's 0.02-nat seed-to-seed spread at L ~ 2, eq 4.4)
plus per-evaluation noise.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from scalecalc.calibration.estimate import (
    KAPLAN_TABLE5,
    estimate,
    heldout_check,
    replicate_groups,
    seed_spread,
    synthetic_curves,
)
from scalecalc.calibration.estimate.procedure import resample

T5 = KAPLAN_TABLE5
SIZES = [1e5, 3e5, 1e6, 3e6, 1e7]
BATCHES = [2.0**k for k in range(13, 19)]
STEPS = np.unique(np.round(np.geomspace(1, 2e4, 60)))
SEED_SIGMA = 0.01


def _replicates(seeds: int, rng_seed: int = 0):
    rng = np.random.default_rng(rng_seed)
    out = []
    for s in range(seeds):
        for c in synthetic_curves(
            T5, SIZES, BATCHES, steps=STEPS, warmup_steps=100, noise=0.003, seed=rng_seed * 100 + s
        ):
            shift = np.exp(SEED_SIGMA * rng.standard_normal())
            out.append(replace(c, run_id=f"{c.run_id}-s{s}", loss=c.loss * shift, replicate_of=c.run_id))
    return out


@pytest.fixture(scope="module")
def three_seeds():
    return _replicates(3)


def test_seed_spread_reports_each_configuration_over_its_seeds(three_seeds):
    rows = seed_spread(three_seeds)
    assert len(rows) == len(SIZES) * len(BATCHES)
    assert all(r["seeds"] == 3 and r["low"] <= r["mean"] <= r["high"] for r in rows)
    # the injected whole-run shift is 1% in ln L: the spread of 3 seeds is of that order
    median = np.median([r["rel_spread"] for r in rows])
    assert 0.003 < median < 0.05
    assert rows == sorted(rows, key=lambda r: (r["N"], r["batch_tokens"]))


def test_a_seed_bootstrap_resample_keeps_configurations_and_draws_seeds_within_them(three_seeds):
    rng = np.random.default_rng(1)
    groups = {id(c): c.replicate_of for c in three_seeds}
    for _ in range(5):
        pick = resample(three_seeds, rng)
        assert len(pick) == len(three_seeds)
        by_config = {}
        for c in pick:
            by_config.setdefault(groups[id(c)], []).append(c)
        assert all(len(v) % 3 == 0 for v in by_config.values())  # whole configurations
    single = [replace(c, replicate_of=None) for c in three_seeds[:30]]
    assert len(replicate_groups(single)) == 30


def test_intervals_with_seed_noise_cover_the_truth_and_the_law_carries_replicates(three_seeds):
    est = estimate(three_seeds, bootstrap=20, seed=0)
    assert est.method["seed_bootstrap"] is True
    assert est.method["bootstrap_valid"] >= 18
    for name in ("N_c", "alpha_N", "S_c", "alpha_S", "Bstar", "alpha_B"):
        lo, hi = est.intervals[name]
        assert lo <= T5[name] <= hi, name
    law = est.to_law()
    assert len(law["provenance"]["replicates"]) == len(SIZES) * len(BATCHES)
    assert len(law["bootstrap"]["alpha_N"]) >= 18  # plan --law reads these for its intervals


def test_the_heldout_interval_covers_the_measured_seeds(three_seeds):
    held = heldout_check(three_seeds, bootstrap=20, seed=0)
    lo, hi = held["final_interval"]
    assert held["interval_method"] == "bootstrap" and held["interval_replicates"] == 20
    assert lo < held["final_predicted"] < hi
    seeds = held["final_measured_seeds"]
    assert len(seeds) == held["n_seeds"] == 3 and len(set(held["seed_run_ids"])) == 3
    assert held["final_measured"] == pytest.approx(np.mean(seeds))
    assert held["covered"] == sum(lo <= m <= hi for m in seeds)
    assert held["covers_measured"] == (held["covered"] == 3)
    # the seed noise comes from the 3 seeds of each of the 4 smaller sizes at the held-out batch
    assert held["seed_sd_source"] == "seeds" and held["seed_sd_dof"] == 4 * 2 and held["n_runs_refit"] == 12
    assert 0.3 * SEED_SIGMA < held["seed_sd"] < 3 * SEED_SIGMA
    assert abs(held["final_rel_error"]) < 0.03
