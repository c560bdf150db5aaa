"""Step 4: the Chinchilla form and the exponent a from IsoFLOP sweeps, through ``scalecalc.fit``.

Runs tagged with a FLOP budget give one (N, D, L) point each, at their final smoothed loss; the fit
engine (``scalecalc.fit.fit_law``, owned by the fit module) does the fitting, so there is one
Chinchilla fitter in the project. N is the total parameter count and C = 6 N D (Hoffmann et al.
2022 §3), the convention the Chinchilla form is usually fitted under.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .curves import Curve

#: Constants of the Chinchilla form (Hoffmann et al. 2022 eq. 2), as the law file names them.
CHINCHILLA = ("E", "A", "B", "alpha", "beta")


def isoflop_runs(curves: Sequence[Curve]):
    """The fit engine's ``Runs`` table of the budget-tagged curves (final points), or None."""
    tagged = [c for c in curves if c.budget is not None]
    if len(tagged) < 3:
        return None
    from scalecalc.fit.runs import Runs

    return Runs.from_arrays(
        params=[c.N_total for c in tagged],
        tokens=[c.tokens[-1] for c in tagged],
        loss=[c.final_loss for c in tagged],
        run=np.array([c.run_id for c in tagged]),
        budget=[c.budget for c in tagged],
        flops_convention="6nd",
        source="calibrate store",
    )


def fit_isoflop(
    curves: Sequence[Curve], *, bootstrap: int = 0, seed: int = 0
) -> tuple[dict[str, float], dict[str, tuple], list[str]]:
    """Fit the Chinchilla form and the IsoFLOP exponent a with ``scalecalc.fit.fit_law``.

    ``bootstrap`` resamples are done by the fit engine (its intervals are reported as is).

    Returns (constants, intervals, warnings); empty constants when there is no IsoFLOP sweep or
    the fit engine cannot fit it (the reason is in the warnings).
    """
    runs = isoflop_runs(curves)
    if runs is None:
        return {}, {}, []
    try:
        from scalecalc.fit import fit_law
    except ImportError as exc:  # the engine is a sibling module; say so rather than fail the estimate
        return {}, {}, [f"IsoFLOP runs present but the fit engine is unavailable ({exc})"]
    from scalecalc.errors import ScalecalcError

    constants, intervals, notes = {}, {}, []
    for form, keep in (("chinchilla", CHINCHILLA), ("isoflop", None)):
        try:
            result = fit_law(runs, form, bootstrap=bootstrap, seed=seed)
        except ScalecalcError as exc:
            notes.append(f"{form} fit of the IsoFLOP runs failed: {exc}")
            continue
        except ImportError as exc:  # a part of the engine missing from this install
            notes.append(f"{form} fit of the IsoFLOP runs unavailable ({exc})")
            continue
        notes.extend(f"{form} fit: {w}" for w in getattr(result, "warnings", ()))
        params = dict(result.params)
        names = keep or [k for k in params if k not in CHINCHILLA]
        for k in names:
            if k in params:
                constants[k] = float(params[k])
                ci = _interval(result, k)
                if ci is not None:
                    intervals[k] = ci
    return constants, intervals, notes


def _interval(result, name: str):
    for attr in ("intervals", "ci", "confidence_intervals"):
        table = getattr(result, attr, None)
        if isinstance(table, dict) and name in table:
            lo, hi = table[name]
            return float(lo), float(hi)
    stderr = getattr(result, "stderr", None)
    if isinstance(stderr, dict) and stderr.get(name) is not None:
        value, se = float(result.params[name]), float(stderr[name])
        return value - 1.96 * se, value + 1.96 * se
    return None
