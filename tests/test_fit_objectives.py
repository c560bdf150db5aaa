"""The robust penalties: psi is the derivative of rho, weight * r is psi, sums not means."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc.fit.objectives import OBJECTIVES, huber, penalty


@settings(max_examples=60, deadline=None)
@given(r=st.floats(-2, 2, allow_nan=False), delta=st.floats(1e-4, 0.5), name=st.sampled_from(OBJECTIVES))
def test_psi_is_the_derivative_and_weight_times_r_is_psi(r, delta, name):
    rho, psi, weight = penalty(name)
    h = 1e-7
    if abs(abs(r) - delta) > 1e-5 and abs(r) > 1e-5:  # away from the kinks
        num = (rho(np.array(r + h), delta) - rho(np.array(r - h), delta)) / (2 * h)
        assert np.isclose(num, psi(np.array(r), delta), rtol=1e-4, atol=1e-9)
        assert np.isclose(weight(np.array(r), delta) * r, psi(np.array(r), delta), rtol=1e-9, atol=1e-15)


def test_huber_values():
    assert huber(np.array(5e-4), 1e-3) == 0.5 * 5e-4**2
    assert huber(np.array(-0.1), 1e-3) == 1e-3 * (0.1 - 0.5e-3)


def test_asymmetric_penalises_under_prediction_more():
    rho, _, _ = penalty("asymmetric")
    assert rho(np.array(-0.01), 1e-3) == 3 * rho(np.array(0.01), 1e-3)
