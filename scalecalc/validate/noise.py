"""No numpy noise on stderr: the user sees a scalecalc warning in words, or nothing.

Extreme but valid inputs (a CSV value of 1e308, a budget near the float limit) make numpy emit
``RuntimeWarning: overflow encountered ...`` lines; the results they concern are checked for
finiteness where it matters (the planner's and the fit's own warnings say so in words).
"""

from __future__ import annotations

import warnings


def silence_numeric_warnings() -> None:
    """Hide floating-point RuntimeWarnings (overflow, invalid value, divide by zero) for the CLI."""
    warnings.filterwarnings("ignore", category=RuntimeWarning)
