"""`scalecalc calibrate design`: the simulation fits as `calibrate fit`'s engine does, the interval
it predicts covers what an independent simulation of the same sweep gives, a larger budget never
gives a wider interval, the recipe it writes is one `calibrate run` accepts, and bad input is one
`Error:` line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalecalc.calibration.design import Prior, SweepShape, design, simulate
from scalecalc.calibration.design.prior import compute_for_params
from scalecalc.calibration.design.simulate import fit_replicates, noise_draw
from scalecalc.calibration.recipe import parse_recipe
from scalecalc.fit import fit_law
from scalecalc.fit.runs import Runs
from scalecalc.laws import load_law
from tests.helpers import run

PRIOR = Prior.from_law(load_law("besiroglu2024"))
SHAPE = SweepShape(n_budgets=4, budget_ratio=10.0, sizes=7, span=8.0, seeds=1)
SMALL_GRID = {"n_budgets": (3, 4), "budget_ratio": (10.0,), "sizes": (5, 7), "span": (8.0,), "seeds": (1,)}


def test_prior_optimum_is_the_published_closed_form():
    # Besiroglu et al. 2024 (docs/reference.md §3.3): G = (alpha A / (beta B))^(1/(alpha+beta)),
    # N* = G (C/6)^(beta/(alpha+beta)); and the inverse gives back the compute
    a, b = PRIOR.alpha, PRIOR.beta
    G = (a * PRIOR.A / (b * PRIOR.B)) ** (1 / (a + b))
    N, D, L = (x[0] for x in PRIOR.optimum(1e23))
    assert N == pytest.approx(G * (1e23 / 6) ** (b / (a + b)), rel=1e-12)
    assert 6 * N * D == pytest.approx(1e23, rel=1e-12)
    assert L == pytest.approx(float(PRIOR.loss(N, D)), rel=1e-12)
    assert compute_for_params(PRIOR, N) == pytest.approx(1e23, rel=1e-9)


def test_vectorised_fit_gives_the_constants_of_the_fit_engine():
    runs = SHAPE.runs(PRIOR, 1e20)
    y = np.log(PRIOR.loss(runs.N, runs.D)) + 0.01 * noise_draw(5, 3)[:, : runs.N.size]
    theta = fit_replicates(PRIOR, runs.N, runs.D, y)
    for r in range(5):
        res = fit_law(
            Runs.from_arrays(params=runs.N, tokens=runs.D, loss=np.exp(y[r]), flops_convention="6nd", source="test"),
            "chinchilla",
        )
        want = [
            np.log(res.params["A"]),
            np.log(res.params["B"]),
            np.log(res.params["E"]),
            res.params["alpha"],
            res.params["beta"],
        ]
        np.testing.assert_allclose(theta[r], want, rtol=1e-4, atol=1e-6)


def test_predicted_interval_covers_an_independent_simulation_of_the_sweep():
    """Coverage: the 80% interval predicted from one set of replicates holds about 80% of the
    N*, D*, L* that independent replicates of the same sweep give, fitted one by one with the
    fit engine itself (`fit_law`), and it holds the truth."""
    runs = SHAPE.runs(PRIOR, 1e20)
    predicted = simulate(PRIOR, runs.N, runs.D, 1e23, replicates=400, seed=0).interval(0.8)
    truth = [x[0] for x in PRIOR.optimum(1e23)]
    for key, value in zip("NDL", truth):
        assert predicted[key][0] < value < predicted[key][2]
    # independent replicates through the engine's own entry point (40: binomial sd 0.063)
    rng = np.random.default_rng(12345)
    inside = {k: 0 for k in "NDL"}
    n = 40
    for _ in range(n):
        loss = PRIOR.loss(runs.N, runs.D) * np.exp(0.01 * rng.standard_normal(runs.N.size))
        p = fit_law(
            Runs.from_arrays(params=runs.N, tokens=runs.D, loss=loss, flops_convention="6nd", source="test"),
            "chinchilla",
            grid=16,
        ).params
        fitted = Prior("fit", p["E"], p["A"], p["B"], p["alpha"], p["beta"]).optimum(1e23)
        for key, value in zip("NDL", fitted):
            lo, _, hi = predicted[key]
            inside[key] += lo <= value[0] <= hi
    for key in "NDL":
        assert 0.6 <= inside[key] / n <= 0.95, (key, inside)
    # and many independent replicates of the vectorised simulation: coverage close to 80%
    other = simulate(PRIOR, runs.N, runs.D, 1e23, replicates=2000, seed=99)
    for key, values in (("N", other.N), ("D", other.D), ("L", other.L)):
        lo, _, hi = predicted[key]
        assert 0.76 <= np.mean((values >= lo) & (values <= hi)) <= 0.84, key


def test_more_seed_noise_widens_the_interval():
    runs = SHAPE.runs(PRIOR, 1e20)
    widths = []
    for noise in (0.005, 0.01, 0.02):
        lo, _, hi = simulate(PRIOR, runs.N, runs.D, 1e23, replicates=200, seed=0, noise=noise).interval(0.8)["N"]
        widths.append(hi / lo)
    assert widths[0] < widths[1] < widths[2]


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target_exp=st.floats(22.0, 25.0), budget_exp=st.floats(19.0, 21.0))
def test_a_larger_budget_never_gives_a_wider_interval(target_exp, budget_exp):
    result = design(PRIOR, 10**target_exp, 10**budget_exp, replicates=60, grid=SMALL_GRID)
    rows = result.tradeoff
    assert len(rows) >= 3
    budgets = [r["budget_flops"] for r in rows]
    assert budgets == sorted(budgets)
    widths = [r["width_ln_N"] for r in rows]
    assert all(b <= a + 1e-12 for a, b in zip(widths, widths[1:])), widths
    assert all(r["sweep_cost_flops"] <= r["budget_flops"] * (1 + 1e-9) for r in rows)
    best = result.best
    assert best.runs.cost_flops == pytest.approx(10**budget_exp)
    # the sweep's runs cost what it says: sum of 6 N D over runs = the budget
    assert float(np.sum(6 * best.runs.N * best.runs.D)) == pytest.approx(10**budget_exp)


def test_cli_design_json_recipe_and_plot(tmp_path):
    recipe = tmp_path / "d.yaml"
    fig = tmp_path / "tradeoff.png"
    r = run(
        "calibrate",
        "design",
        "--target-compute",
        "1e23",
        "--budget-gpu-hours",
        "50",
        "--gpu",
        "h100",
        "--replicates",
        "40",
        "--recipe",
        str(recipe),
        "--plot",
        str(fig),
        "--json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    best = out["best"]
    assert best["gpu_hours"] == pytest.approx(50, rel=1e-9)
    lo, mid, hi = best["N_star"]
    assert lo < out["prior_optimum"]["N_star"] < hi
    assert out["candidates"] > 10 and out["recipe"] == str(recipe) and fig.stat().st_size > 0
    widths = [t["width_ln_N"] for t in out["tradeoff"]]
    assert widths == sorted(widths, reverse=True)
    # the recipe is one `calibrate run` accepts, with the sweep's runs
    parsed = parse_recipe(yaml.safe_load(recipe.read_text()), where=str(recipe))
    assert len(parsed.runs()) == best["runs"]
    assert {c.budget_kind for c in parsed.runs()} == {"flops"}


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--budget-flops", "1e20"], "exactly one of --target-compute"),
        (["--target-compute", "1e23"], "exactly one of --budget-flops"),
        (["--target-compute", "1e23", "--budget-flops", "1e10"], "cannot pay for any sweep"),
        (["--target-compute", "1e18", "--budget-flops", "1e21"], "not above the calibration runs"),
        (["--target-compute", "1e23", "--budget-flops", "1e20", "--prior", "kaplan2020"], "not of the Chinchilla form"),
        (["--target-compute", "1e23", "--budget-gpu-hours", "5", "--gpu", "h1000"], "--gpu"),
        (["--target-compute", "-1", "--budget-flops", "1e20"], "--target-compute"),
    ],
)
def test_bad_design_input_is_one_error_line_exit_2(tmp_path, args, needle):
    recipe = tmp_path / "d.yaml"
    r = run("calibrate", "design", *args, "--recipe", str(recipe))
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], r.stderr
    assert not recipe.exists()
