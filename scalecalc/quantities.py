"""Parsing and printing of the numbers users type and read.

Accepted inputs: plain floats (``1e24``, ``3.8e25``), counts with a suffix (``175M``, ``70B``,
``1.4T``; K=1e3, M=1e6, B=G=1e9, T=1e12, P=1e15, E=1e18), and log ranges ``START:STOP:COUNT``
(``1e20:1e26:13`` -> 13 log-spaced values, both ends included).
PF-day = 1e15 * 86400 = 8.64e19 FLOPs (Kaplan et al. 2020, §1.3).
"""

from __future__ import annotations

import math
import re

import numpy as np

from scalecalc.errors import UsageError
from scalecalc.validate.limits import MAX_BUDGETS
from scalecalc.validate.numbers import check_budget_count

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([kmbgtpe]?)\s*$", re.I)


def parse_number(text: str, option: str, *, positive: bool = True, integer: bool = False) -> float:
    """Parse one number such as ``1e24``, ``70B`` or ``1.4T``.

    Raises :class:`UsageError` naming ``option`` for unparsable, NaN, infinite, and (when
    ``positive``) zero or negative values.
    """
    try:  # fast path for plain numbers (100,000 budgets piped on stdin)
        value = float(text)
    except (TypeError, ValueError):
        value = None
    if value is None or "n" in str(text).lower():  # float() also reads nan/inf: use the grammar
        match = _NUMBER.match(str(text))
        if not match:
            raise UsageError(f"{option}: cannot read {text!r} as a number; use e.g. 1e24, 3.8e25, 70B, 1.4T or 175M")
        value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if not math.isfinite(value):
        raise UsageError(f"{option}: {text!r} is not finite; give a finite number")
    if positive and value <= 0:
        raise UsageError(f"{option}: {text!r} must be greater than zero")
    if integer and value != int(value):
        raise UsageError(f"{option}: {text!r} must be a whole number")
    return value


def parse_values(texts: list[str], option: str, stdin=None) -> np.ndarray:
    """Parse a repeated option: each item a number, a log range ``a:b:n``, or ``-`` for stdin.

    Returns a 1-D float array in the order given.
    """
    values: list[float] = []
    for text in texts:
        if text.strip() == "-":
            values.extend(_read_stream(stdin, option))
        elif ":" in text:
            values.extend(parse_range(text, option))
        else:
            values.append(parse_number(text, option))
        check_budget_count(len(values), option)
    return np.asarray(values, dtype=float)


def parse_range(text: str, option: str) -> list[float]:
    """``START:STOP:COUNT`` -> COUNT log-spaced values from START to STOP inclusive."""
    parts = text.split(":")
    if len(parts) != 3:
        raise UsageError(f"{option}: range {text!r} must be START:STOP:COUNT, e.g. 1e20:1e26:13")
    start, stop = (parse_number(p, option) for p in parts[:2])
    count = parse_number(parts[2], option, integer=True)
    if stop < start:
        raise UsageError(f"{option}: range {text!r} must have START <= STOP")
    check_budget_count(int(count), option)
    return list(np.geomspace(start, stop, int(count)))


def _read_stream(stream, option: str) -> list[float]:
    import sys

    stream = stream if stream is not None else sys.stdin
    out = []
    for lineno, line in enumerate(stream, 1):
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                out.append(parse_number(line, option))
                if len(out) > MAX_BUDGETS:
                    check_budget_count(len(out), option)
            except UsageError as exc:
                raise UsageError(f"{exc} (stdin line {lineno})") from None
    if not out:
        raise UsageError(f"{option}: no numbers on stdin; pipe one budget per line")
    return out


def format_count(value: float, digits: int = 3) -> str:
    """Human form of a count: 7.0e10 -> '70.0B', 1.4e12 -> '1.40T', 512 -> '512'."""
    if value is None or not math.isfinite(value):
        return "-"
    scales = (("E", 1e18), ("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3), ("", 1.0))
    for i, (suffix, scale) in enumerate(scales):
        if abs(value) >= scale or scale == 1.0:
            text = f"{value / scale:.{digits}g}"
            if "e" in text and i > 0:  # 999.95K rounds to 1e+03K: print it as 1M
                suffix, scale = scales[i - 1]
                text = f"{value / scale:.{digits}g}"
            return f"{text}{suffix}"
    return f"{value:.{digits}g}"


def format_sci(value: float, digits: int = 3) -> str:
    """Scientific form used for FLOPs: 5.76e+23 -> '5.76e23'."""
    if value is None or not math.isfinite(value):
        return "-"
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"
