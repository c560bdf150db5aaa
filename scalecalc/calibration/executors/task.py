"""The remote side: train one :class:`WorkUnit` and return its runs as JSON-friendly dicts.

Runs on a Ray worker or a Slurm job step. It never opens the SQLite store (WAL mode is unsafe
on network filesystems): points go to a JSON-lines file beside the run's checkpoint, so a
retried task that resumes from the checkpoint still returns the whole curve from step 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from pathlib import Path

POINT_FIELDS = ("step", "tokens", "flops", "train_loss", "val_loss", "lr", "wall_time")


class PointsFile:
    """The three store methods :func:`train_run` calls, backed by ``<dir>/<run_id>.points.jsonl``
    (appended and fsynced per point; truncated like the store on resume)."""

    def __init__(self, folder: Path, run_id: str):
        self.path = Path(folder) / f"{run_id}.points.jsonl"
        self.info: dict = {}

    def set_run_info(self, run_id, **info) -> None:
        self.info.update({k: v for k, v in info.items() if v is not None})

    def add_points(self, points) -> int:
        with open(self.path, "a") as f:
            for p in points:
                f.write(json.dumps([getattr(p, k) for k in POINT_FIELDS]) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return len(points)

    def truncate_points_after(self, run_id, step: int) -> int:
        rows = self.rows()
        keep = [r for r in rows if r[0] <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, self.path)
        return len(rows) - len(keep)

    def rows(self) -> list[list]:
        if not self.path.is_file():
            return []
        rows = {}
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line torn by a kill mid-write
                row = json.loads(line)
                # the first row of a step wins, as the store's INSERT OR IGNORE: a run resumed
                # at an eval step evaluates it again, without the train loss already averaged
                rows.setdefault(int(row[0]), row)
        return [rows[k] for k in sorted(rows)]

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def train_unit(unit: dict) -> list[dict]:
    """Train every run of ``unit`` (a :meth:`WorkUnit.to_dict`); return a
    :class:`RunOutcome` dict per run. Checkpoints go to ``unit["checkpoint_dir"]`` (on
    --shared-dir: a retried task resumes) or to a temporary folder removed afterwards."""
    import torch

    from scalecalc.calibration import data as data_mod
    from scalecalc.calibration.executors.base import scratch_dir
    from scalecalc.calibration.loop import autodetect_device, train_run
    from scalecalc.calibration.recipe import RunConfig

    if unit.get("threads"):
        torch.set_num_threads(int(unit["threads"]))
    folder = Path(unit["checkpoint_dir"]) if unit.get("checkpoint_dir") else None
    scratch = None
    if folder is None:
        folder = Path(scratch := scratch_dir())
    folder.mkdir(parents=True, exist_ok=True)
    device = unit.get("device") or "auto"
    if device == "auto":
        device = autodetect_device()
    outcomes, corpora = [], {}
    try:
        for config in unit["configs"]:
            cfg = RunConfig.from_dict(config)
            key = cfg.data_key()
            if key not in corpora:
                corpora[key] = data_mod.load_corpus(
                    list(cfg.data) if cfg.data else None, cfg.tokenizer, max_bytes=cfg.data_max_bytes
                )
            points = PointsFile(folder, cfg.run_id)
            started: dict = {}
            kw = {"checkpoint_every_steps": unit.get("checkpoint_every_steps")}
            try:
                result = train_run(
                    cfg,
                    corpora[key],
                    store=points,
                    checkpoint_dir=folder,
                    device=device,
                    progress=_on_start(started),
                    **{k: v for k, v in kw.items() if v},
                )
                status, error = result.status, result.error
                final_loss, wall = result.final_loss, result.wall_time
            except Exception as exc:  # recorded on the run; the driver marks it failed
                status, error, final_loss, wall = "failed", f"{type(exc).__name__}: {exc}", None, 0.0
            rows = points.rows()
            outcomes.append(
                {
                    "run_id": cfg.run_id,
                    "status": status,
                    "error": error,
                    "final_loss": final_loss,
                    "wall_time": wall,
                    "info": {**points.info, "corpus_hash": corpora[key].corpus_hash},
                    "points": rows,
                    "resumed_from": started.get("resumed", 0),
                    "host": socket.gethostname(),
                }
            )
            if status != "failed":
                points.remove()
        return outcomes
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _on_start(into: dict):
    """A progress callback keeping the ``start`` event (its ``resumed`` is the checkpoint step)."""

    def callback(event: dict) -> None:
        if event.get("event") == "start":
            into.update(event)

    return callback


def train_unit_json(unit_json: str) -> str:
    """:func:`train_unit` with JSON in and out (what Slurm jobs run: no pickled user data)."""
    return json.dumps(train_unit(json.loads(unit_json)))
