"""Numbers and ranges typed as options: finite, inside a documented range, of the right type.

typer's ``min=``/``max=`` let NaN through (every comparison with NaN is false) and have no upper
bound for most options; :func:`check` refuses both, naming the option and its valid range.
"""

from __future__ import annotations

import math

from scalecalc.errors import UsageError
from scalecalc.validate import limits


def check(value, option: str, low: float, high: float, *, low_open: bool = False, what: str = "") -> None:
    """Raise :class:`UsageError` unless ``value`` (when given) is finite and in [low, high]
    (``low_open``: (low, high])."""
    if value is None:
        return
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{option}: {value!r} is not a number") from None
    below = x <= low if low_open else x < low
    if not math.isfinite(x) or below or x > high:
        bracket = "(" if low_open else "["
        raise UsageError(
            f"{option}: {value!r} is out of range; give a {what or 'number'} in {bracket}{low:g}, {high:g}]"
        )


def check_options(**checks) -> None:
    """``check_options(**{"--mfu": (mfu, 0, 1, True)})``: :func:`check` for several options."""
    for option, (value, low, high, *rest) in checks.items():
        check(value, option, low, high, low_open=bool(rest and rest[0]))


def check_budget_count(count: int, option: str) -> None:
    """Refuse more than :data:`~.limits.MAX_BUDGETS` values in one call, before any is built."""
    if count > limits.MAX_BUDGETS:
        raise UsageError(
            f"{option}: {count:,} values are more than the limit of {limits.MAX_BUDGETS:,} budgets per call "
            "(MAX_BUDGETS); split the range into several calls"
        )
