"""The driver shared by the remote executors: claim runs, submit units, commit what comes back.

The driver is the store's only writer. It claims the runs it sends (``claimed_by`` is this
process, so a killed driver's runs are claimable again by the next one), records the remote task
ids in the store's meta (``calibrate status`` shows them), and commits a run in the order points,
then status: a driver killed in between leaves the run ``running`` under a dead process, and the
rerun trains it again and replaces its points (never duplicated: one row per (run, step)).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from pathlib import Path

from scalecalc.calibration.executors.base import Executor, RunOutcome, WorkUnit
from scalecalc.calibration.recipe import RunConfig
from scalecalc.calibration.store import Point, worker_id


class RemoteExecutor(Executor):
    """An engine that runs :class:`WorkUnit` s elsewhere; subclasses say how to submit, poll
    and cancel."""

    @abstractmethod
    def submit(self, units: list[WorkUnit]) -> dict[str, str]:
        """Start the units; return unit id -> remote task or job id."""

    @abstractmethod
    def poll(self) -> list[tuple[str, list[RunOutcome] | str]]:
        """Units finished since the last call: (unit id, outcomes) or (unit id, error text)."""

    @abstractmethod
    def cancel(self) -> list[str]:
        """Cancel every unit still pending or running; return the ids cancelled."""

    def run(
        self,
        store,
        out_dir: Path,
        ids,
        progress,
        stop,
        *,
        device: str = "auto",
        threads=None,
        checkpoint_every_steps=None,
        **_ignored,
    ):
        return drive(
            self,
            store,
            ids,
            progress,
            stop,
            device=device,
            threads=threads,
            checkpoint_every_steps=checkpoint_every_steps,
        )


def drive(
    executor: RemoteExecutor, store, ids, progress, stop, *, device="auto", threads=None, checkpoint_every_steps=None
) -> tuple[list, bool]:
    """Send every claimable run of ``ids`` as a unit, commit results until all are back or
    ``stop()``; returns ([], interrupted)."""
    me = f"{worker_id()}:{executor.name}"
    claimed = []
    while (record := store.claim_next(me, only=ids)) is not None:
        if RunConfig.from_dict(record.config).run_id != record.id:  # as the local worker does
            store.finish(record.id, "failed", "stored config does not match its run id")
            continue
        claimed.append(record)
    if not claimed:
        return [], False
    shared = executor.options.shared_dir
    ckpt_dir = str(Path(shared) / "checkpoints") if shared else None
    units = [
        WorkUnit(f"u{i}-{r.id}", (r.id,), (r.config,), ckpt_dir, threads, checkpoint_every_steps, device)
        for i, r in enumerate(claimed)
    ]
    unit_runs = {u.unit_id: u.run_ids for u in units}
    tasks = executor.submit(units)
    _record_tasks(store, executor.name, tasks, unit_runs)
    _emit(progress, event="submitted", executor=executor.name, tasks=tasks, shared_dir=shared, units=len(units))
    pending = set(unit_runs)
    with stop:
        while pending:
            if stop():
                cancelled = executor.cancel()
                for uid in pending:
                    for rid in unit_runs[uid]:
                        store.finish(rid, "queued", None)
                _emit(progress, event="cancelled", executor=executor.name, ids=cancelled)
                return [], True
            for uid, outcome in executor.poll():
                pending.discard(uid)
                if isinstance(outcome, str):
                    for rid in unit_runs[uid]:
                        commit(store, RunOutcome(rid, "failed", outcome), progress)
                else:
                    for o in outcome:
                        commit(store, o, progress)
            if pending:
                time.sleep(executor.options.poll_s)
    return [], False


def commit(store, outcome: RunOutcome, progress=None) -> None:
    """Write one run's result: run info, its whole curve (replacing any earlier partial curve),
    then its status. Interrupted runs go back to the queue."""
    rid = outcome.run_id
    if outcome.info:
        store.set_run_info(
            rid,
            **{
                k: outcome.info.get(k)
                for k in ("device", "versions", "corpus_hash", "params", "flops_per_token", "config")
            },
        )
    if outcome.points:
        store.truncate_points_after(rid, -1)
        store.add_points([Point(rid, *row) for row in outcome.points])
    status = "queued" if outcome.status == "interrupted" else outcome.status
    store.finish(rid, status, outcome.error)
    label = outcome.info.get("config", {}).get("run_id", rid)
    _emit(
        progress,
        event="run",
        run_id=rid,
        label=_label(outcome) or label,
        status=outcome.status,
        error=outcome.error,
        final_loss=outcome.final_loss,
        wall_time=outcome.wall_time,
        host=outcome.host,
        resumed=outcome.resumed_from,
    )


def _label(outcome: RunOutcome) -> str | None:
    try:
        return RunConfig.from_dict(outcome.info["config"]).label()
    except Exception:  # no config came back (the task failed): the run id will do
        return None


def _record_tasks(store, executor: str, tasks: dict, unit_runs: dict) -> None:
    """meta ``executor``: the engine and, per run, its remote task ids (one per submission, so a
    resubmitted run lists them all: its retries across drivers)."""
    meta = store.meta().get("executor") or {}
    runs = dict(meta.get("runs", {})) if meta.get("name") == executor else {}
    for uid, task in tasks.items():
        for rid in unit_runs[uid]:
            runs.setdefault(rid, []).append(task)
    store.set_meta(executor={"name": executor, "runs": runs})


def _emit(progress, **event) -> None:
    if progress is not None:
        progress(event)
