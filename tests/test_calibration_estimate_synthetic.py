"""End-to-end recovery of known Kaplan constants from synthetic learning curves.

Curves come from Kaplan's implicit L(N, S, B) (eq 1.6 with S_min from eq 5.4 and B_crit from
eq 1.4; docs/reference.md §1.6), with the Table 5 constants, five model sizes over two decades, six batch
sizes 8K-262K tokens (bracketing B_crit ≈ 1e4-1e5 tokens at the losses reached) and 120 log-spaced
evaluations from step 1 to 2e4 with a 100-step warmup. Noise is multiplicative, σ of ln L per
evaluation, seeded.

Tolerances. Exact data: the estimator interpolates curves smoothed with a ±10 % local line, which
bends a curved log-log curve slightly; the exponents come back within 0.5 % and S_c too, while
N_c and B* are extrapolations (to N = 1 and L = 1 nat) that multiply an exponent error by
ln(N_c/N) ≈ 18 and ln(L) / α_B ≈ 8, so they get 5 % and 3 %. Noisy data (σ = 0.005): the tolerances
are about 3 standard deviations of each constant over 6 seeds measured while writing these tests
(sd: α_N 0.5 %, α_B 0.3 %, α_S 0.2 %, S_c 0.7 %, B* 2.8 % around a 4 % low bias, N_c 10 %) plus
the smoothing bias.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from scalecalc.calibration.estimate import KAPLAN_TABLE5, estimate, heldout_check, synthetic_curves
from scalecalc.calibration.estimate.kaplan import b_crit, loss_n
from scalecalc.errors import NotEnoughData

T5 = KAPLAN_TABLE5
SIZES = [1e5, 3e5, 1e6, 3e6, 1e7]
BATCHES = [2.0**k for k in range(13, 19)]
STEPS = np.unique(np.round(np.geomspace(1, 2e4, 120)))


def _curves(noise=0.0, seed=0, sizes=SIZES, batches=BATCHES, steps=STEPS):
    return synthetic_curves(T5, sizes, batches, steps=steps, warmup_steps=100, noise=noise, seed=seed)


@pytest.fixture(scope="module")
def exact():
    return estimate(_curves(), bootstrap=0)


@pytest.fixture(scope="module")
def noisy_curves():
    return _curves(noise=0.005, seed=0)


@pytest.fixture(scope="module")
def noisy(noisy_curves):
    return estimate(noisy_curves, bootstrap=40, seed=0)


def test_exact_curves_recover_all_six_constants(exact):
    k = exact.constants
    assert_allclose(
        [k["alpha_N"], k["alpha_B"], k["alpha_S"], k["S_c"]],
        [T5["alpha_N"], T5["alpha_B"], T5["alpha_S"], T5["S_c"]],
        rtol=0.005,
    )
    assert_allclose(k["N_c"], T5["N_c"], rtol=0.05)
    assert_allclose(k["Bstar"], T5["Bstar"], rtol=0.03)
    assert exact.warnings == ()
    assert exact.method["joint"] and exact.method["batch_adjusted"]
    assert exact.method["contours_used"] == exact.method["contours_tried"] == 60
    assert exact.n_runs == 30 and exact.n_sizes == 5


def test_both_step_three_residuals_agree_on_exact_curves(exact):
    # Kaplan's literal recipe (S_min from the measured loss) and the forward solve are one model
    convert = estimate(_curves(), bootstrap=0, residual="convert")
    for name in ("N_c", "alpha_N", "S_c", "alpha_S"):
        assert_allclose(convert.constants[name], exact.constants[name], rtol=0.02, err_msg=name)
    assert convert.method["residual"] == "convert" and exact.method["residual"] == "forward"


def test_exact_contours_lie_on_b_crit(exact):
    for c in exact.contours:
        assert_allclose(c.B_crit, b_crit(c.L, T5["Bstar"], T5["alpha_B"]), rtol=0.03)


def test_noisy_curves_recover_constants(noisy):
    k = noisy.constants
    assert_allclose(k["alpha_N"], T5["alpha_N"], rtol=0.03)
    assert_allclose(loss_n(1e6, k["N_c"], k["alpha_N"]), loss_n(1e6, T5["N_c"], T5["alpha_N"]), rtol=0.01)
    assert_allclose(k["alpha_B"], T5["alpha_B"], rtol=0.02)
    assert_allclose(k["Bstar"], T5["Bstar"], rtol=0.2)
    # what the sweep measures directly: B_crit inside the losses it covers (L = 5 nats)
    assert_allclose(b_crit(5.0, k["Bstar"], k["alpha_B"]), b_crit(5.0, T5["Bstar"], T5["alpha_B"]), rtol=0.1)
    assert_allclose(k["S_c"], T5["S_c"], rtol=0.03)
    assert_allclose(k["alpha_S"], T5["alpha_S"], rtol=0.015)


def test_bootstrap_intervals_cover_the_truth(noisy):
    # Over 6 seeds x 2 noise levels these 95 % intervals held the truth in 30 of 36 cases at
    # sigma = 0.005 (case resampling of 30 runs is somewhat optimistic); this data set is seed 0.
    assert noisy.method["bootstrap_valid"] == 40
    for name in ("N_c", "alpha_N", "Bstar", "alpha_B", "S_c", "alpha_S"):
        lo, hi = noisy.intervals[name]
        assert lo < noisy.constants[name] < hi and lo <= T5[name] <= hi, name
    assert len(noisy.bootstrap["Bstar"]) == 40


def test_fixed_n_constants_follow_step_one():
    # joint=False is Su et al.'s order: N_c, alpha_N stay at the final-loss fit of step 1
    est = estimate(_curves(batches=BATCHES[::2]), bootstrap=0, joint=False)
    k = est.constants
    assert (k["N_c"], k["alpha_N"]) == (k["N_c_final"], k["alpha_N_final"])
    assert not est.method["joint"]


def test_converged_runs_give_l_of_n_from_final_losses():
    # runs 1e8 steps long sit within 0.05 % of L(N): step 1 alone then recovers eq 1.1
    steps = np.geomspace(1, 1e8, 60)
    est = estimate(_curves(batches=[2.0**15], steps=steps), bootstrap=0)
    assert_allclose(est.constants["alpha_N_final"], T5["alpha_N"], rtol=0.003)
    assert_allclose(est.constants["N_c_final"], T5["N_c"], rtol=0.05)


def test_one_batch_size_warns_and_has_no_b_star():
    est = estimate(_curves(batches=[2.0**15]), bootstrap=0)
    assert "Bstar" not in est.constants and "alpha_B" not in est.constants
    assert any("B*, alpha_B not estimated" in w for w in est.warnings)
    assert any("S_min = S" in w for w in est.warnings)
    assert not est.method["batch_adjusted"]
    # ... and then N_c, alpha_N are held at step 1 rather than dragged by a misspecified S term
    assert not est.method["joint"] and est.constants["alpha_N"] == est.constants["alpha_N_final"]
    with pytest.raises(NotEnoughData, match="batch-size sweep"):
        est.to_law()


def test_few_and_narrow_sizes_warn():
    est = estimate(_curves(sizes=[1e6, 3e6], batches=BATCHES[::2]), bootstrap=0)
    assert any("only 2 model sizes" in w for w in est.warnings)
    assert any("under one decade" in w for w in est.warnings)
    assert "E_N" not in est.constants  # the irreducible term needs 3 sizes


def test_one_size_or_no_runs_is_not_enough():
    with pytest.raises(NotEnoughData, match="at least 2 model sizes"):
        estimate(_curves(sizes=[1e6]), bootstrap=0)
    with pytest.raises(NotEnoughData, match="no finished runs"):
        estimate([], bootstrap=0)


def test_heldout_check_predicts_the_largest_curve(noisy_curves):
    check = heldout_check(noisy_curves)
    # primary: eq 1.1 on the final losses of the 4 smaller sizes at the held-out batch and horizon
    assert check["N"] == 1e7 and check["n_runs_refit"] == 4 and check["n_sizes_refit"] == 4
    assert check["batch_tokens"] == max(BATCHES)
    assert abs(check["final_rel_error"]) < 0.02
    # secondary: eq 1.6 refitted on every run of the smaller sizes, the whole curve predicted
    curve = check["curve"]
    assert curve["n_runs_refit"] == 24
    assert len(curve["steps"]) == len(curve["measured"]) == len(curve["predicted"]) > 50
    assert abs(curve["final_rel_error"]) < 0.02
    assert curve["rms_rel_error"] < 0.03
    # the refit never saw N = 1e7 yet lands close to the truth
    assert_allclose(curve["constants"]["alpha_N"], T5["alpha_N"], rtol=0.05)


def test_heldout_check_needs_three_sizes():
    with pytest.raises(NotEnoughData, match="3 or more model sizes"):
        heldout_check(_curves(sizes=[1e6, 1e7], batches=BATCHES[:2]))


def test_store_round_trip_gives_the_same_estimate(tmp_path):
    from scalecalc.calibration.store import Point, Store

    curves = _curves(noise=0.005, seed=3, sizes=SIZES[::2], batches=BATCHES[::2])
    store = Store(tmp_path, create=True)
    store.set_meta(recipe="synthetic", corpus_hash="abc123")
    for c in curves:
        B = int(c.batch_tokens)
        cfg = {
            "n_layer": 2,
            "d_model": 64,
            "n_head": 2,
            "seq_len": 256,
            "batch_size": B // 256,
            "fixed_warmup_steps": c.warmup_steps,
            "tag": c.run_id,
        }
        store.add_runs([(c.run_id, cfg)])
        store.claim_next(only=[c.run_id])
        store.set_run_info(
            c.run_id,
            params={"non_embedding": c.N_non_embedding, "total": c.N_total},
            device="cpu",
            corpus_hash="abc123",
        )
        store.add_points(
            [
                Point(c.run_id, int(s), t, f, None, float(l), 1e-3, 0.0)
                for s, t, f, l in zip(c.steps, c.tokens, c.flops, c.loss)
            ]
        )
        store.finish(c.run_id, "done")
    from_store = estimate(store, bootstrap=0)
    direct = estimate(curves, bootstrap=0)
    for name, value in direct.constants.items():
        assert_allclose(from_store.constants[name], value, rtol=1e-9, err_msg=name)
    prov = from_store.provenance
    assert prov["recipe"] == "synthetic" and prov["corpus_hash"] == "abc123"
    assert prov["devices"] == ["cpu"] and prov["n_runs"] == 9 and "numpy" in prov["versions"]
    law = from_store.to_law("synthetic")
    assert law["provenance"]["recipe"] == "synthetic" and law["form"] == "kaplan"
    store.close()


def _isoflop_curves(E=1.8, A=400.0, B=1500.0, alpha=0.34, beta=0.37):
    """IsoFLOP runs from a Chinchilla law: 3 budgets x 7 sizes around the optimum, logged twice."""
    from scalecalc.calibration.estimate import make_curve

    G = (alpha * A / (beta * B)) ** (1 / (alpha + beta))  # Hoffmann eq. 4: N_opt = G (C/6)^a
    curves = []
    for C in (1e15, 1e16, 1e17):
        N_opt = G * (C / 6) ** (beta / (alpha + beta))
        for N in N_opt * np.geomspace(0.1, 10, 7):  # a grid around each budget's minimum
            D = C / (6 * N)
            tokens = np.array([D / 2, D])
            loss = E + A / N**alpha + B / tokens**beta
            curves.append(make_curve(f"C{C:g}-N{N:.3g}", 0.8 * N, N, 4096, 0, tokens / 4096, loss, budget=C))
    return curves


def test_isoflop_runs_give_the_chinchilla_form_through_the_fit_engine(tmp_path):
    fit = pytest.importorskip("scalecalc.fit")
    if not hasattr(fit, "fit_law"):
        pytest.skip("scalecalc.fit.fit_law not available yet")
    est = estimate(_isoflop_curves(), bootstrap=0)
    k = est.constants
    assert_allclose([k["E"], k["alpha"], k["beta"]], [1.8, 0.34, 0.37], rtol=0.02)
    import importlib.util

    if importlib.util.find_spec("scalecalc.fit.isoflop"):  # the engine's IsoFLOP form, when built
        assert_allclose(k["a"], 0.37 / (0.34 + 0.37), rtol=0.05)  # Hoffmann eq. 4: beta/(alpha+beta)
    law = est.to_law("iso")
    assert law["form"] == "chinchilla" and law["loss"] == "E + A / N**alpha + B / D**beta"
    from scalecalc.laws import load_law

    est.write_law(tmp_path / "law.yaml", "iso")
    assert_allclose(
        load_law(str(tmp_path / "law.yaml")).evaluate("loss", N=1e6, D=2e7),
        1.8 + 400 / 1e6**0.34 + 1500 / 2e7**0.37,
        rtol=0.02,
    )
