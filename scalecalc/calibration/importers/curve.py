"""Imported learning curves -> :class:`~scalecalc.calibration.store.FinishedRun` records.

Every reader (tables, W&B exports, TensorBoard) produces :class:`RawCurve` records: a run name,
the file it came from, the logged steps and losses, and whatever metadata the log itself holds.
:func:`finish` merges that metadata with the sidecar YAML and the command-line flags (in that
order of precedence), checks the curve and builds the stored run, or says why it cannot.

The stored config has the keys :func:`scalecalc.calibration.estimate.curves_from_store` reads
(``batch_size`` and ``seq_len``, ``warmup_steps``, ``flops_budget``), so ``calibrate fit`` and
``report`` treat an imported run like a trained one (docs/reference.md, the calibration store).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scalecalc.calibration.store import FinishedRun, Point
from scalecalc.errors import UsageError

#: Metadata keys a run may carry (columns, sidecar YAML keys, flags).
META_KEYS = (
    "params",
    "params_non_embedding",
    "params_total",
    "batch_size",
    "seq_len",
    "batch_tokens",
    "warmup_steps",
    "flops_per_token",
    "seed",
    "flops_budget",
)
PARAMS_KINDS = ("non_embedding", "total")


class ImportInputError(UsageError):
    """A log that cannot be imported as given (exit 2, one line naming the file and the fix)."""


class RunProblem(Exception):
    """A run that cannot be imported (reported and skipped with ``--skip-bad``)."""


@dataclass
class RawCurve:
    """One run's curve as read from a log, before metadata is merged and checked.

    ``steps``, ``loss`` (nats/token), and optionally ``tokens``, ``lr``, ``train_loss`` and
    ``wall_time`` (seconds) are parallel lists in the order logged; ``meta`` holds the
    :data:`META_KEYS` found in the log itself (columns)."""

    name: str
    source: Path
    steps: list[float]
    loss: list[float]
    tokens: list[float] | None = None
    lr: list[float] | None = None
    train_loss: list[float] | None = None
    wall_time: list[float] | None = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Options:
    """What the command line says about the logs: the loss tag, column overrides, the
    metadata flags (:data:`META_KEYS`) and what ``params`` counts."""

    tag: str | None = None
    columns: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    params_kind: str = "non_embedding"


def load_sidecar(path: Path) -> dict:
    """A sidecar YAML (``yaml.safe_load``): top-level defaults plus ``runs: {NAME: {...}}``.

    W&B's ``config.yaml`` layout (``key: {value: x}``) is unwrapped."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImportInputError(
            f"{path}: not a readable YAML sidecar ({detail}); fix it or remove it and pass --params/--batch-size"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ImportInputError(
            f"{path}: a sidecar must be a mapping of metadata keys "
            f"({', '.join(META_KEYS)}), optionally with runs: {{NAME: ...}}"
        )
    return {k: (v["value"] if isinstance(v, dict) and "value" in v else v) for k, v in data.items()}


def sidecar_meta(sidecar: dict, name: str) -> dict:
    """The metadata a sidecar gives run ``name``: its defaults, overridden by its ``runs`` entry."""
    meta = {k: v for k, v in sidecar.items() if k in META_KEYS or k == "params_kind"}
    runs = sidecar.get("runs")
    if isinstance(runs, dict):
        entry = runs.get(name)
        if entry is None:  # TensorBoard run names are paths: match the last part too
            entry = runs.get(name.rsplit("/", 1)[-1])
        if isinstance(entry, dict):
            meta.update({k: v for k, v in entry.items() if k in META_KEYS or k == "params_kind"})
    return meta


def _number(meta: dict, key: str, where: str) -> float | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RunProblem(f"{key} {value!r} is not a number ({where})") from None
    if not math.isfinite(x) or x <= 0:
        raise RunProblem(f"{key} {value!r} must be a positive number ({where})")
    return x


