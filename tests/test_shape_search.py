"""One shape search for the planner (2% on the 64/128 grid) and calibration recipes (10% on
multiples of the head width): it must return the shape an exhaustive search would."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from scalecalc.calibration.recipe import tiny_shape
from scalecalc.flops import Arch, n_params, search_shape


def _tiny(d: int, L: int) -> Arch:
    return Arch(n_layer=L, d_model=d, n_heads=d // 16, head_dim=16, vocab=256, seq_len=128, mlp="gelu")


def _exhaustive(N, widths, aspect, tolerance, kind="non_embedding"):
    fits = [
        (abs(math.log(d / L / aspect)), d, L)
        for d in widths
        for L in range(1, 200)
        if abs(math.log(n_params(_tiny(d, L), kind) / N)) <= math.log1p(tolerance)
    ]
    return min(fits)[1:] if fits else None


@settings(max_examples=60, deadline=None)
@given(
    log_n=st.floats(min_value=4.0, max_value=7.0),
    aspect=st.sampled_from([8.0, 32.0, 64.0]),
    tolerance=st.sampled_from([0.02, 0.10]),
)
def test_search_shape_is_the_exhaustive_optimum(log_n, aspect, tolerance):
    N, widths = 10.0**log_n, range(16, 1025, 16)
    arch, fits = search_shape(N, "non_embedding", _tiny, widths, aspect_ratio=aspect, tolerance=tolerance)
    best = _exhaustive(N, widths, aspect, tolerance)
    assert fits == (best is not None)
    if best is not None:
        assert abs(math.log(n_params(arch, "non_embedding") / N)) <= math.log1p(tolerance)
        # the same aspect-ratio distance as the exhaustive optimum (ties may pick either shape)
        assert math.isclose(
            abs(math.log(arch.d_model / arch.n_layer / aspect)),
            abs(math.log(best[0] / best[1] / aspect)),
            abs_tol=1e-12,
        )


def test_tiny_shape_is_search_shape_with_the_recipe_settings():
    for N in (3e4, 2e5, 1e6, 6e7):
        s = tiny_shape(N, 32, 16, mlp="gelu")
        arch, _ = search_shape(N, "non_embedding", _tiny, range(16, 1025, 16), aspect_ratio=32, tolerance=0.10)
        assert (s["d_model"], s["n_layer"]) == (arch.d_model, arch.n_layer)
