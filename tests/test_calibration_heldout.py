"""The held-out check of ``calibrate report``: eq 1.1 fitted to the final losses of the smaller
sizes predicts the largest size's final loss, with an interval for one new seed.

Sweeps are generated from a known Kaplan eq 1.1 law, L(N) = (N_c/N)^alpha_N, with constants near
the measured quick-cpu sweep's (alpha_N 0.056, N_c 3.4e7, five sizes 25K-0.8M). Every run of
one size has the same learning-curve shape g(S), so the final losses of a common horizon lie on
eq 1.1 exactly (with N_c scaled); each seed shifts its whole curve by exp(sigma z), the
seed-to-seed noise of known sd sigma in ln L.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from scalecalc.calibration.estimate import heldout_check, make_curve
from scalecalc.errors import NotEnoughData

N_C, ALPHA_N = 3.4e7, 0.056
SIZES = np.geomspace(2.5e4, 8e5, 5)
STEPS = np.unique(np.round(np.geomspace(10, 1000, 15)))
SIGMA = 0.02  # sd of ln L between seeds
BATCH = 2048.0


def _g(S):
    """The learning-curve shape, common to every size: 1 + (20/S)^0.7."""
    return 1.0 + (20.0 / np.asarray(S, float)) ** 0.7


def _truth(N):
    """Final loss of the sweep's horizon for a run of N without seed noise."""
    return (N_C / N) ** ALPHA_N * _g(STEPS[-1])


def _sweep(rng, seeds=3, sizes=SIZES, alpha=ALPHA_N, shifts=None):
    """Curves of ``seeds`` seeds per size; ``shifts`` (per size, per seed) override the random ones."""
    curves = []
    for i, N in enumerate(sizes):
        for s in range(seeds):
            z = rng.standard_normal() * SIGMA if shifts is None else shifts[i][s]
            loss = (N_C / N) ** alpha * _g(STEPS) * np.exp(z)
            c = make_curve(f"N{N:.4g}-s{s}", N, 1.2 * N, BATCH, 5, STEPS, loss)
            curves.append(_replicate(c, f"N{N:.4g}"))
    return curves


def _replicate(curve, config):
    from dataclasses import replace

    return replace(curve, replicate_of=config)