def finish(raw: RawCurve, sidecar: dict, options: Options) -> tuple[FinishedRun, list[str]]:
    """Merge metadata (log columns > sidecar > flags), check the curve, build the stored run.

    Returns the run and notes on what was dropped (NaN losses). Raises :class:`RunProblem` for
    a run with no parameter count or batch size, steps that do not increase, or no finite loss.
    """
    meta = {
        **{k: v for k, v in options.meta.items() if v is not None},
        **sidecar_meta(sidecar, raw.name),
        **{k: v for k, v in raw.meta.items() if v not in (None, "")},
    }
    where = "columns, sidecar or flags"
    kind = meta.get("params_kind", options.params_kind)
    if kind not in PARAMS_KINDS:
        raise RunProblem(f"params_kind {kind!r}; choose {' or '.join(PARAMS_KINDS)}")
    n_ne = _number(meta, "params_non_embedding", where)
    n_tot = _number(meta, "params_total", where)
    n_any = _number(meta, "params", where)
    if n_any is not None:
        if kind == "total":
            n_tot = n_tot or n_any
        else:
            n_ne = n_ne or n_any
    if n_ne is None and n_tot is None:
        raise RunProblem("no parameter count; give a params column, params: in a sidecar YAML, or --params")
    n_ne, n_tot = n_ne or n_tot, n_tot or n_ne  # one count known: the other taken equal

    notes = []
    keep = [i for i, x in enumerate(raw.loss) if x is not None and math.isfinite(x) and x > 0]
    if len(keep) < len(raw.loss):
        notes.append(f"{len(raw.loss) - len(keep)} NaN or non-positive losses dropped")
    if not keep:
        raise RunProblem("no finite loss")

    def pick(values):
        return None if values is None else [values[i] for i in keep]

    steps, loss, tokens = pick(raw.steps), pick(raw.loss), pick(raw.tokens)
    B = _batch_tokens(meta, steps, tokens, where)
    if steps is None or any(s is None for s in steps):
        steps = [t / B for t in tokens]
    for a, b in zip(steps, steps[1:]):
        if not b > a:
            raise RunProblem(
                f"steps go backwards ({a:g} then {b:g}); give one curve per run "
                "(a restarted run's log without the repeated steps)"
            )
    if tokens is None or any(t is None for t in tokens):
        tokens = [s * B for s in steps]
    seq_len = _number(meta, "seq_len", where)
    batch_size = _number(meta, "batch_size", where)
    if not (seq_len and batch_size):
        batch_size, seq_len = B, 1.0  # only the batch in tokens is known
    per_token = {"6nd": 6.0 * n_ne}
    fpt = _number(meta, "flops_per_token", where)
    if fpt is not None:
        per_token["given"] = fpt
    lr, train, wall = pick(raw.lr), pick(raw.train_loss), pick(raw.wall_time)
    config = {
        "source": "import",
        "run_name": raw.name,
        "import_file": raw.source.name,
        "batch_size": _int_if_whole(batch_size),
        "seq_len": _int_if_whole(seq_len),
        "max_steps": _int_if_whole(steps[-1]),
        "params_kind": kind,
    }
    for key in ("warmup_steps", "seed"):
        if meta.get(key) not in (None, ""):
            config[key] = _int_if_whole(float(meta[key]))
    budget = _number(meta, "flops_budget", where)
    if budget is not None:
        config["flops_budget"] = budget
    params = {"non_embedding": _int_if_whole(n_ne), "total": _int_if_whole(n_tot)}
    rate = fpt if fpt is not None else per_token["6nd"]
    points = tuple(
        Point(
            "",
            int(round(s)),
            float(t),
            float(t) * rate,
            None if train is None else _finite(train[i]),
            float(x),
            0.0 if lr is None or not _finite(lr[i]) else float(lr[i]),
            0.0 if wall is None or not _finite(wall[i]) else float(wall[i]),
        )
        for i, (s, t, x) in enumerate(zip(steps, tokens, loss))
    )
    if len({p.step for p in points}) < len(points):
        raise RunProblem("fractional steps that round to the same integer; give whole steps")
    digest = hashlib.sha256(
        json.dumps(
            [
                config["run_name"],
                params,
                config["batch_size"],
                config["seq_len"],
                [(p.step, p.val_loss) for p in points],
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()[:16]
    return FinishedRun(digest, config, params, per_token, points, device="import"), notes


def _finite(x):
    return float(x) if x is not None and math.isfinite(x) else None


def _int_if_whole(x: float):
    return int(x) if float(x).is_integer() else float(x)


def _batch_tokens(meta: dict, steps, tokens, where: str) -> float:
    """Batch size B in tokens: batch_tokens, else batch_size x seq_len, else tokens/step."""
    B = _number(meta, "batch_tokens", where)
    if B is None:
        bs, T = _number(meta, "batch_size", where), _number(meta, "seq_len", where)
        if bs is not None:
            B = bs * (T or 1.0)
    if B is None and tokens is not None and steps is not None:
        pairs = [(s, t) for s, t in zip(steps, tokens) if s and t]
        if pairs:
            B = pairs[-1][1] / pairs[-1][0]
    if B is None:
        raise RunProblem(
            "no batch size; give batch_size (and seq_len) or batch_tokens as a "
            "column, in a sidecar YAML, or as --batch-size/--seq-len, or log tokens"
        )
    return B
