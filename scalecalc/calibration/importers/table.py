"""CSV / TSV / JSONL learning curves, one row per (run, step), and W&B run-history exports.

Columns are found case-insensitively through aliases, ``_``, ``-``, ``/`` and ``.`` read as
spaces, the way ``scalecalc fit`` finds its columns; ``--col ROLE=NAME`` overrides them and
``--tag`` names the loss column. Two W&B layouts are read as downloaded:

- a run's history (``run.history()`` saved as CSV or JSON, or the files' ``wandb-history.jsonl``):
  a ``_step`` column and one column per logged metric; the run is named by a ``name``/``run``
  column or the file name;
- a chart panel's "Export CSV": ``Step`` then ``RUN - METRIC`` columns (plus ``__MIN``/``__MAX``),
  one curve per run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from .curve import ImportInputError, RawCurve

# role -> aliases (normalised), most specific first: "val loss" wins over "loss"
ALIASES = {
    "run": ("run", "run id", "run name", "name", "model", "model id"),
    "step": ("step", "steps", " step", "global step", "trainer global step", "iteration", "iter"),
    "tokens": ("tokens", "tokens seen", "num tokens", "n tokens", "train tokens", "training tokens", "d"),
    "loss": ("val loss", "validation loss", "eval loss", "valid loss", "test loss", "loss val", "loss", "l"),
    "train_loss": ("train loss", "training loss", "loss train"),
    "lr": ("lr", "learning rate", "train lr", "optimizer lr"),
    "wall_time": ("wall time", "runtime", " runtime", "time"),
    "params": ("params", "n", "parameters", "num params", "n params", "model size", "param count"),
    "params_non_embedding": ("non embedding params", "params non embedding", "n non embedding", "non embedding"),
    "params_total": ("total params", "params total", "n total"),
    "batch_size": ("batch size", "batch", "bs", "batch sequences"),
    "seq_len": ("seq len", "sequence length", "context", "block size", "ctx len"),
    "batch_tokens": ("batch tokens", "tokens per batch", "batch size tokens"),
    "warmup_steps": ("warmup steps", "warmup"),
    "flops_per_token": ("flops per token", "flop per token"),
    "seed": ("seed",),
    "flops_budget": ("budget", "flops budget", "flop budget", "compute budget"),
}
ROLES = tuple(ALIASES)
_CURVE_ROLES = ("step", "tokens", "loss", "train_loss", "lr", "wall_time")
_WANDB_WIDE = re.compile(r"^(?P<run>.+?) - (?P<metric>.+)$")


def norm(name: str) -> str:
    """Lower case, ``_ - / .`` as spaces (a leading ``_`` kept as a space: W&B's ``_step``)."""
    text = str(name).lower()
    lead = " " if text.startswith("_") else ""
    return lead + " ".join(re.sub(r"[_\-/.]", " ", text).split())


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """Header and rows (dicts of strings or numbers) of a CSV, TSV, JSONL or JSON-array file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportInputError(f"{path}: cannot read it ({exc}); give a UTF-8 CSV, TSV, JSONL or W&B export") from None
    if not text.strip():
        raise ImportInputError(f"{path}: the file is empty; give a header and one row per step")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip()[0] in "{[":
        return _json_rows(text, path)
    first = text.splitlines()[0]
    delim = "\t" if path.suffix.lower() == ".tsv" or ("\t" in first and "," not in first) else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    table = [r for r in reader if any(c.strip() for c in r)]
    header = [h.strip() for h in table[0]]
    rows = []
    for lineno, r in enumerate(table[1:], 2):
        if len(r) != len(header):
            raise ImportInputError(
                f"{path}: line {lineno} has {len(r)} fields but the header has {len(header)}; fix the row"
            )
        rows.append({h: c.strip() for h, c in zip(header, r)})
    if not rows:
        raise ImportInputError(f"{path}: a header but no rows; add one row per (run, step)")
    return header, rows


def _json_rows(text: str, path: Path):
    stripped = text.strip()
    try:
        if stripped.startswith("["):
            records = json.loads(stripped)
        else:
            records = [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ImportInputError(
            f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}); give "
            "one JSON object per line or a JSON array of objects"
        ) from None
    if not records or not all(isinstance(r, dict) for r in records):
        raise ImportInputError(
            f'{path}: expected JSON objects, one per (run, step), e.g. {{"run": "a", "step": 100, "loss": 3.1}}'
        )
    header: list[str] = []
    for r in records:
        header.extend(k for k in r if k not in header)
    return header, records


def resolve_columns(header: list[str], path: Path, overrides: dict, tag: str | None) -> dict:
    """Role -> column name: ``--col`` overrides and ``--tag`` first, then the aliases."""
    normed = {}
    for h in header:
        normed.setdefault(norm(h), h)
    cols = {}
    wanted = dict(overrides)
    if tag:
        wanted["loss"] = tag
    for role, name in wanted.items():
        hit = name if name in header else normed.get(norm(name))
        if hit is None:
            flag = "--tag" if role == "loss" and tag else f"--col {role}="
            raise ImportInputError(f"{path}: no column {name!r} ({flag}); columns found: {', '.join(header)}")
        cols[role] = hit
    for role, aliases in ALIASES.items():
        if role not in cols:
            hit = next((normed[a] for a in aliases if a in normed and normed[a] not in cols.values()), None)
            if hit is not None:
                cols[role] = hit
    return cols


def _num(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_table(path: Path, overrides: dict, tag: str | None) -> list[RawCurve]:
    """The curves in a long table (or a W&B history export), one per run id."""
    header, rows = read_rows(path)
    wide = _wandb_wide(header, tag)
    if wide is not None:
        return _read_wide(path, header, rows, *wide)
    cols = resolve_columns(header, path, overrides, tag)
    if "loss" not in cols:
        raise ImportInputError(
            f"{path}: no loss column; columns found: {', '.join(header)}; name it with --tag NAME (or --col loss=NAME)"
        )
    if "step" not in cols and "tokens" not in cols:
        raise ImportInputError(
            f"{path}: no step or tokens column; columns found: {', '.join(header)}; name one with --col step=NAME"
        )
    curves: dict[str, RawCurve] = {}
    for row in rows:
        name = str(row.get(cols["run"], "")).strip() if "run" in cols else ""
        name = name or path.stem
        loss = _num(row.get(cols["loss"]))
        if loss is None:
            continue  # W&B histories log metrics on different steps: this row has no loss
        curve = curves.get(name)
        if curve is None:
            curve = curves[name] = RawCurve(name, path, [], [], tokens=[], lr=[], train_loss=[], wall_time=[], meta={})
        for role in _CURVE_ROLES:
            target = getattr(curve, "steps" if role == "step" else role)
            target.append(loss if role == "loss" else _num(row.get(cols[role])) if role in cols else None)
        for role in ROLES:
            if role not in _CURVE_ROLES and role != "run" and role in cols:
                value = row.get(cols[role])
                if value not in (None, "") and role not in curve.meta:
                    curve.meta[role] = value
    for curve in curves.values():
        for role in ("tokens", "lr", "train_loss", "wall_time"):
            if all(v is None for v in getattr(curve, role)):
                setattr(curve, role, None)
        if all(s is None for s in curve.steps):
            curve.steps = None
    return list(curves.values())


def _wandb_wide(header: list[str], tag: str | None):
    """(step column, {run: metric column}) for a W&B chart "Export CSV", else None."""
    if not header or norm(header[0]) not in ("step", " step"):
        return None
    metrics: dict[str, dict[str, str]] = {}
    for h in header[1:]:
        m = _WANDB_WIDE.match(h)
        if m is None:
            return None
        if m["metric"].endswith(("__MIN", "__MAX")):
            continue
        metrics.setdefault(m["metric"], {})[m["run"]] = h
    if not metrics:
        return None
    if tag is None:
        metric = next((mt for a in ALIASES["loss"] for mt in metrics if norm(mt) == a), None)
        metric = metric or next(iter(metrics))
    else:
        metric = tag
    return header[0], metric, metrics


def _read_wide(path, header, rows, step_col, metric, metrics) -> list[RawCurve]:
    if metric not in metrics:
        raise ImportInputError(
            f"{path}: no metric {metric!r} in this W&B export; metrics "
            f"found: {', '.join(metrics)}; choose one with --tag"
        )
    curves = []
    for run, col in metrics[metric].items():
        steps, loss = [], []
        for row in rows:
            x = _num(row.get(col))
            if x is not None:
                steps.append(_num(row.get(step_col)))
                loss.append(x)
        curves.append(RawCurve(run, path, steps, loss))
    return curves
