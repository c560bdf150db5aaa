"""Parametric fits with their held-out check, and the choice between forms.

:func:`fit_forms` fits the requested form (or, for ``auto``, each candidate of
:data:`scalecalc.fit.forms.CANDIDATES`), evaluates it on held-out runs
(:mod:`scalecalc.fit.holdout`) and, for ``auto``, keeps the form with the lowest mean |relative
error| on them. With ``compare`` the candidates are reported side by side.
"""

from __future__ import annotations

import dataclasses

from scalecalc.errors import UsageError
from scalecalc.fit import holdout as ho
from scalecalc.fit.forms import CANDIDATES


def build_model(form, constraints, kaplan_vars="N", irreducible=False):
    """A fresh model object (constrained models carry a per-fit temperature)."""
    from scalecalc.fit import models
    from scalecalc.fit.constraints import Constrained
    from scalecalc.fit.forms import make_model

    base = models.kaplan_model(kaplan_vars, irreducible) if form == "kaplan" else make_model(form)
    if not constraints:
        return base
    if form == "kaplan":
        raise UsageError("--fix/--prior: available for --form chinchilla and gadre, not kaplan")
    return Constrained(base, constraints)


def fit_forms(runs, form, *, constraints, holdout, compare, progress=None, bootstrap=0, seed=0, workers=None, **opts):
    """Fit ``form`` (or choose one, ``auto``) with its holdout block; see the module docstring."""
    ho.check_spec(holdout)
    forms = list(CANDIDATES) if form == "auto" or compare else [form]
    if form != "auto" and form not in forms:
        forms.insert(0, form)
    for f in forms:  # constraint names first: a typo is reported before any fit
        build_model(f, constraints, opts.get("kaplan_vars", "N"), opts.get("irreducible", False))
    spec = holdout
    mask = ho.select(runs, spec)
    if mask is None and len(forms) > 1:
        spec, mask = "largest", ho.select(runs, "largest")
    results = {}
    for f in forms:
        # The chosen form (known up front unless auto) gets its bootstrap in the first fit.
        boot = bootstrap if f == form else 0
        results[f] = _fit_with_holdout(
            runs, f, constraints, mask, spec, boot, seed, workers, progress, opts, holdout_boot=bootstrap
        )
    chosen = form
    if form == "auto":
        scored = [f for f in forms if results[f].holdout]
        chosen = min(scored, key=lambda f: results[f].holdout["mean_abs_rel_error"])
        if bootstrap:
            results[chosen] = _fit_with_holdout(
                runs, chosen, constraints, mask, spec, bootstrap, seed, workers, progress, opts, holdout_boot=bootstrap
            )
    res = results[chosen]
    comparison = ()
    if len(forms) > 1:
        comparison = tuple(_row(f, results[f], f == chosen) for f in forms)
    if form == "auto":
        res = dataclasses.replace(res, method=res.method + f"; --form auto chose {chosen} by held-out error")
    return dataclasses.replace(res, comparison=comparison)


def _fit_with_holdout(runs, form, constraints, mask, spec, bootstrap, seed, workers, progress, opts, holdout_boot=0):
    from scalecalc.fit.parametric import fit_parametric

    kv, irr = opts.pop("kaplan_vars", "N"), opts.pop("irreducible", False)
    try:
        model = build_model(form, constraints, kv, irr)
        if mask is not None:
            ho.check_left(runs, mask, len(model.names), spec)
        full = fit_parametric(runs, model, bootstrap=bootstrap, seed=seed, workers=workers, progress=progress, **opts)
        if mask is None:
            return full

        def fit_train(train, K):
            return fit_parametric(
                train,
                build_model(form, constraints, kv, irr),
                **{**opts, "grid": "coarse", "budgets": None},
                extra_starts=full.details["end_points"],
                bootstrap=K,
                seed=seed,
                workers=workers,
            )

        block = ho.evaluate(runs, mask, fit_train, spec=spec, bootstrap=holdout_boot, seed=seed)
        if progress:
            progress("holdout", 1, 1)
        return dataclasses.replace(full, holdout=block, warnings=full.warnings + tuple(ho.warnings(block)))
    finally:
        opts["kaplan_vars"], opts["irreducible"] = kv, irr


def _row(form, res, chosen) -> dict:
    row = {
        "form": form,
        "free_constants": len(res.details["model"].names),
        "residual_rms": float(res.residual_rms),
        "objective": float(res.objective),
        "chosen": bool(chosen),
    }
    if res.holdout:
        row["holdout_mean_abs_rel_error"] = res.holdout["mean_abs_rel_error"]
        row["held_out"] = res.holdout["n_held_out"]
        if "covered" in res.holdout:
            row["covered"] = res.holdout["covered"]
    return row
