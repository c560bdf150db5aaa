"""Laws side by side: the same budget planned under each law, and the spread between them.

Porian et al. 2024 trace the Kaplan/Chinchilla disagreement to head FLOPs, warmup, and batch-size
and optimiser tuning; :func:`correction_path` shows each step of their correction at a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scalecalc.errors import ScalecalcError, UnknownName
from scalecalc.laws import builtin_names, load_law
from scalecalc.planner import Query, plan

SUMMARY_BUDGET = 1e24  # FLOPs at which `scalecalc laws` reports D/N and the local exponent
UNCONSTRAINED_U = 1e30  # "unlimited" unique tokens for summarising data-constrained laws


@dataclass(frozen=True)
class Comparison:
    """Rows of (budget, law) plans and, per budget, max/min ratios across laws."""

    budgets: list[float]
    rows: list[dict]
    spreads: list[dict]
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON document (README "Output formats"): rows, notes (laws skipped), spreads."""
        return {"rows": self.rows, "notes": list(self.skipped), "spreads": self.spreads}


def compare(budgets: np.ndarray, laws: list[str] | None = None, *, unique_tokens: float | None = None) -> Comparison:
    """Plan every budget under each law (default: every built-in law)."""
    names = laws or builtin_names()
    rows, skipped = [], []
    for name in names:
        law = load_law(name, "--laws")
        if "U" in law.requires and unique_tokens is None:
            skipped.append(f"{law.name} skipped: it needs --unique-tokens")
            continue
        result = plan(law, Query("compute", budgets, unique_tokens=unique_tokens, intervals=False, blocks=None))
        rows.extend(result.rows())
    spreads = [_spread(b, [r for r in rows if r["compute"] == b]) for b in budgets.tolist()]
    return Comparison(budgets=budgets.tolist(), rows=rows, spreads=spreads, skipped=skipped)


def _spread(budget: float, rows: list[dict]) -> dict:
    out: dict = {"compute": budget, "laws": len(rows)}
    for key in ("params", "tokens", "tokens_per_param", "loss"):
        vals = [(r[key], r["law"]) for r in rows if r.get(key) is not None]
        if len(vals) >= 1:
            lo, hi = min(vals), max(vals)
            out[f"{key}_ratio"] = hi[0] / lo[0]
            out[f"{key}_min_law"], out[f"{key}_max_law"] = lo[1], hi[1]
    return out


def correction_path(name: str, budgets: np.ndarray) -> dict:
    """Porian et al. 2024's correction path: each step's exponent a and N* at the budgets.

    N*(C) = N*(C_ref) (C / C_ref)^a through each step's published N* at C_ref = 5.88e23 FLOPs
    (docs/reference.md §5.2, RefinedWeb).
    """
    if name.lower() != "porian":
        raise UnknownName("correction path", name, ["porian"], "--path")
    law = load_law("porian2024")
    ref = float(law.extra["correction_budget"])
    rows = []
    for c in budgets.tolist():
        for step in law.extra["correction_path"]:
            rows.append(
                {
                    "compute": c,
                    "step": step["step"],
                    "a": float(step["a"]),
                    "ci": [float(x) for x in step["ci"]],
                    "params": float(step["params_at"]) * (c / ref) ** float(step["a"]),
                }
            )
    return {
        "title": "Porian et al. 2024 correction path (RefinedWeb): Kaplan's a = 0.73-0.88 -> Chinchilla's 0.5",
        "source": f"Source: {law.source}",
        "rows": rows,
    }


def law_summaries() -> list[dict]:
    """One row per built-in law for `scalecalc laws`."""
    return [_summary(load_law(name)) for name in builtin_names()]


def law_details(name: str) -> dict:
    """One law in full for `scalecalc laws NAME`: the summary plus title, constants, warnings."""
    law = load_law(name, "NAME")
    out = _summary(law)
    out.update(
        {
            "title": law.title,
            "params_kind": law.params_kind,
            "constants": {k: float(v) for k, v in law.constants.items()},
            "bootstrap_replicates": int(max((len(v) for v in law.bootstrap.values()), default=0)),
            "warnings": list(law.warnings),
        }
    )
    return out


def _summary(law) -> dict:
    u = UNCONSTRAINED_U if "U" in law.requires else None
    c = np.array([SUMMARY_BUDGET / 1.01, SUMMARY_BUDGET, SUMMARY_BUDGET * 1.01])
    try:
        r = plan(law, Query("compute", c, unique_tokens=u, intervals=False, blocks=None))
        a = float(np.log(r.params[2] / r.params[0]) / np.log(c[2] / c[0]))
        ratio = float(r.tokens_per_param[1])
    except ScalecalcError:
        a = ratio = float("nan")
    form = f"{law.form}: " + (
        f"L = {law.loss.text}"
        if law.loss is not None
        else f"N* = {law.params.text}"
        if law.params is not None
        else f"D* = {law.tokens.text}"
    )
    return {
        "name": law.name,
        "form": form,
        "exponent_a": a,
        "tokens_per_param_1e24": ratio,
        "flops_convention": law.flops,
        "source": law.source,
        "fitted_compute": list(law.fitted_range.get("compute", (float("nan"), float("nan")))),
        "fitted_range": {k: list(v) for k, v in law.fitted_range.items()},
    }
