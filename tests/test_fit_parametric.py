"""Approach 3 and Kaplan forms: Jacobians, synthetic recovery, agreement with scipy per start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_fit_synth import HOFFMANN, chinchilla_runs

from scalecalc.fit import Runs, fit_law, models, read_runs
from scalecalc.fit.optim import batched_lm, polish
from scalecalc.fit.parametric import chinchilla_allocation

EPOCH = Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extracted.csv"


@pytest.mark.parametrize(
    "model",
    [models.Chinchilla(), models.KaplanPower("N"), models.KaplanPower("D", irreducible=True), models.KaplanND()],
)
def test_jacobian_matches_finite_differences(model):
    rng = np.random.default_rng(0)
    X = np.stack([np.log(np.geomspace(1e7, 1e10, 7)), np.log(np.geomspace(1e9, 1e12, 7))])
    theta = model.starts("coarse")[rng.choice(len(model.starts("coarse")), 4)] + 0.01
    m, J = model.predict(theta, X)
    h = 1e-6
    for p in range(theta.shape[1]):
        up, dn = theta.copy(), theta.copy()
        up[:, p] += h
        dn[:, p] -= h
        num = (model.predict(up, X, jac=False)[0] - model.predict(dn, X, jac=False)[0]) / (2 * h)
        assert_allclose(J[..., p], num, rtol=1e-5, atol=1e-7)


def test_fast_normal_equations_match_the_jacobian():
    model = models.Chinchilla()
    X = np.stack([np.log(np.geomspace(1e7, 1e10, 9)), np.log(np.geomspace(1e9, 1e12, 9))])
    theta = model.starts("coarse")[:6] + 0.1
    rng = np.random.default_rng(1)
    gw, ww = rng.normal(size=(6, 9)), rng.uniform(size=(6, 9))
    g, H = model.normal_equations(model.evaluate(theta, X), X, gw, ww)
    J = model.predict(theta, X)[1]
    assert_allclose(g, np.einsum("snp,sn->sp", J, gw), rtol=1e-10, atol=1e-12)
    assert_allclose(H, np.einsum("snp,sn,snq->spq", J, ww, J), rtol=1e-10, atol=1e-12)


def test_grid_is_hoffmanns_4500():
    starts = models.Chinchilla().starts()
    assert starts.shape == (4500, 5)
    assert sorted(set(starts[:, 0])) == [0, 5, 10, 15, 20, 25]  # a = ln A
    assert sorted(set(starts[:, 2])) == [-1, -0.5, 0, 0.5, 1]  # e = ln E
    assert sorted(set(starts[:, 3])) == [0, 0.5, 1, 1.5, 2]  # alpha


def test_noiseless_chinchilla_is_recovered_exactly():
    res = fit_law(chinchilla_runs(noise=0.0), "chinchilla", grid="coarse")
    assert res.success
    assert_allclose([res.params[k] for k in HOFFMANN], list(HOFFMANN.values()), rtol=1e-5)
    assert 1_000 < res.nfev < 100_000
    assert res.objective < 1e-12


def test_noisy_chinchilla_recovery():
    # 48 points, 0.5% log-normal noise: exponents to 5%, E to 3%, prefactors to 25%.
    res = fit_law(chinchilla_runs(seed=3, noise=0.005), "chinchilla", grid="coarse")
    assert res.success
    assert_allclose([res.params["alpha"], res.params["beta"]], [HOFFMANN["alpha"], HOFFMANN["beta"]], rtol=0.05)
    assert_allclose(res.params["E"], HOFFMANN["E"], rtol=0.03)
    assert_allclose([res.params["A"], res.params["B"]], [HOFFMANN["A"], HOFFMANN["B"]], rtol=0.25)
    assert res.residual_rms == pytest.approx(0.005, rel=0.3)


def test_mse_and_asymmetric_objectives_run():
    runs = chinchilla_runs(seed=1, noise=0.003)
    for obj in ("mse", "asymmetric"):
        res = fit_law(runs, "chinchilla", grid="coarse", objective=obj)
        assert res.success
        assert_allclose(res.params["alpha"], HOFFMANN["alpha"], rtol=0.06)


def test_allocation_matches_reference_closed_form():
    # docs/reference.md §2.2 [V]: TeX constants give N_opt(5.76e23) = 4.036e10, D/N = 58.9.
    c = {"E": 1.69342, "A": np.exp(6.0073404), "B": np.exp(6.0179186), "alpha": 0.33917084, "beta": 0.2849083}
    N, D, _ = chinchilla_allocation({k: np.atleast_1d(v) for k, v in c.items()}, [5.76e23])
    assert N[0, 0] == pytest.approx(4.036e10, rel=1e-3)
    assert D[0, 0] / N[0, 0] == pytest.approx(58.9, rel=2e-3)


def test_batched_race_matches_scipy_per_start_on_epoch_subset():
    """Best of 40 grid starts: the batched optimiser and a scipy L-BFGS-B loop agree."""
    runs = read_runs(EPOCH, drop_top_loss=5)
    model = models.Chinchilla()
    X = np.stack([np.log(runs.params), np.log(runs.tokens)])
    y, cnt = np.log(runs.loss), np.ones(len(runs))
    starts = model.starts(40)
    loop = min((polish(model, s, X, y, cnt) for s in starts), key=lambda r: r[1])
    res = fit_law(runs, "chinchilla", grid=40)
    assert res.objective <= loop[1] * (1 + 1e-9)
    assert_allclose(res.details["theta"], loop[0], rtol=1e-5, atol=1e-6)


def test_kaplan_power_law_recovery():
    rng = np.random.default_rng(4)
    N = np.geomspace(1e6, 1e10, 30)
    L = (8.8e13 / N) ** 0.076 * np.exp(rng.normal(0, 0.002, N.size))
    res = fit_law(Runs.from_arrays(params=N, tokens=20 * N, loss=L), "kaplan")
    assert res.success and 20 < res.nfev < 50_000
    assert_allclose(res.params["alpha_N"], 0.076, rtol=0.03)
    assert_allclose(np.log(res.params["Nc"]), np.log(8.8e13), rtol=0.01)
    assert res.loss_formula == "(Nc / N)**alpha_N"


def test_kaplan_irreducible_and_nd_recovery():
    rng = np.random.default_rng(5)
    N = np.geomspace(1e6, 1e10, 40)
    L = (1.5 + (8.8e13 / N) ** 0.2) * np.exp(rng.normal(0, 0.002, N.size))
    res = fit_law(Runs.from_arrays(params=N, tokens=20 * N, loss=L), "kaplan", irreducible=True)
    assert_allclose([res.params["E"], res.params["alpha_N"]], [1.5, 0.2], rtol=0.05)
    Nn = np.repeat(np.geomspace(1e6, 1e9, 8), 6)
    Dd = np.tile(np.geomspace(1e8, 1e11, 6), 8)
    L = ((8.8e13 / Nn) ** (0.076 / 0.095) + 5.4e13 / Dd) ** 0.095  # Kaplan eq. 1.5, Table 2
    res = fit_law(Runs.from_arrays(params=Nn, tokens=Dd, loss=L), "kaplan", kaplan_vars="ND")
    assert res.success
    assert_allclose(
        [res.params[k] for k in ("Nc", "Dc", "alpha_N", "alpha_D")], [8.8e13, 5.4e13, 0.076, 0.095], rtol=1e-4
    )


def test_diagnostics_warn_on_small_short_data():
    N = np.geomspace(1e8, 5e8, 8)
    runs = Runs.from_arrays(params=N, tokens=N * 20, loss=2 + 300 / N**0.3 + 400 / (20 * N) ** 0.3)
    res = fit_law(runs, "chinchilla", grid="coarse")
    text = " | ".join(res.warnings)
    assert "only 8 points for 5 free parameters" in text
    assert "N spans only 0.70 decades" in text
    assert "D spans only 0.70 decades" in text


def test_outliers_are_listed():
    runs = chinchilla_runs(seed=2, noise=0.002)
    loss = runs.loss.copy()
    loss[[3, 17]] *= 1.2
    bad = Runs.from_arrays(params=runs.params, tokens=runs.tokens, loss=loss)
    res = fit_law(bad, "chinchilla", grid="coarse")
    assert any("2 outliers beyond 4 robust sigma" in w and "row 4, row 18" in w for w in res.warnings)


def test_race_finds_the_same_best_as_running_every_start_to_convergence():
    """Successive halving (used above 300 starts) loses nothing on the Epoch data: every one of
    400 grid starts run to convergence in double precision gives the same best objective."""
    runs = read_runs(EPOCH, drop_top_loss=5)
    model = models.Chinchilla()
    X = np.stack([np.log(runs.params), np.log(runs.tokens)])
    y, cnt = np.log(runs.loss), np.ones(len(runs))
    full = batched_lm(model, model.starts(400), X, y, cnt, max_iter=400)
    res = fit_law(runs, "chinchilla", grid=400)
    assert "400-start grid" in res.method
    assert res.objective <= full.f.min() * (1 + 1e-9)
    assert res.objective == pytest.approx(1.0183e-3, rel=1e-4)  # docs/reference.md §3.2 [V]


def test_core_fit_modules_do_not_import_typer_or_rich():
    import subprocess
    import sys

    code = (
        "import sys, scalecalc.fit, scalecalc.fit.parametric, scalecalc.fit.isoflop, "
        "scalecalc.fit.envelope, scalecalc.fit.lawfile, scalecalc.fit.plot; "
        "bad = [m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_cli_module_imports_scipy_lazily():
    import subprocess
    import sys

    code = (
        "import sys, scalecalc.cli.fit; "
        "bad = [m for m in ('scipy', 'scalecalc.fit', 'matplotlib') if m in sys.modules]; "
        "assert not bad, bad"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_numeric_allocation_matches_the_closed_form_and_serves_kaplan_nd():
    c = {k: np.atleast_1d(v) for k, v in HOFFMANN.items()}
    theta = np.array(
        [[np.log(HOFFMANN["A"]), np.log(HOFFMANN["B"]), np.log(HOFFMANN["E"]), HOFFMANN["alpha"], HOFFMANN["beta"]]]
    )
    from scalecalc.fit.parametric import numeric_allocation

    exact = chinchilla_allocation(c, [1e19, 1e23, 1e26])
    approx = numeric_allocation(models.Chinchilla(), theta, [1e19, 1e23, 1e26])
    for e, a in zip(exact, approx):
        assert_allclose(a, e, rtol=1e-4)
    Nn = np.repeat(np.geomspace(1e6, 1e9, 8), 6)
    Dd = np.tile(np.geomspace(1e8, 1e11, 6), 8)
    L = ((8.8e13 / Nn) ** (0.076 / 0.095) + 5.4e13 / Dd) ** 0.095
    res = fit_law(Runs.from_arrays(params=Nn, tokens=Dd, loss=L), "kaplan", kaplan_vars="ND", budgets=[1e21])
    row = res.derived[0]
    assert row["params"] * row["tokens"] * 6 == pytest.approx(1e21, rel=1e-9)
    assert 0 < res.implied["a"] < 1 and res.implied["a"] + res.implied["b"] == pytest.approx(1)
