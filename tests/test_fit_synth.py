"""Synthetic runs from known constants plus seeded noise, shared by the fit tests.

The generators are imported by the other test_fit_* files; the tests at the end check the
generators themselves (a wrong generator would make every recovery test meaningless).
"""

from __future__ import annotations

import numpy as np

from scalecalc.fit import Runs

# Hoffmann et al. 2022 constants from the TeX source (docs/reference.md §2.2).
HOFFMANN = {"E": 1.69342, "A": 406.401, "B": 410.723, "alpha": 0.33917084, "beta": 0.2849083}


def chinchilla_loss(N, D, c=HOFFMANN):
    return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]


def chinchilla_runs(seed=0, noise=0.005, sizes=8, ratios=6):
    """A ladder: `sizes` model sizes 1e7-1e10, each at `ratios` D/N from 2 to 200."""
    rng = np.random.default_rng(seed)
    N = np.repeat(np.geomspace(1e7, 1e10, sizes), ratios)
    D = N * np.tile(np.geomspace(2, 200, ratios), sizes)
    L = chinchilla_loss(N, D) * np.exp(rng.normal(0, noise, N.size))
    return Runs.from_arrays(params=N, tokens=D, loss=L, source="synthetic")


def isoflop_runs(seed=0, noise=0.002, budgets=np.geomspace(1e18, 1e22, 9), per=9, c=HOFFMANN):
    """IsoFLOP profiles of the Chinchilla law: `per` sizes from N*/8 to 8 N* at each budget."""
    rng = np.random.default_rng(seed)
    al, be = c["alpha"], c["beta"]
    G = (al * c["A"] / (be * c["B"])) ** (1 / (al + be))
    N, D, C = [], [], []
    for budget in budgets:
        n_opt = G * (budget / 6) ** (be / (al + be))
        for f in np.geomspace(1 / 8, 8, per):
            N.append(n_opt * f)
            D.append(budget / (6 * n_opt * f))
            C.append(budget)
    N, D, C = map(np.asarray, (N, D, C))
    L = chinchilla_loss(N, D, c) * np.exp(rng.normal(0, noise, N.size))
    return Runs.from_arrays(params=N, tokens=D, loss=L, budget=C, source="synthetic")


def learning_curves(seed=0, noise=0.001, sizes=np.geomspace(3e7, 3e9, 9), steps=60, c=HOFFMANN):
    """Learning curves to 300 tokens/param, loss at each point from the Chinchilla law."""
    rng = np.random.default_rng(seed)
    rows = {"run": [], "params": [], "tokens": [], "loss": []}
    for i, n in enumerate(sizes):
        D = np.geomspace(n * 0.5, n * 300, steps)
        L = chinchilla_loss(n, D, c) * np.exp(rng.normal(0, noise, D.size))
        rows["run"] += [f"r{i}"] * steps
        rows["params"] += [n] * steps
        rows["tokens"] += list(D)
        rows["loss"] += list(L)
    return Runs.from_arrays(
        params=rows["params"], tokens=rows["tokens"], loss=rows["loss"], run=rows["run"], source="synthetic"
    )


def test_generators_are_seeded_and_centred():
    a, b = chinchilla_runs(seed=4), chinchilla_runs(seed=4)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.loss, chinchilla_runs(seed=5).loss)
    iso = isoflop_runs(noise=0.0)
    for C in np.unique(iso.budget):
        at = iso.budget == C
        np.testing.assert_allclose(6 * iso.params[at] * iso.tokens[at], C, rtol=1e-12)
        assert np.argmin(iso.loss[at]) == 4  # the middle of 9 sizes from N*/8 to 8 N*
    curves = learning_curves()
    assert len(np.unique(curves.run)) == 9
