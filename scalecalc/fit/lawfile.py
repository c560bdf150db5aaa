"""FitResult -> law-file mapping; names, provenance and the atomic write are :mod:`scalecalc.laws.lawfile`'s.

Formulas use only the law formula language (numbers, + - * / **, names): the chinchilla loss
``E + A / N**alpha + B / D**beta``, Kaplan's ``(Nc / N)**alpha_N`` and eq. 1.5, and for the
allocation forms ``G * C**a`` / ``H * C**b``. Up to 1000 bootstrap replicates of the constants
are stored as columns so that ``scalecalc plan --law`` can propagate them into intervals.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from scalecalc.laws.lawfile import check_name, provenance, write_law

__all__ = ["law_dict", "check_name", "write_law", "MAX_REPLICATES"]

MAX_REPLICATES = 1000


def law_dict(result, name: str = "fitted", source: str | None = None) -> dict:
    """The law-file mapping for a :class:`~scalecalc.fit.FitResult`."""
    check_name(name)
    law: dict = {
        "name": name,
        "title": f"{result.form} fit of {Path(result.source).name or 'runs'} ({result.n_points} "
        f"{'budgets' if result.form == 'isoflop' else 'points'})",
        "source": source or f"scalecalc fit --form {result.form} {result.source}",
        "form": result.form,
    }
    for key, formula in (
        ("loss", result.loss_formula),
        ("params", result.params_formula),
        ("tokens", result.tokens_formula),
    ):
        if formula:
            law[key] = formula
    law["constants"] = {k: _num(v) for k, v in result.params.items()}
    if result.stderr:
        law["stderr"] = {k: _num(v) for k, v in result.stderr.items()}
    boot = _bootstrap_columns(result.bootstrap)
    if boot:
        law["bootstrap"] = boot
    law["flops"] = result.flops_convention
    from scalecalc.flops import get_convention

    law["params_kind"] = get_convention(result.flops_convention).n_kind
    law["fitted_range"] = {k: [_num(lo), _num(hi)] for k, (lo, hi) in result.fitted_range.items()}
    law["warnings"] = list(result.warnings)
    law["provenance"] = _provenance(result)
    return law


def _num(v) -> float:
    return float(f"{float(v):.10g}")


def _bootstrap_columns(samples: dict) -> dict:
    """Columns of at most 1000 replicates; replicates with a non-finite constant are dropped."""
    if not samples:
        return {}
    table = np.column_stack([np.asarray(v, float) for v in samples.values()])
    table = table[np.all(np.isfinite(table), axis=1)][:MAX_REPLICATES]
    return {k: [float(f"{x:.8g}") for x in table[:, j]] for j, k in enumerate(samples)}


def _provenance(result) -> dict:
    prov = provenance(
        "scalecalc fit",
        data=result.source,
        data_sha256=_sha256(result.source),
        n_points=int(result.n_points),
        objective=result.objective_name,
        objective_value=_num(result.objective),
        residual_rms=_num(result.residual_rms),
        method=result.method,
        bootstrap_replicates=len(next(iter(result.bootstrap.values()), [])),
        delta=None if result.delta is None else float(result.delta),
    )
    prov.update({k: v for k, v in result.details.items() if k in ("seed", "interp", "seed_noise")})
    if result.holdout:  # how well the law extrapolated when fitted without the largest runs
        h = result.holdout
        prov["holdout"] = {
            "selection": h["selection"],
            "n_held_out": int(h["n_held_out"]),
            "mean_abs_rel_error": _num(h["mean_abs_rel_error"]),
        }
        if "covered" in h:
            prov["holdout"]["covered"] = int(h["covered"])
    return prov


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None
