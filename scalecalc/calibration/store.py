"""The calibration results store: one SQLite file per sweep, crash-safe and resumable.

``DIR/results.sqlite`` holds three tables:

- ``meta``: key -> JSON value (schema version, recipe name and text, scalecalc version, corpus hash);
- ``runs``: one row per run, keyed by the hash of its full configuration
  (:attr:`scalecalc.calibration.recipe.RunConfig.run_id`), with its status
  (``queued | running | done | diverged | failed``), device, library versions, corpus hash,
  parameter counts by group, FLOPs per token by convention, error and times;
- ``points``: the learning curves, one row per (run, step), never duplicated.

SQLite runs in WAL mode so readers (``calibrate status``) never block the trainer, and every
write is one transaction. Several worker processes (one per GPU) take runs with
:meth:`Store.claim_next`, which holds the write lock (``BEGIN IMMEDIATE``) while it picks and
marks a run, so no two workers ever take the same one. A run left ``running`` by a worker that
died is claimable again (a killed sweep resumes; nanochat ``runs/scaling_laws.sh``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from scalecalc.errors import MissingInput, StoreError

SCHEMA_VERSION = 1
FILENAME = "results.sqlite"


class RunStatus(str, Enum):
    """Where a run stands; the SQL CHECK constraint, the sweep and ``calibrate status`` use these."""

    QUEUED = "queued"  # waiting for a worker (also a run interrupted mid-way: it resumes)
    RUNNING = "running"  # claimed by a worker
    DONE = "done"  # trained to its horizon
    DIVERGED = "diverged"  # NaN or exploding loss: kept, excluded from fits
    FAILED = "failed"  # an error other than divergence (message in ``error``)


STATUSES = tuple(s.value for s in RunStatus)
STALE_AFTER_S = 900.0  # a worker silent this long (no points, no heartbeat) is presumed dead

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ({", ".join(repr(x) for x in STATUSES)})),
    device TEXT,
    versions TEXT,
    corpus_hash TEXT,
    params TEXT,
    flops_per_token TEXT,
    error TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    claimed_by TEXT,
    heartbeat REAL
);
CREATE TABLE IF NOT EXISTS points (
    run_id TEXT NOT NULL REFERENCES runs(id),
    step INTEGER NOT NULL,
    tokens REAL NOT NULL,
    flops REAL NOT NULL,
    train_loss REAL,
    val_loss REAL,
    lr REAL NOT NULL,
    wall_time REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""


@dataclass(frozen=True)
class RunRecord:
    """One run as stored. ``config`` is :meth:`RunConfig.to_dict` plus the resolved horizon
    (``max_steps``, ``warmup_steps``, ``tokens_budget``, ``flops_budget``) once known."""

    id: str
    config: dict
    status: str
    device: str | None
    params: dict
    flops_per_token: dict
    corpus_hash: str | None
    error: str | None
    created: float
    started: float | None
    finished: float | None
    versions: dict | None = None
    claimed_by: str | None = None


@dataclass(frozen=True)
class Point:
    """One evaluation point of a learning curve. Losses in nats/token; ``tokens`` and ``flops``
    are cumulative training tokens and FLOPs (the run's ``flops_convention``) at ``step``;
    ``wall_time`` is seconds since the run started (training time, excluding evals)."""

    run_id: str
    step: int
    tokens: float
    flops: float
    train_loss: float | None
    val_loss: float | None
    lr: float
    wall_time: float


@dataclass(frozen=True)
class FinishedRun:
    """A run trained elsewhere (``calibrate import``): its config (``batch_size``, ``seq_len``,
    ``warmup_steps``, ``source``...), parameter counts by group (``non_embedding``, ``total``),
    FLOPs per token by convention, and its learning curve (``Point.run_id`` is ignored)."""

    id: str
    config: dict
    params: dict
    flops_per_token: dict
    points: tuple[Point, ...]
    device: str | None = None


def worker_id() -> str:
    """``host:pid`` of this process, so a dead worker on this host can be recognised (a worker
    may append ``:device``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(claimed_by: str | None) -> bool:
    if not claimed_by or ":" not in claimed_by:
        return False
    host, pid = claimed_by.split(":")[:2]  # "host:pid" or "host:pid:device"
    if host != socket.gethostname():
        return True  # another machine: only the heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Store:
    """Open (``create=True``: create) the store at ``path`` (a folder or a ``.sqlite`` file).

    Raises
    ------
    StoreError
        No store at ``path`` (and ``create`` is false), not a SQLite file, or a store written by
        another schema version.
    """

    def __init__(self, path: str | Path, *, create: bool = False):
        path = Path(path)
        self.dir = path.parent if path.suffix == ".sqlite" else path
        self.path = path if path.suffix == ".sqlite" else path / FILENAME
        if not self.path.exists():
            if not create and not self.dir.exists():
                raise MissingInput(
                    f"{self.dir}: no such folder; give the folder written by "
                    "`scalecalc calibrate run RECIPE --out FOLDER`"
                )
            if not create:
                raise StoreError(
                    f"{self.dir}: no results store here; run `scalecalc calibrate run RECIPE --out {self.dir}` first"
                )
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file in the way, a read-only or full disk
                raise StoreError(
                    f"--out {self.dir}: cannot create the folder ({exc.strerror or exc}); choose a writable location"
                ) from None
        try:
            # autocommit mode: every write below opens its own explicit transaction
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=60000")
            with self._tx():
                for stmt in _SCHEMA.strip().split(";\n"):
                    if stmt.strip():
                        self._db.execute(stmt)
                row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (json.dumps(SCHEMA_VERSION),))
                    from scalecalc import __version__

                    self._db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('scalecalc_version', ?)", (json.dumps(__version__),)
                    )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a scalecalc results store ({exc})") from None
        version = json.loads(row[0]) if row is not None else SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            self.close()
            raise StoreError(
                f"{self.path}: results store schema version {version}, this scalecalc reads "
                f"version {SCHEMA_VERSION}; use a new --out folder or the scalecalc that wrote it"
            )

    # -- plumbing -----------------------------------------------------------------------------
    def _tx(self, immediate: bool = True):
        return _Transaction(self._db, immediate)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- meta ---------------------------------------------------------------------------------
    def meta(self) -> dict:
        """All meta keys (schema_version, scalecalc_version, recipe, recipe_text, corpus_hash...)."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **items) -> None:
        with self._tx():
            for k, v in items.items():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (k, json.dumps(v)))

    # -- runs ---------------------------------------------------------------------------------
    def add_runs(self, runs: Iterable[tuple[str, dict]]) -> int:
        """Queue runs ``(id, config)``; ids already stored are left as they are. Returns how
        many were new."""
        now = time.time()
        with self._tx():
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO runs (id, config, status, created) VALUES (?, ?, 'queued', ?)",
                [(rid, json.dumps(cfg, sort_keys=True), now) for rid, cfg in runs],
            )
            return self._db.total_changes - before

    def add_finished_runs(self, runs: Iterable[FinishedRun]) -> int:
        """Store finished runs with their curves as ``done``, all in one transaction (a failure
        leaves nothing half-written). Ids already stored are left as they are, so importing the
        same runs twice changes nothing. Returns how many were new."""
        now = time.time()
        added = 0
        with self._tx():
            for run in runs:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO runs (id, config, status, device, params, "
                    "flops_per_token, created, started, finished) "
                    "VALUES (?, ?, 'done', ?, ?, ?, ?, ?, ?)",
                    (
                        run.id,
                        json.dumps(run.config, sort_keys=True),
                        run.device,
                        json.dumps(run.params, sort_keys=True),
                        json.dumps(run.flops_per_token, sort_keys=True),
                        now,
                        now,
                        now,
                    ),
                )
                if cur.rowcount == 0:
                    continue  # already imported: keep the stored curve
                added += 1
                self._db.executemany(
                    "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            run.id,
                            int(p.step),
                            float(p.tokens),
                            float(p.flops),
                            _num(p.train_loss),
                            _num(p.val_loss),
                            float(p.lr),
                            float(p.wall_time),
                        )
                        for p in run.points
                    ],
                )
        return added

    def runs(self, status: str | None = None) -> list[RunRecord]:
        """Runs in queue order, optionally only those with ``status``."""
        sql = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY rowid"
        return [_record(r) for r in self._query(sql, (status,) if status else ())]

    def run(self, run_id: str) -> RunRecord:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StoreError(f"{self.path}: no run {run_id!r}")
        return _record(rows[0])

    def claim_next(
        self, worker: str | None = None, *, only: Iterable[str] | None = None, stale_after: float = STALE_AFTER_S
    ) -> RunRecord | None:
        """Atomically take the next run to train and mark it ``running`` by ``worker``.

        Candidates, in queue order: ``queued`` runs, and ``running`` runs whose worker is dead
        (same host, process gone) or silent for ``stale_after`` seconds (interrupted runs, which
        resume from their checkpoint). ``only`` restricts the choice to these ids.
        """
        worker = worker or worker_id()
        allowed = set(only) if only is not None else None
        now = time.time()
        with self._tx():  # BEGIN IMMEDIATE: no other writer until we commit
            rows = self._db.execute(
                "SELECT id, status, claimed_by, heartbeat FROM runs "
                "WHERE status IN ('queued', 'running') ORDER BY rowid"
            ).fetchall()
            for rid, status, owner, beat in rows:
                if allowed is not None and rid not in allowed:
                    continue
                if status == "running" and (
                    owner == worker or (_alive(owner) and beat is not None and now - beat < stale_after)
                ):
                    continue  # taken by a live worker (or by this one)
                self._db.execute(
                    "UPDATE runs SET status='running', claimed_by=?, heartbeat=?, "
                    "started=COALESCE(started, ?), error=NULL WHERE id=?",
                    (worker, now, now, rid),
                )
                break
            else:
                return None
        return self.run(rid)

    def set_run_info(
        self,
        run_id: str,
        *,
        device: str | None = None,
        versions: dict | None = None,
        corpus_hash: str | None = None,
        params: dict | None = None,
        flops_per_token: dict | None = None,
        config: dict | None = None,
    ) -> None:
        """Record what the trainer learned about a run (only the fields given are written)."""
        cols = {
            "device": device,
            "versions": versions,
            "corpus_hash": corpus_hash,
            "params": params,
            "flops_per_token": flops_per_token,
            "config": config,
        }
        cols = {
            k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else v) for k, v in cols.items() if v is not None
        }
        if not cols:
            return
        with self._tx():
            self._db.execute(
                f"UPDATE runs SET {', '.join(f'{k}=?' for k in cols)}, heartbeat=? WHERE id=?",
                (*cols.values(), time.time(), run_id),
            )

    def finish(self, run_id: str, status: str, error: str | None = None) -> None:
        """Mark a run ``done``, ``diverged`` or ``failed`` (or back to ``queued``)."""
        if status not in STATUSES:
            raise ValueError(status)
        finished = time.time() if status in ("done", "diverged", "failed") else None
        with self._tx():
            self._db.execute(
                "UPDATE runs SET status=?, error=?, finished=?, claimed_by=NULL WHERE id=?",
                (status, error, finished, run_id),
            )

    def requeue(self, statuses: Iterable[str] = ("failed",)) -> int:
        """Put runs with these statuses back in the queue (their points are kept until the run
        restarts). Returns the number requeued."""
        statuses = tuple(statuses)
        with self._tx():
            cur = self._db.execute(
                f"UPDATE runs SET status='queued', error=NULL, finished=NULL, claimed_by=NULL "
                f"WHERE status IN ({','.join('?' * len(statuses))})",
                statuses,
            )
            return cur.rowcount

    # -- points -------------------------------------------------------------------------------
    def add_points(self, points: Iterable[Point]) -> int:
        """Write points; a (run_id, step) already stored is kept (never duplicated). Returns how
        many were new."""
        points = list(points)
        if not points:
            return 0
        with self._tx():
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.run_id,
                        int(p.step),
                        float(p.tokens),
                        float(p.flops),
                        _num(p.train_loss),
                        _num(p.val_loss),
                        float(p.lr),
                        float(p.wall_time),
                    )
                    for p in points
                ],
            )
            added = self._db.total_changes - before
            self._db.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), points[0].run_id))
            return added

    def points(self, run_id: str) -> list[Point]:
        """The learning curve of one run, ordered by step (one point per step)."""
        return [
            Point(*r)
            for r in self._query(
                "SELECT run_id, step, tokens, flops, train_loss, val_loss, lr, wall_time "
                "FROM points WHERE run_id = ? ORDER BY step",
                (run_id,),
            )
        ]

    def truncate_points_after(self, run_id: str, step: int) -> int:
        """Delete the points after ``step`` (a run resuming from its checkpoint at ``step``
        writes them again). Returns how many were deleted."""
        with self._tx():
            cur = self._db.execute("DELETE FROM points WHERE run_id=? AND step>?", (run_id, step))
            return cur.rowcount

    def counts(self) -> dict[str, int]:
        """Number of runs per status (every status present, zeros included)."""
        out = dict.fromkeys(STATUSES, 0)
        for status, n in self._query("SELECT status, COUNT(*) FROM runs GROUP BY status"):
            out[status] = n
        return out

    def _query(self, sql: str, args=()) -> list:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the results store ({exc})") from None


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection, immediate: bool):
        self.db, self.immediate = db, immediate

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE" if self.immediate else "BEGIN")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        except sqlite3.DatabaseError as err:  # a full disk fails the COMMIT (or the ROLLBACK)
            exc = exc if exc_type is not None else err
        if isinstance(exc, sqlite3.DatabaseError):  # the transaction is rolled back: the store stays consistent
            raise StoreError(
                f"the results store could not be written ({exc}); free space and rerun: "
                "finished runs are kept and the rest resume"
            ) from None
        return False


def _num(x):
    return None if x is None else float(x)


def _record(row) -> RunRecord:
    (
        rid,
        config,
        status,
        device,
        versions,
        corpus_hash,
        params,
        fpt,
        error,
        created,
        started,
        finished,
        claimed_by,
        _heartbeat,
    ) = row
    return RunRecord(
        id=rid,
        config=json.loads(config),
        status=status,
        device=device,
        params=json.loads(params) if params else {},
        flops_per_token=json.loads(fpt) if fpt else {},
        corpus_hash=corpus_hash,
        error=error,
        created=created,
        started=started,
        finished=finished,
        versions=json.loads(versions) if versions else None,
        claimed_by=claimed_by,
    )
