"""A user's law file, after parsing: its loss must behave like a loss.

The planner minimises L(N, D) along a FLOP budget; a loss that is constant, negative, not finite
or increasing in N or D has no optimum, and solving it used to end in a traceback or a
meaningless plan. :func:`check_law` evaluates the loss on a grid spanning the sizes people plan
with (N from 1e6 to 1e13 parameters, D from 1e8 to 1e15 tokens) and refuses such a law, naming
the file and line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from scalecalc.errors import LawFileError

N_GRID = np.geomspace(1e6, 1e13, 8)
D_GRID = np.geomspace(1e8, 1e15, 8)


def check_law(law, where: Callable[..., str]) -> None:
    """Raise :class:`LawFileError` if ``law.loss`` is not finite, positive and decreasing in N
    and in D on the grid. Laws whose loss needs more than N and D (U, C) are not checked here."""
    if law.loss is None:
        return
    n, d = np.meshgrid(N_GRID, D_GRID, indexing="ij")
    try:
        with np.errstate(all="ignore"):
            loss = np.broadcast_to(np.asarray(law.evaluate("loss", N=n, D=d), dtype=float), n.shape)
    except LawFileError:
        return  # needs U or C: checked when planned
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise LawFileError(f"{where('loss')}: the loss cannot be evaluated ({exc}); check the formula") from None
    at = where("loss")
    if not np.all(np.isfinite(loss)):
        raise LawFileError(
            f"{at}: the loss is not finite for some N in [1e6, 1e13] and D in [1e8, 1e15]; check the constants"
        )
    if np.any(loss <= 0):
        raise LawFileError(f"{at}: the loss is zero or negative for some N and D; a loss in nats/token is positive")
    if np.ptp(loss) == 0:
        raise LawFileError(
            f"{at}: the loss is constant (it does not depend on N or D); there is no compute-optimal allocation"
        )
    if np.any(np.diff(loss, axis=0) > 1e-12 * loss[1:]) or np.any(np.diff(loss, axis=1) > 1e-12 * loss[:, 1:]):
        raise LawFileError(
            f"{at}: the loss increases with N or D; a scaling law's loss falls as the model and data grow"
        )
