"""The valid range of every numeric command-line option, in one table.

The CLI passes its parsed options to :func:`check` (``check(**{"--mfu": mfu, ...})``); each
value that is given must be finite and inside its range here, else one ``Error:`` line names
the option and the range. Options parsed as text (budgets such as ``70B``) go through
:mod:`scalecalc.quantities` and :mod:`.numbers` instead.
"""

from __future__ import annotations

from scalecalc.errors import UsageError
from scalecalc.validate import limits
from scalecalc.validate.numbers import check as check_number

# option -> (low, high, low is excluded, what)
RANGES: dict[str, tuple[float, float, bool, str]] = {
    "--mfu": (0.0, 1.0, True, "fraction"),
    "--inference-mfu": (0.0, 1.0, True, "fraction"),
    "--aspect-ratio": (0.0, limits.MAX_ASPECT_RATIO, True, "ratio d_model / n_layer"),
    "--gpus": (1, limits.MAX_GPUS, False, "whole number"),
    "--usd-per-gpu-hour": (0.0, 1e6, True, "price"),
    "--tokens-per-param": (0.0, 1e9, True, "ratio"),
    "--vocab": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--seq-len": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--n-layer": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--d-model": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--heads": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--kv-heads": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--head-dim": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--ffn": (1, limits.MAX_SHAPE_DIM, False, "whole number"),
    "--experts": (1, 1_000_000, False, "whole number"),
    "--top-k": (1, 1_000_000, False, "whole number"),
    "--delta": (0.0, 1e3, True, "threshold"),
    "--seed": (0, 2**32 - 1, False, "seed"),
    "--bootstrap": (0, 100_000, False, "count"),
    "--drop-top-loss": (0, 1e9, False, "count"),
    "--seed-noise": (0.0, 1.0, False, "standard deviation"),
    "--workers": (1, 1024, False, "count"),
}


def check(**values) -> None:
    """Check each given option (``None`` = not given) against :data:`RANGES`."""
    for option, value in values.items():
        if value is None:
            continue
        low, high, open_low, what = RANGES[option]
        check_number(value, option, low, high, low_open=open_low, what=what)


def laws_list(text: str | None, option: str = "--laws") -> list[str] | None:
    """A comma-separated list of law names: None when not given; refused when it names none."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{option}: {text!r} names no law; give comma-separated names, e.g. kaplan2020,besiroglu2024")
    return names
