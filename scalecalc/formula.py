"""``scalecalc formula``: a law shown symbolically, with its compute-optimal allocation derived.

Imports sympy (through :mod:`scalecalc.symbolic`); nothing on the path of ``plan`` imports this.
"""

from __future__ import annotations

from dataclasses import asdict

from scalecalc.laws import Law
from scalecalc.planner import LINEAR_FLOPS

# C = k N D (docs/reference.md §9), shown as 6 rather than 6.0
_LINEAR = {name: int(k) if k == int(k) else k for name, k in LINEAR_FLOPS.items()}


def describe(law: Law, *, latex: bool = False) -> dict:
    """The law's formulas (symbolic and with numbers), its FLOP constraint and derived optimum."""
    from scalecalc.symbolic import derive_optimum, render

    out: dict = {
        "law": law.name,
        "title": law.title,
        "source": law.source,
        "flops_convention": law.flops,
        "constants": dict(law.constants),
        "definitions": {},
        "formulas": {},
        "optimum": None,
    }
    for name, expr in law.define:
        out["definitions"][name] = render(expr, latex, lhs=name)
    for key, lhs in (("loss", "L"), ("params", "N_opt"), ("tokens", "D_opt"), ("critical_batch", "B_crit")):
        expr = getattr(law, key)
        if expr is not None:
            out["formulas"][key] = {
                "symbolic": render(expr, latex, lhs=lhs),
                "numeric": render(expr, latex, law.constants, lhs=lhs),
            }
    for key, expr in law.hyperparameters.items():
        out["formulas"][f"hyperparameters.{key}"] = {
            "symbolic": render(expr, latex, lhs=key),
            "numeric": render(expr, latex, law.constants, lhs=key),
        }
    k = _LINEAR.get(law.flops)
    out["constraint"] = _constraint(law, k)
    if law.loss is not None and k is not None and not law.define and law.params is None and law.tokens is None:
        from scalecalc.validate.limits import MAX_SYMBOLIC_SECONDS
        from scalecalc.validate.timeout import time_limit

        with time_limit(
            MAX_SYMBOLIC_SECONDS, f"{law.name}: the symbolic derivation of the optimum", "MAX_SYMBOLIC_SECONDS"
        ):
            optimum = derive_optimum(law.loss, k)
            if optimum is not None:
                view = optimum.latex(law.constants) if latex else optimum.pretty(law.constants)
                out["optimum"] = asdict(view)
                out["exponent_a"] = optimum.exponent_a(law.constants, C=1e24)
    if out["optimum"] is None:
        out["note"] = _why_numeric(law, k)
    return out


def _constraint(law: Law, k) -> str:
    if law.params_kind == "flops_per_token":
        return "C = M·D (M: non-embedding FLOPs per token, DeepSeek eq. 2)"
    if k is not None:
        return f"C = {k}·N·D ({law.flops} convention)"
    return f"C = FLOPs_per_token(N)·D under the {law.flops} convention (shape-dependent)"


def _why_numeric(law: Law, k) -> str:
    if law.params is not None or law.tokens is not None:
        return "allocation law: N*(C) or D*(C) is given directly; no derivation needed"
    if law.define or k is None:
        return "no closed form under this convention; the planner minimises L numerically"
    return "sympy found no closed form; the planner minimises L numerically"
