"""The best sweep as a recipe ``scalecalc calibrate run`` accepts (one IsoFLOP sweep per budget).

The recipe's ``params`` are the design's model sizes (the prior's N; ``calibrate run`` reads them
as non-embedding targets, docs/reference.md §15) and each sweep's ``flops`` its budget under
C = 6 N D; the model settings are the ``isoflop`` recipe's. Written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from .search import Design

MODEL_SETTINGS = {  # as calibrate/isoflop.yaml
    "tokenizer": "bytes",
    "seq_len": 256,
    "mlp": "swiglu",
    "pos": "rope",
    "tied": False,
    "head_dim": 32,
    "schedule": "cosine",
    "lr": 3e-3,
    "weight_decay": 0.1,
    "flops_convention": "6nd",
    "eval_points": 20,
    "eval_interval": 250,
    "batch_size": 32,
}


def _sig(x: float, digits: int = 3) -> float:
    return float(f"{x:.{digits}g}")


def recipe_dict(result: Design, name: str = "design") -> dict:
    """The recipe mapping for the best sweep of ``result``."""
    runs, shape = result.best.runs, result.best.runs.shape
    sweeps = []
    for i, c in enumerate(shape.budgets(runs.cost_flops)):
        sizes = sorted({_sig(n) for n, cc in zip(runs.N, runs.C) if cc == c})
        sweeps.append({"name": f"iso{i + 1}", "params": sizes, "flops": _sig(c)})
    lo, _, hi = result.best.interval["N"]
    return {
        "name": name,
        "description": (
            f"scalecalc calibrate design: {shape.label()}, {runs.cost_flops:.3g} "
            f"FLOPs in all, for a target of {result.target_flops:.3g} FLOPs "
            f"(prior {result.prior.name}; predicted N* {lo:.3g}..{hi:.3g} at "
            f"{result.confidence:.0%})"
        ),
        **MODEL_SETTINGS,
        "seed": list(range(shape.seeds)),
        "sweeps": sweeps,
    }


def write_recipe(result: Design, path: Path, name: str = "design") -> Path:
    """Write the recipe YAML atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    text = yaml.safe_dump(recipe_dict(result, name), sort_keys=False, width=100)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
