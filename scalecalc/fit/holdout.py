"""Held-out evaluation: fit without some runs, predict them, report the error.

``--holdout largest`` holds out every run of the largest model size, ``--holdout K`` the K
largest sizes, ``--holdout 'params > 1e9'`` the runs matching a filter on params (N), tokens
(D), flops (C) or loss; ``none`` turns it off. By default a parametric fit with at least four
model sizes holds out the largest (``auto``), so every fit says how well it extrapolates
(docs/reference.md §2.5). Sizes within 0.01 dex are one size (:func:`diagnostics.model_sizes`).

The held-out fit uses the coarse start grid plus the full fit's best end points as starts (only
starting points: the objective sees the training runs alone), and at most
``HOLDOUT_REPLICATES`` bootstrap replicates for its prediction intervals.
"""

from __future__ import annotations

import numpy as np

from scalecalc.errors import UsageError
from scalecalc.fit.diagnostics import model_sizes

MIN_SIZES_FOR_DEFAULT = 4
HOLDOUT_REPLICATES = 200
_COLUMNS = {
    "params": "params",
    "n": "params",
    "tokens": "tokens",
    "d": "tokens",
    "flops": "flops",
    "c": "flops",
    "compute": "flops",
    "loss": "loss",
}


def check_spec(spec) -> str:
    """Validate ``--holdout`` early (before reading the runs); returns it normalised."""
    text = str(spec).strip()
    if text.lower() in ("auto", "none", "off", "largest"):
        return text.lower()
    if text.isdigit():
        if int(text) < 1:
            raise UsageError(f"--holdout: {text} must hold out at least 1 size")
        return text
    _parse_filter(text)
    return text


def _parse_filter(text):
    from scalecalc.fit.runs import _parse_where

    try:
        col, op, value = _parse_where(text)
    except UsageError:
        raise UsageError(
            f"--holdout: cannot read {text!r}; give largest, a number of sizes, "
            "none, or a filter such as 'params > 1e9'"
        ) from None
    key = _COLUMNS.get(col.strip().lower())
    if key is None:
        raise UsageError(f"--holdout: {col!r} is not params, tokens, flops or loss")
    try:
        v = float(value)
    except ValueError:
        raise UsageError(f"--holdout: {value!r} in {text!r} is not a number") from None
    return key, op, v


def select(runs, spec) -> np.ndarray | None:
    """Boolean mask of the held-out rows, or None when there is no holdout."""
    spec = check_spec(spec)
    sizes = model_sizes(runs.params)
    n_sizes = int(sizes.max()) + 1
    if spec in ("none", "off"):
        return None
    if spec == "auto":
        if n_sizes < MIN_SIZES_FOR_DEFAULT:
            return None
        spec = "largest"
    if spec == "largest":
        spec = "1"
    if spec.isdigit():
        k = int(spec)
        if k >= n_sizes:
            raise UsageError(
                f"--holdout: {k} sizes hold out every run ({n_sizes} sizes in {runs.source}); hold out fewer"
            )
        return sizes >= n_sizes - k
    key, op, v = _parse_filter(spec)
    x = getattr(runs, key)
    return {"==": x == v, "!=": x != v, "<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]


def check_left(runs, mask, n_free: int, spec) -> None:
    """UsageError when the holdout removes everything, nothing, or leaves too few runs."""
    n_out = int(mask.sum())
    if n_out == len(runs):
        raise UsageError(
            f"--holdout {spec}: holds out all {len(runs)} runs; nothing is left to "
            "fit; hold out fewer (e.g. --holdout largest)"
        )
    if n_out == 0:
        raise UsageError(f"--holdout {spec}: matches no run of {runs.source}; nothing to predict")
    left = len(runs) - n_out
    if left <= n_free:
        raise UsageError(
            f"--holdout {spec}: leaves {left} runs for {n_free} free constants; "
            f"hold out fewer (at least {n_free + 1} must remain)"
        )


def evaluate(runs, mask, fit_train, *, spec, bootstrap=0, seed=0) -> dict:
    """Fit on ``~mask`` with ``fit_train(train_runs, bootstrap)``, predict the ``mask`` rows.

    Returns the JSON-ready ``holdout`` block: per held-out row the predicted and actual loss,
    relative error (predicted/actual - 1), the 95% prediction interval and whether it covers the
    actual loss; and the mean |relative error| and coverage count.
    """
    from scalecalc.fit.predict import predict

    train, test = runs.subset(~mask), runs.subset(mask)
    K = min(int(bootstrap), HOLDOUT_REPLICATES)
    res = fit_train(train, K)
    pred, ci = predict(res, test.params, test.tokens, unique=test.unique_tokens, seed=seed)
    err = pred / test.loss - 1
    rows = []
    for j in range(len(test)):
        row = {
            "params": float(test.params[j]),
            "tokens": float(test.tokens[j]),
            "loss": float(test.loss[j]),
            "predicted": float(pred[j]),
            "rel_error": float(err[j]),
        }
        if ci is not None:
            row["interval"] = [float(ci[j, 0]), float(ci[j, 1])]
            row["covered"] = bool(ci[j, 0] <= test.loss[j] <= ci[j, 1])
        rows.append(row)
    out = {
        "selection": str(spec),
        "n_train": len(train),
        "n_held_out": len(test),
        "train_params_max": float(train.params.max()),
        "mean_abs_rel_error": float(np.mean(np.abs(err))),
        "max_abs_rel_error": float(np.max(np.abs(err))),
        "bootstrap_replicates": K,
        "runs": rows,
    }
    if ci is not None:
        out["covered"] = int(sum(r["covered"] for r in rows))
    out["train_constants"] = {k: float(v) for k, v in res.params.items()}
    return out


def warnings(block: dict) -> list[str]:
    """A held-out error larger than its interval, said plainly."""
    if not block or "covered" not in block:
        return []
    missed = block["n_held_out"] - block["covered"]
    if missed == 0:
        return []
    return [
        f"{missed} of {block['n_held_out']} held-out runs fall outside their 95% prediction "
        f"intervals (mean |error| {block['mean_abs_rel_error']:.2%}); the intervals "
        "understate the extrapolation error"
    ]
