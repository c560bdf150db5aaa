"""Pieces of the calibration estimate on exact data: forward Kaplan model, L(N), contours, law file.

Reference values: docs/reference.md §1.6 (implicit L(N, S, B) test vector), §1.7 (App. B frontier),
§10 (B_crit test vectors). Each piece must recover the constants that generated its input to
near machine precision when the input is noise-free.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from scalecalc.calibration.estimate import (
    KAPLAN_TABLE5,
    Curve,
    Estimate,
    contours,
    curves_from_store,
    fit_bcrit,
    fit_loss_n,
    fit_loss_n_e,
    loss_nsb,
    make_curve,
)
from scalecalc.calibration.estimate.contour import Contour, first_reach, fit_contour
from scalecalc.calibration.estimate.curves import smooth_log_loss
from scalecalc.calibration.estimate.kaplan import b_crit, frontier, loss_n, loss_n_smin, optimal_params, s_min
from scalecalc.calibration.estimate.result import write_yaml
from scalecalc.errors import NotEnoughData

T5 = KAPLAN_TABLE5
PF_DAY = 8.64e19  # FLOPs (Kaplan §1.3)


# --- forward model --------------------------------------------------------------------------


def test_implicit_loss_matches_reference_vector():
    # docs/reference.md §1.6: Table 5 constants, N = 1e8, S = 1e5, B = 2^19 -> L = 2.961,
    # B_crit = 1.20e6 tokens, S_min = 3.05e4 (3 significant figures as published there)
    L = loss_nsb(1e8, 1e5, 2.0**19, **T5)
    assert_allclose(L, 2.961, atol=5e-4)
    assert_allclose(b_crit(L, T5["Bstar"], T5["alpha_B"]), 1.20e6, rtol=5e-3)
    assert_allclose(s_min(1e5, 2.0**19, L, T5["Bstar"], T5["alpha_B"]), 3.05e4, rtol=5e-3)


def test_b_crit_reference_vectors():
    # docs/reference.md §10 with B* = 2e8, alpha_B = 0.21
    assert_allclose(b_crit(np.array([2.0, 3.0, 4.0, 10.0]), 2e8, 0.21), [7.37e6, 1.07e6, 2.72e5, 3.46e3], rtol=5e-3)


@settings(max_examples=40, deadline=None)
@given(logN=st.floats(5, 11), logS=st.floats(1, 6), logB=st.floats(10, 22))
def test_implicit_loss_solves_its_equation(logN, logS, logB):
    N, S, B = 10.0**logN, 10.0**logS, 2.0**logB
    L = loss_nsb(N, S, B, **T5)
    # L = L(N, S_min(S, B, L)) to float precision, above the converged L(N)
    Smin = s_min(S, B, L, T5["Bstar"], T5["alpha_B"])
    assert_allclose(L, loss_n_smin(N, Smin, T5["N_c"], T5["alpha_N"], T5["S_c"], T5["alpha_S"]), rtol=1e-12)
    assert L > loss_n(N, T5["N_c"], T5["alpha_N"])
    # more steps or a bigger batch (more tokens per step) never raise the loss
    assert loss_nsb(N, 2 * S, B, **T5) < L
    assert loss_nsb(N, S, 2 * B, **T5) < L


def test_implicit_loss_without_bstar_is_explicit_in_s():
    k = {key: T5[key] for key in ("N_c", "alpha_N", "S_c", "alpha_S")}
    assert_allclose(loss_nsb(1e7, [1e3, 1e4], 1e5, **k), loss_n_smin(1e7, np.array([1e3, 1e4]), **k))


def test_frontier_matches_app_b_reference():
    # docs/reference.md §1.7: Table 5 constants give alpha_C = 0.0520, C_c = 2.2e8 PF-days and
    # N(C_min = 1 PF-day) = 6.0e8 from eq B.9
    fr = frontier(**T5)
    assert_allclose(fr["alpha_C"], 0.0520, atol=5e-5)
    assert_allclose(fr["C_c"] / PF_DAY, 2.2e8, rtol=0.01)
    assert_allclose(optimal_params(PF_DAY, **T5), 6.0e8, rtol=0.01)


# --- curves ---------------------------------------------------------------------------------


def test_smoothing_keeps_power_laws_and_reduces_noise():
    S = np.arange(100, 10001, 50, dtype=float)
    L = 5.0 * S**-0.1  # a straight line in log-log is left exactly as is
    assert_allclose(np.exp(smooth_log_loss(S, L)), L, rtol=1e-12)
    noisy = L * np.exp(0.01 * np.random.default_rng(0).standard_normal(len(S)))
    resid = smooth_log_loss(S, noisy) - np.log(L)
    assert np.std(resid[20:-20]) < 0.5 * 0.01


def test_first_reach_inverts_a_power_law():
    S = np.geomspace(10, 1e5, 200)
    c = make_curve("r", 1e6, 1.2e6, 1024, 0, S, 10.0 * S**-0.2)
    for target in (4.0, 2.0, 1.2):
        assert_allclose(first_reach(c, target), (10.0 / target) ** 5, rtol=1e-9)
    assert np.isnan(first_reach(c, 0.5))  # never reached
    assert np.isnan(first_reach(c, 9.0))  # already below at the first point


def test_final_loss_ignores_step_zero_and_warmup():
    # the trainer logs step 0 (log 0 would poison the smoothing) and the warmup transient
    S = np.array([0, 5, 10, 20, 40, 80], float)
    c = make_curve(
        "r", 1e6, 1.2e6, 1024, 10, S, [5.5, 5.0, 4.0, 3.0 * 20**-0.1 * 20**0.1, 3.0 * 2**-0.1, 3.0 * 4**-0.1]
    )
    assert_allclose(c.final_loss, 3.0 * 4**-0.1, rtol=1e-12)
    assert np.isnan(make_curve("r", 1e6, 1e6, 1024, 0, [0, 1], [np.nan, -1.0]).final_loss)


def test_make_curve_derives_tokens_and_flops():
    c = make_curve("r", 1e6, 1.5e6, 4096, 10, [30, 20, 10], [3.0, 3.5, 4.0])
    assert_allclose(c.steps, [10, 20, 30])
    assert_allclose(c.loss, [4.0, 3.5, 3.0])
    assert_allclose(c.tokens, [40960, 81920, 122880])
    assert_allclose(c.flops, 6e6 * c.tokens)  # Kaplan C = 6 N B S (§2.1)
    assert list(c.after_warmup()) == [False, True, True]


# --- step 1: L(N) ---------------------------------------------------------------------------


def test_power_law_in_n_exact_recovery():
    N = np.geomspace(1e5, 1e8, 6)
    fit = fit_loss_n(N, loss_n(N, 8.8e13, 0.076))
    assert_allclose([fit.N_c, fit.alpha_N], [8.8e13, 0.076], rtol=1e-9)
    assert fit.rms < 1e-12 and fit.E is None


def test_power_law_with_irreducible_term_exact_recovery():
    N = np.geomspace(1e5, 1e8, 8)
    fit = fit_loss_n_e(N, 1.7 + loss_n(N, 1e7, 0.3))
    assert_allclose([fit.E, fit.N_c, fit.alpha_N], [1.7, 1e7, 0.3], rtol=1e-5)
    assert not fit.at_bound


def test_irreducible_term_at_bound_is_flagged():
    N = np.geomspace(1e5, 1e8, 6)
    fit = fit_loss_n_e(N, loss_n(N, 8.8e13, 0.076))  # a pure power law: best E is 0
    assert fit.at_bound and fit.E < 1e-3


@pytest.mark.parametrize(
    "N, L, match",
    [
        ([1e6, 1e6], [3.0, 3.1], "at least 2 model sizes"),
        ([1e6, 1e7], [3.0, 3.2], "does not fall with N"),
    ],
)
def test_power_law_in_n_refuses_bad_data(N, L, match):
    with pytest.raises(NotEnoughData, match=match):
        fit_loss_n(N, L)


def test_irreducible_term_needs_three_sizes():
    with pytest.raises(NotEnoughData, match="at least 3 model sizes"):
        fit_loss_n_e([1e6, 1e7], [3.0, 2.8])


# --- step 2: contours -----------------------------------------------------------------------


def test_contour_hyperbola_exact_recovery():
    # S(B) = S_min + E_min/B is Kaplan eq 5.1 with E = B S (module docstring of contour.py)
    B = 2.0 ** np.arange(12, 19)
    S = 3000.0 + 6e8 / B
    c = fit_contour(1e6, 3.0, B, S)
    assert c.ok
    assert_allclose([c.S_min, c.E_min, c.B_crit], [3000.0, 6e8, 2e5], rtol=1e-10)
    # and the points satisfy (S/S_min - 1)(E/E_min - 1) = 1
    assert_allclose((S / c.S_min - 1) * (B * S / c.E_min - 1), 1.0, rtol=1e-9)


def test_contour_with_one_batch_size_fails_cleanly():
    c = fit_contour(1e6, 3.0, np.array([4096.0, 4096.0]), np.array([100.0, 110.0]))
    assert not c.ok and "fewer than 2 batch sizes" in c.message and np.isnan(c.B_crit)


def test_contours_from_exact_curves_follow_b_crit():
    S = np.unique(np.round(np.geomspace(1, 3e4, 400)))
    group = [make_curve(f"b{B}", 1e6, 1.2e6, B, 20, S, loss_nsb(1e6, S, B, **T5)) for B in 2.0 ** np.arange(13, 19)]
    found = [c for c in contours(group, n_levels=8) if c.ok]
    assert len(found) == 8
    for c in found:  # interpolation of the smoothed curves costs a little accuracy
        assert_allclose(c.B_crit, b_crit(c.L, T5["Bstar"], T5["alpha_B"]), rtol=0.02)


def test_one_batch_size_gives_no_contours_and_no_b_star():
    S = np.geomspace(10, 1e4, 50)
    group = [make_curve("a", 1e6, 1.2e6, 8192, 0, S, loss_nsb(1e6, S, 8192, **T5))]
    assert contours(group) == []
    with pytest.raises(NotEnoughData, match="2 or more losses"):
        fit_bcrit([])


def test_b_crit_power_law_exact_recovery():
    L = np.geomspace(3, 8, 6)
    Bc = b_crit(L, 2.1e8, 0.21)
    found = [Contour(1e6, l, (b / 4, b * 4), (1.0, 1.0), 1.0, b, b, True) for l, b in zip(L, Bc)]
    fit = fit_bcrit(found)
    assert_allclose([fit.Bstar, fit.alpha_B], [2.1e8, 0.21], rtol=1e-10)
    assert fit.n_contours == 6


def test_b_crit_far_outside_the_batch_grid_is_left_out():
    L = np.geomspace(3, 8, 4)
    Bc = b_crit(L, 2.1e8, 0.21)
    found = [Contour(1e6, l, (b / 4, b * 4), (1.0, 1.0), 1.0, b, b, True) for l, b in zip(L, Bc)]
    found.append(Contour(1e6, 10.0, (1e6, 2e6), (1.0, 1.0), 1.0, 10.0, 10.0, True))  # 1e5x below
    assert fit_bcrit(found).n_contours == 4


# --- law file -------------------------------------------------------------------------------


def _estimate(constants, **kw) -> Estimate:
    return Estimate(
        constants=dict(constants),
        intervals={k: (0.9 * v, 1.1 * v) for k, v in constants.items()},
        bootstrap={k: (v, v * 1.01) for k, v in constants.items()},
        n_runs=12,
        n_sizes=4,
        warnings=("a warning",),
        provenance={"recipe": "quick-cpu", "date": "2026-01-01"},
        fitted_range={"params": (1e5, 1e7), "tokens": (1e7, 1e9)},
        **kw,
    )


def _load(law: dict, tmp_path):
    from scalecalc.laws import load_law

    path = write_yaml(law, tmp_path / "law.yaml")
    assert not [p for p in tmp_path.iterdir() if p.name != "law.yaml"]  # no temp file left
    return load_law(str(path))


def test_kaplan_law_file_plans_the_app_b_frontier(tmp_path):
    law = _load(_estimate(T5).to_law("calib"), tmp_path)
    assert law.name == "calib" and law.flops == "kaplan" and law.params_kind == "non_embedding"
    assert not law.has_loss
    # C = 2 PF-days at B = B_crit is C_min = 1 PF-day: eq B.9 gives 6.0e8 (docs/reference.md §1.7)
    C = 2 * PF_DAY
    N = law.evaluate("params", C=C)
    assert_allclose(N, 6.0e8, rtol=0.01)
    assert_allclose(6 * N * law.evaluate("tokens", C=C), C, rtol=1e-12)  # the budget is spent
    assert_allclose(law.evaluate("critical_batch", L=3.0), 2.1e8 / 3.0 ** (1 / 0.21), rtol=1e-12)
    L_opt = (frontier(**T5)["C_c"] / PF_DAY) ** frontier(**T5)["alpha_C"]
    assert_allclose(law.hyperparameter("batch_size", C=C), b_crit(L_opt, 2.1e8, 0.21), rtol=1e-12)
    # bootstrap replicates move the allocation (alpha_C, C_c are derived, not frozen)
    reps = law.replicates()
    assert len(reps) == 2 and law.evaluate("params", reps[1], C=C) != N


def test_chinchilla_law_file_when_isoflop_constants_exist(tmp_path):
    chin = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658, "a": 0.5}
    law = _load(_estimate({**T5, **chin}).to_law(), tmp_path)
    assert law.form == "chinchilla" and law.flops == "6nd" and law.params_kind == "total"
    assert_allclose(
        law.evaluate("loss", N=1e9, D=20e9), 1.8172 + 482.01 / 1e9**0.3478 + 2085.43 / 20e9**0.3658, rtol=1e-12
    )
    assert law.critical_batch is not None


def test_law_needs_b_star_or_isoflop():
    partial = {k: T5[k] for k in ("N_c", "alpha_N", "S_c", "alpha_S")}
    with pytest.raises(NotEnoughData, match="Bstar, alpha_B not estimated"):
        _estimate(partial).to_law()


def test_to_dict_is_json():
    d = json.loads(json.dumps(_estimate(T5).to_dict()))
    assert d["constants"]["Bstar"] == 2.1e8 and d["intervals"]["alpha_B"] == [0.189, 0.231]


# --- store adapter --------------------------------------------------------------------------


def test_curves_from_store(tmp_path):
    from scalecalc.calibration.store import Point, Store

    store = Store(tmp_path, create=True)
    store.set_meta(recipe="unit")
    cfg = {
        "n_layer": 2,
        "d_model": 64,
        "n_head": 2,
        "seq_len": 128,
        "batch_size": 16,
        "budget_kind": "flops",
        "budget_amount": 1e15,
        "fixed_warmup_steps": 5,
    }
    store.add_runs([("r1", cfg), ("r2", {**cfg, "batch_size": 32})])
    for rid, status in (("r1", "done"), ("r2", "failed")):
        store.claim_next(only=[rid])
        store.set_run_info(rid, params={"non_embedding": 1e5, "total": 1.4e5, "embedding": 4e4}, device="cpu")
        store.add_points(
            [
                Point(rid, s, s * 2048.0, s * 2048.0 * 8.4e5, None, None if s == 1 else 5.0 / s**0.1, 1e-3, 0.1)
                for s in (1, 10, 20, 40)
            ]
        )
        store.finish(rid, status)
    (c,) = curves_from_store(store)  # the failed run is left out
    assert isinstance(c, Curve) and c.run_id == "r1"
    assert (c.N_non_embedding, c.N_total, c.batch_tokens, c.warmup_steps, c.budget) == (1e5, 1.4e5, 2048, 5, 1e15)
    assert_allclose(c.steps, [10, 20, 40])  # the point without a validation loss is skipped
    assert_allclose(c.flops, c.tokens * 8.4e5)
    store.close()
