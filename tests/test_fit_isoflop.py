"""Approaches 2 (IsoFLOP) and 1 (envelope) on data from a Chinchilla-form law."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_fit_synth import HOFFMANN, isoflop_runs, learning_curves

from scalecalc.errors import DataError, NotEnoughData
from scalecalc.fit import Runs, fit_law
from scalecalc.fit.isoflop import curve_minimum, group_budgets

A_TRUE = HOFFMANN["beta"] / (HOFFMANN["alpha"] + HOFFMANN["beta"])  # a = beta/(alpha+beta) = 0.4565


def test_isoflop_recovers_a_equals_beta_over_alpha_plus_beta():
    res = fit_law(isoflop_runs(noise=0.0), "isoflop")
    assert_allclose(res.params["a"], A_TRUE, atol=0.002)
    assert_allclose(res.params["a"] + res.params["b"], 1.0, atol=1e-9)  # D* = C / (6 N*)
    # N* = G (C/6)**a with G = (alpha A / (beta B))**(1/(alpha+beta)) (Hoffmann eq. 4)
    al, be = HOFFMANN["alpha"], HOFFMANN["beta"]
    G = (al * HOFFMANN["A"] / (be * HOFFMANN["B"])) ** (1 / (al + be))
    assert_allclose(res.params["G"], G * 6**-A_TRUE, rtol=0.05)
    assert res.n_points == 81 and res.params_formula == "G * C**a"


def test_isoflop_with_noise_and_bootstrap_interval():
    res = fit_law(isoflop_runs(seed=1, noise=0.002), "isoflop", bootstrap=100, seed=0, budgets=[1e23])
    lo, hi = res.intervals["a"]
    assert lo < A_TRUE < hi and hi - lo < 0.05
    assert res.derived[0]["params_ci"][0] < res.derived[0]["params"] < res.derived[0]["params_ci"][1]
    assert len(res.bootstrap["a"]) >= 95


def test_akima_noiseless():
    res = fit_law(isoflop_runs(noise=0.0), "isoflop", interp="akima")
    assert_allclose(res.params["a"], A_TRUE, atol=0.005)
    assert "akima" in res.method


def test_edge_budgets_are_dropped_with_a_warning():
    runs = isoflop_runs(noise=0.0)
    # Shift the sizes of the first budget so its minimum lies below the smallest size sampled.
    first = runs.budget == runs.budget.min()
    N = np.where(first, runs.params * 20, runs.params)
    D = runs.budget / (6 * N)
    L = HOFFMANN["E"] + HOFFMANN["A"] / N ** HOFFMANN["alpha"] + HOFFMANN["B"] / D ** HOFFMANN["beta"]
    res = fit_law(Runs.from_arrays(params=N, tokens=D, loss=L, budget=runs.budget), "isoflop")
    assert any("budget C = 1e+18 dropped: the minimum is at the edge" in w for w in res.warnings)
    assert res.details["minima"][0]["used"] is False
    assert_allclose(res.params["a"], A_TRUE, atol=0.003)


def test_budget_clusters_without_a_budget_column():
    runs = isoflop_runs(noise=0.0)
    jitter = np.exp(np.random.default_rng(0).uniform(-0.02, 0.02, len(runs)))
    loose = Runs.from_arrays(params=runs.params, flops=runs.flops * jitter, loss=runs.loss)
    assert len(group_budgets(loose)) == 9


def test_curve_minimum_parabola_exact():
    x = np.linspace(-1, 1, 7)
    xs, ys, why = curve_minimum(x, 2 + (x - 0.3) ** 2)
    assert why == "" and xs == pytest.approx(0.3) and ys == pytest.approx(2)
    assert "downwards" in curve_minimum(x, -(x**2))[2]


def test_isoflop_needs_two_budgets():
    N = np.geomspace(1e8, 1e9, 5)
    with pytest.raises(NotEnoughData, match="needs at least 2 budgets"):
        fit_law(Runs.from_arrays(params=N, flops=np.full(5, 1e19), loss=2 + 1 / np.log(N)), "isoflop")


def test_envelope_recovers_a():
    res = fit_law(learning_curves(sizes=np.geomspace(3e7, 3e9, 17)), "envelope")
    assert_allclose(res.params["a"], A_TRUE, atol=0.01)
    assert_allclose(res.params["b"], 1 - A_TRUE, atol=0.01)
    assert res.tokens_formula == "H * C**b"


def test_envelope_bootstrap_and_errors():
    res = fit_law(learning_curves(sizes=np.geomspace(3e7, 3e9, 17)), "envelope", bootstrap=50)
    lo, hi = res.intervals["a"]
    assert lo < A_TRUE < hi
    with pytest.raises(DataError, match="needs learning curves: a run column"):
        fit_law(isoflop_runs(), "envelope")