def _prediction_sd(seeds=3):
    """sd of ln (new seed's loss) − ln (predicted) for OLS on 4 sizes x ``seeds`` (known sigma)."""
    x = np.repeat(np.log(SIZES[:-1]), seeds)
    x0 = np.log(SIZES[-1])
    return SIGMA * np.sqrt(1 + 1 / len(x) + (x0 - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())


def test_the_final_loss_prediction_recovers_eq_1_1_and_its_interval_covers_new_seeds_at_the_nominal_rate():
    rng = np.random.default_rng(2024)
    truth = _truth(SIZES[-1])
    sd_pred = _prediction_sd()
    errors, widths = [], []
    covered = {"bootstrap": 0, "analytic": 0}
    n_seeds = 0
    sweeps = 40
    for k in range(sweeps):
        curves = _sweep(rng)
        boot = heldout_check(curves, bootstrap=200, seed=k)
        analytic = heldout_check(curves, bootstrap=0)
        assert boot["interval_method"] == "bootstrap" and analytic["interval_method"] == "analytic"
        assert boot["n_runs_refit"] == 12 and boot["n_sizes_refit"] == 4 and boot["n_seeds"] == 3
        assert boot["final_predicted"] == analytic["final_predicted"]
        assert boot["final_measured"] == pytest.approx(np.mean(boot["final_measured_seeds"]))
        errors.append(np.log(boot["final_predicted"] / truth))
        # the held-out size's own seeds never enter the fit: each is a fresh seed's measured loss
        for name, check in (("bootstrap", boot), ("analytic", analytic)):
            lo, hi = check["final_interval"]
            assert np.isfinite(lo) and np.isfinite(hi) and lo < check["final_predicted"] < hi
            covered[name] += sum(lo <= m <= hi for m in check["final_measured_seeds"])
            assert check["covered"] == sum(lo <= m <= hi for m in check["final_measured_seeds"])
        widths.append(np.log(boot["final_interval"][1] / boot["final_interval"][0]))
        n_seeds += 3
    errors = np.array(errors)
    # the prediction is unbiased and each sweep lands within 4 sd of the fit's own scatter
    assert abs(errors.mean()) < 3 * sd_pred / np.sqrt(sweeps)
    assert np.all(np.abs(errors) < 4 * sd_pred)
    for name, n in covered.items():
        assert 0.85 <= n / n_seeds <= 1.0, (name, n / n_seeds)
    # and not by being needlessly wide: a 95 % normal interval with the true sd is 3.92 sd wide
    assert np.mean(widths) < 1.5 * 3.92 * sd_pred


def test_the_fit_uses_only_the_heldout_batch_and_horizon_and_every_seed():
    rng = np.random.default_rng(5)
    curves = _sweep(rng, seeds=2)
    # a batch sweep at the second size and a shorter run at the third: neither is the held-out setup
    N1, N2 = SIZES[1], SIZES[2]
    for B in (512.0, 1024.0):
        loss = (N_C / N1) ** ALPHA_N * _g(STEPS) * 1.3
        curves.append(_replicate(make_curve(f"B{B:g}", N1, 1.2 * N1, B, 5, STEPS, loss), f"B{B:g}"))
    short = STEPS[STEPS <= 300]
    curves.append(
        _replicate(make_curve("short", N2, 1.2 * N2, BATCH, 5, short, (N_C / N2) ** ALPHA_N * _g(short)), "short")
    )
    check = heldout_check(curves, bootstrap=0)
    assert check["n_runs_refit"] == 8 and check["n_sizes_refit"] == 4
    assert check["tokens"] == STEPS[-1] * BATCH and check["batch_tokens"] == BATCH
    assert check["curve"]["n_runs_refit"] == 11  # the learning-curve refit takes every run
    assert abs(np.log(check["final_predicted"] / _truth(SIZES[-1]))) < 4 * _prediction_sd(seeds=2)


def test_the_interval_stays_finite_when_refits_blow_up():
    # nearly flat L(N): the sizes' means fall by a slope of 1e-3 while their two seeds differ by
    # +-0.02 in ln L, so a large share of the resamples rise with N (no eq 1.1 law) or give
    # alpha_N so small that N_c overflows
    sizes = np.geomspace(1e5, 1e6, 5)
    shifts = [[0.02, -0.02]] * 5
    curves = _sweep(np.random.default_rng(0), seeds=2, sizes=sizes, alpha=1e-3, shifts=shifts)
    check = heldout_check(curves, bootstrap=200, seed=1)
    lo, hi = check["final_interval"]
    pred = check["final_predicted"]
    assert check["interval_method"] == "bootstrap" and check["interval_failed"] > 10
    assert check["interval_replicates"] + check["interval_failed"] == 200
    assert np.isfinite([lo, hi, pred]).all() and 0.5 * pred < lo < hi < 2 * pred
    assert any("bootstrap refits of L(N) failed" in w for w in check["warnings"])
    json.dumps(check, allow_nan=False)  # nothing infinite on the way to the report
    # too few usable refits: the analytic interval instead, and said so
    few = heldout_check(curves, bootstrap=5, seed=1)
    assert few["interval_method"] == "analytic" and np.isfinite(few["final_interval"]).all()
    assert any("the interval is the analytic one" in w for w in few["warnings"])


def test_a_flat_law_that_does_not_extrapolate_is_refused():
    sizes = np.geomspace(1e5, 1e6, 4)
    curves = _sweep(np.random.default_rng(0), seeds=1, sizes=sizes, alpha=1e-7, shifts=[[0.0]] * 4)
    with pytest.raises(NotEnoughData, match="does not extrapolate|does not fall"):
        heldout_check(curves)


def test_without_seed_replicates_the_noise_comes_from_the_fit_residuals():
    rng = np.random.default_rng(3)
    curves = _sweep(rng, seeds=1)
    check = heldout_check(curves, bootstrap=100, seed=0)
    assert check["seed_sd_source"] == "fit residuals" and check["seed_sd_dof"] == 2
    assert check["n_seeds"] == 1 and check["final_measured"] == check["final_measured_seeds"][0]
    assert np.isfinite(check["final_interval"]).all()
    assert any("no seed replicates" in w for w in check["warnings"])


def _store_from(curves, path):
    from scalecalc.calibration.store import Point, Store

    store = Store(path, create=True)
    store.set_meta(recipe="synthetic-heldout", corpus_hash="abc")
    for c in curves:
        seed = int(c.run_id.rsplit("-s", 1)[1])
        cfg = {
            "n_layer": 2,
            "d_model": int(c.N_non_embedding),
            "n_head": 2,
            "seq_len": 128,
            "batch_size": int(c.batch_tokens) // 128,
            "fixed_warmup_steps": c.warmup_steps,
            "seed": seed,
        }
        store.add_runs([(c.run_id, cfg)])
        store.claim_next(only=[c.run_id])
        store.set_run_info(
            c.run_id, params={"non_embedding": c.N_non_embedding, "total": c.N_total}, device="cpu", corpus_hash="abc"
        )
        store.add_points(
            [
                Point(c.run_id, int(s), t, f, None, float(v), 1e-3, 0.0)
                for s, t, f, v in zip(c.steps, c.tokens, c.flops, c.loss)
            ]
        )
        store.finish(c.run_id, "done")
    store.close()


def test_the_report_shows_the_final_loss_check_through_the_cli(tmp_path):
    from helpers import run

    curves = _sweep(np.random.default_rng(7), seeds=2)
    _store_from(curves, tmp_path / "store")
    result = run("calibrate", "report", str(tmp_path / "store"), "--json", "--bootstrap", "20")
    assert result.exit_code == 0, result.stdout + result.stderr
    held = json.loads(result.stdout)["heldout"]
    assert held["N"] == pytest.approx(SIZES[-1])
    seeds = held["final_measured_seeds"]
    assert held["n_seeds"] == len(seeds) == len(held["seed_run_ids"]) == 2
    assert held["final_measured"] == pytest.approx(np.mean(seeds))
    lo, hi = held["final_interval"]
    assert lo < held["final_predicted"] < hi and held["interval_method"] == "bootstrap"
    assert held["final_rel_error"] == pytest.approx(held["final_predicted"] / np.mean(seeds) - 1)
    assert held["covered"] == sum(lo <= m <= hi for m in seeds)
    assert held["covers_measured"] == (held["covered"] == 2)
    assert held["seed_sd_source"] == "seeds" and held["n_runs_refit"] == 8
    assert held["law"]["alpha_N"] == pytest.approx(ALPHA_N, abs=0.02)
    curve = held["curve"]
    assert len(curve["steps"]) == len(curve["measured"]) == len(curve["predicted"]) > 5
    assert {"final_predicted", "rms_rel_error", "constants"} <= set(curve)

    table = run("calibrate", "report", str(tmp_path / "store"), "--bootstrap", "20", "--plot", str(tmp_path / "fig"))
    assert table.exit_code == 0, table.stdout + table.stderr
    text = table.stdout + table.stderr
    assert "fit L(N) to the final losses of the smaller sizes, predict the largest" in text
    assert "eq 1.1" in text and "eq 1.6" in text
    if (tmp_path / "fig").exists():  # matplotlib installed
        assert (tmp_path / "fig" / "heldout.png").stat().st_size > 0
