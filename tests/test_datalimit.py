"""Data-constrained scaling (Muennighoff et al. 2023) against docs/reference.md §8, brute force, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc import datalimit as dl
from scalecalc.errors import UsageError


def test_constants_match_reference():
    assert dl.A == pytest.approx(520.8, abs=0.05)
    assert dl.B == pytest.approx(1487.7, abs=0.05)
    assert dl.E == pytest.approx(1.869, abs=5e-4)


def test_effective_data_saturates_at_one_plus_rd_star():
    U = 1e11
    assert dl.effective_data(1e40, U) == pytest.approx(16.387756 * U, rel=1e-12)
    assert dl.effective_data(1e40, U) / U == pytest.approx(16.39, abs=5e-3)  # docs/reference.md §8


def test_four_epochs_and_no_repetition():
    U = 3e10
    assert dl.effective_data(4 * U, U) / U == pytest.approx(3.73, abs=5e-3)  # docs/reference.md §8
    D = np.array([1e9, 1e10, U])
    np.testing.assert_allclose(dl.effective_data(D, U), D, rtol=1e-15)  # no repeats: D' = D
    assert dl.effective_params(1e9, 2e9) == 1e9


def test_unlimited_data_recovers_the_alpha_equals_beta_closed_form():
    C = np.geomspace(1e18, 1e25, 8)
    plan = dl.optimal(C, 1e30)
    np.testing.assert_allclose(plan.tokens / plan.params, 19.6, rtol=3e-3)  # docs/reference.md §8
    np.testing.assert_allclose(plan.params / plan.tokens, 0.05099, rtol=3e-3)  # G^2
    np.testing.assert_allclose(plan.params, plan.params_unconstrained, rtol=1e-6)
    np.testing.assert_allclose(plan.loss, plan.loss_unconstrained, rtol=1e-12)
    np.testing.assert_allclose(6 * plan.params * plan.tokens, C, rtol=1e-12)


def _brute_force(C, U, points=200_000):
    # Dense grid over +-6 decades around the unconstrained optimum; returns the grid's argmin set
    # (every N whose loss is within 1e-10 of the minimum) and the minimum loss.
    N0, _ = dl.unconstrained_optimum(C)
    N = N0 * np.geomspace(1e-6, 1e6, points)
    L = dl.loss(N, C / (6 * N), U)
    near = N[L <= L.min() * (1 + 1e-10)]
    return near.min(), near.max(), L.min()


@pytest.mark.parametrize("C, U", [(1e21, 1e12), (1e22, 1e10), (1e23, 1e11), (1e24, 1e11), (3e20, 1e8), (1e24, 1e9)])
def test_matches_brute_force_grid(C, U):
    plan = dl.optimal(C, U)
    n_lo, n_hi, L = _brute_force(C, U)
    assert plan.loss <= L + 1e-12
    assert plan.loss == pytest.approx(L, rel=1e-9)
    step = 12 * np.log(10) / 200_000  # grid spacing in log N
    assert n_lo * np.exp(-step) <= plan.params <= n_hi * np.exp(step)
    if plan.epochs > 100:
        # Hundreds of epochs: N' and D' have saturated, L(N) is flat and N barely identifiable;
        # the plan must say so.
        assert "nearly worthless" in plan.warnings[0][0]
    else:
        assert n_hi / n_lo < 1.01  # a well-posed case: N itself is pinned down


def test_loss_limit_is_the_saturated_loss():
    U = 1e9
    limit = dl.optimal(1e22, U).loss_limit
    N_sat = (1 + dl.RN_STAR) * dl.params_for_data(U)
    assert limit == pytest.approx(dl.E + dl.A / N_sat**dl.alpha + dl.B / ((1 + dl.RD_STAR) * U) ** dl.beta, rel=1e-12)
    assert dl.loss(1e15, 1e30, U) == pytest.approx(limit, rel=1e-9)


def test_repetition_warnings():
    plan = dl.optimal([1e20, 1e23, 1e25], 1e11)
    epochs = plan.epochs
    assert epochs[0] < 4 < epochs[1] < 16 < epochs[2]
    assert plan.warnings[0] == ()
    assert "diminishing returns" in plan.warnings[1][0]
    assert "nearly worthless" in plan.warnings[2][0]
    saturated = dl.optimal(1e26, 1e9)
    assert "more compute will not lower it" in saturated.warnings[0][1]
    np.testing.assert_allclose(plan.effective_tokens, dl.effective_data(plan.tokens, 1e11))


@settings(max_examples=40, deadline=None)
@given(logC=st.floats(18, 26), logU=st.floats(8, 13))
def test_monotone_in_compute_and_unique_data(logC, logU):
    C, U = 10.0**logC, 10.0**logU
    plan = dl.optimal([C, 2 * C], U)
    more_data = dl.optimal(C, 2 * U)
    assert plan.loss[1] <= plan.loss[0] + 1e-12  # more compute never hurts...
    if plan.epochs[1] < 16:
        assert plan.loss[1] < plan.loss[0]  # ...and helps until repetition saturates
    assert np.all(plan.loss >= plan.loss_limit - 1e-12)  # no budget beats U's limit
    assert more_data.loss <= plan.loss[0] + 1e-12  # more unique data never hurts
    assert plan.loss[0] >= plan.loss_unconstrained[0] - 1e-12  # scarcity never helps
    assert plan.effective_tokens[0] <= plan.tokens[0] * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(logU=st.floats(6, 13), r1=st.floats(0, 100), r2=st.floats(0, 100))
def test_effective_data_is_increasing_and_bounded(logU, r1, r2):
    U = 10.0**logU
    lo, hi = sorted([r1, r2])
    d_lo, d_hi = dl.effective_data(U * (1 + lo), U), dl.effective_data(U * (1 + hi), U)
    assert d_lo <= d_hi * (1 + 1e-12)
    assert d_hi <= (1 + dl.RD_STAR) * U * (1 + 1e-12)


def test_vectorised_and_shaped():
    C = np.geomspace(1e19, 1e25, 20).reshape(4, 5)
    plan = dl.optimal(C, 1e11)
    assert plan.params.shape == (4, 5) and len(plan.warnings) == 20


def test_errors():
    with pytest.raises(UsageError, match="--unique-tokens"):
        dl.optimal(1e22, 0)
    with pytest.raises(UsageError, match="--compute"):
        dl.optimal(np.nan, 1e10)
