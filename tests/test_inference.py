"""Inference-aware optimum (Sardana et al. 2024) against brute force, the closed form and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc import inference
from scalecalc.errors import InfeasibleTarget, UsageError

# Besiroglu et al. 2024 (Epoch) refit and Hoffmann et al. 2022 rounded Approach-3 constants.
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# Sardana et al. 2024 Table 1 refit on all data (docs/reference.md §8): very different exponents.
SARDANA = {"E": 1.45, "A": 33.66, "B": 138.9, "alpha": 0.18, "beta": 0.24}


def _loss(law, N, D):
    return law["E"] + law["A"] / N ** law["alpha"] + law["B"] / D ** law["beta"]


def _closed_form_optimum(law, C):
    # Hoffmann et al. 2022 eq. 4: N* = G (C/6)^a, G = (alpha A / (beta B))^(1/(alpha+beta)).
    a, b = law["alpha"], law["beta"]
    G = (a * law["A"] / (b * law["B"])) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    return N, C / (6 * N)


def _brute_force(law, loss, T, *, w_inf=1.0, points=200_000):
    # Dense log grid over the feasible N (A/N^alpha < loss - E), objective 6 N D(N) + w 2 N T.
    s = loss - law["E"]
    n_min = (law["A"] / s) ** (1 / law["alpha"])
    N = n_min * np.geomspace(1 + 1e-9, 1e4, points)
    D = (law["B"] / (s - law["A"] / N ** law["alpha"])) ** (1 / law["beta"])
    cost = 6 * N * D + w_inf * 2 * N * T
    i = np.argmin(cost)
    return N[i], D[i], cost[i]


@pytest.mark.parametrize("law", [EPOCH, CHINCHILLA, SARDANA], ids=["epoch", "chinchilla", "sardana"])
@pytest.mark.parametrize("C, T", [(1e21, 1e11), (5.76e23, 2e12), (1e24, 1e14), (1e22, 1e15)])
def test_matches_brute_force_grid(law, C, T):
    loss = _loss(law, *_closed_form_optimum(law, C))
    opt = inference.inference_optimal(law, loss, T)
    N, D, cost = _brute_force(law, loss, T)
    assert opt.params == pytest.approx(N, rel=1e-4)
    # D_tr(N) is steep near the feasibility edge, so the grid's 4.6e-5 step in N spreads wider in D.
    assert opt.train_tokens == pytest.approx(D, rel=1e-3)
    assert opt.total_flops <= cost * (1 + 1e-12)  # never worse than the best grid point
    assert opt.total_flops == pytest.approx(cost, rel=1e-8)


@pytest.mark.parametrize("law", [EPOCH, CHINCHILLA, SARDANA])
def test_zero_inference_is_the_compute_optimal_point(law):
    C = np.geomspace(1e18, 1e26, 9)
    N_star, D_star = _closed_form_optimum(law, C)
    opt = inference.inference_optimal(law, _loss(law, N_star, D_star), 0.0)
    np.testing.assert_allclose(opt.params, N_star, rtol=1e-9)
    np.testing.assert_allclose(opt.train_tokens, D_star, rtol=1e-9)
    np.testing.assert_allclose(opt.params_0, N_star, rtol=1e-9)
    np.testing.assert_allclose(opt.train_flops, C, rtol=1e-9)
    np.testing.assert_allclose(opt.cost_saving, 0.0, atol=1e-12)


def test_optimality_condition_of_the_reference_note():
    # docs/reference.md §8: eps_N / eps_D = 1 + D_inf / (3 D_tr), eps = loss elasticities.
    loss = _loss(EPOCH, *_closed_form_optimum(EPOCH, 1e23))
    opt = inference.inference_optimal(EPOCH, loss, np.array([1e10, 1e12, 1e14]))
    eps_N = EPOCH["alpha"] * EPOCH["A"] / opt.params ** EPOCH["alpha"]
    eps_D = EPOCH["beta"] * EPOCH["B"] / opt.train_tokens ** EPOCH["beta"]
    np.testing.assert_allclose(eps_N / eps_D, 1 + opt.inference_tokens / (3 * opt.train_tokens), rtol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    logC=st.floats(19, 26),
    logT=st.floats(8, 16),
    law=st.sampled_from([EPOCH, CHINCHILLA, SARDANA]),
)
def test_more_inference_means_smaller_longer_trained_models(logC, logT, law):
    loss = _loss(law, *_closed_form_optimum(law, 10**logC))
    T = np.array([0.0, 10**logT, 10 ** (logT + 0.5)])
    opt = inference.inference_optimal(law, loss, T)
    assert np.all(np.diff(opt.params) < 0) and np.all(np.diff(opt.train_tokens) > 0)
    np.testing.assert_allclose(_loss(law, opt.params, opt.train_tokens), loss, rtol=1e-10)
    assert np.all(opt.total_flops <= opt.total_flops_0 * (1 + 1e-12))
    assert np.all(opt.cost_saving >= -1e-12)


def test_mfu_weighting_is_a_rescaled_inference_volume():
    # Cost version (Sardana §cost): weights 1/MFU; only w_inf/w_tr = 0.5/0.25 = 2 moves the optimum,
    # so it must equal the FLOPs optimum with twice the inference tokens.
    loss = _loss(EPOCH, *_closed_form_optimum(EPOCH, 1e23))
    weighted = inference.inference_optimal(EPOCH, loss, 1e13, mfu_train=0.5, mfu_inference=0.25)
    doubled = inference.inference_optimal(EPOCH, loss, 2e13)
    assert weighted.objective == "mfu_weighted_flops"
    assert weighted.params == pytest.approx(doubled.params, rel=1e-10)
    assert weighted.cost == pytest.approx(weighted.train_flops / 0.5 + weighted.inference_flops / 0.25)
    N, _, _ = _brute_force(EPOCH, loss, 1e13, w_inf=2.0)
    assert weighted.params == pytest.approx(N, rel=1e-4)


def test_dollar_objective():
    loss = _loss(EPOCH, *_closed_form_optimum(EPOCH, 1e23))
    opt = inference.inference_optimal(EPOCH, loss, 1e13, usd_per_flop_train=1e-18, usd_per_flop_inference=3e-18)
    assert opt.objective == "usd"
    assert opt.cost == pytest.approx(1e-18 * opt.train_flops + 3e-18 * opt.inference_flops)
    assert opt.params == pytest.approx(inference.inference_optimal(EPOCH, loss, 3e13).params, rel=1e-10)


def test_vectorised_over_many_budgets():
    C = np.geomspace(1e19, 1e26, 10_000)
    loss = _loss(EPOCH, *_closed_form_optimum(EPOCH, C))
    opt = inference.inference_optimal(EPOCH, loss, 1e13)
    assert opt.params.shape == (10_000,) and np.all(np.isfinite(opt.params))


def test_extreme_inference_warns():
    loss = _loss(EPOCH, *_closed_form_optimum(EPOCH, 1e20))
    opt = inference.inference_optimal(EPOCH, loss, 1e18)
    assert opt.tokens_per_param > 1e4 and "10,000" in opt.warnings[0]


def test_errors():
    with pytest.raises(InfeasibleTarget, match="floor E = 1.817"):
        inference.inference_optimal(EPOCH, 1.8, 1e12)
    with pytest.raises(UsageError, match="--inference-tokens"):
        inference.inference_optimal(EPOCH, 2.2, -1.0)
    with pytest.raises(UsageError, match="--inference-mfu"):
        inference.inference_optimal(EPOCH, 2.2, 1e12, mfu_train=0.4, mfu_inference=1.5)
    with pytest.raises(UsageError, match="constant 'beta' is missing"):
        inference.inference_optimal({"E": 1, "A": 1, "B": 1, "alpha": 0.3}, 2.2, 1e12)
