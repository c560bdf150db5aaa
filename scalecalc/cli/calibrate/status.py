"""``scalecalc calibrate status``: where a sweep stands, run by run."""

from __future__ import annotations

from scalecalc.cli.calibrate.common import DirArg, calibrate_app, fmt_loss, hms
from scalecalc.cli.common import (
    Column,
    FormatOption,
    JsonOption,
    OutputFormat,
    emit,
    resolve_format,
)
from scalecalc.quantities import format_count


@calibrate_app.command("status")
def status(
    out: DirArg,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Where a sweep stands: every run with its status, steps, last validation loss and device.

    Example:
        scalecalc calibrate status runs/quick
        scalecalc calibrate status runs/quick --json | jq '.[] | select(.status=="failed")'
    """
    from scalecalc.calibration.store import Store

    fmt = resolve_format(fmt, as_json)
    with Store(out) as store:
        meta = store.meta()
        remote = meta.get("executor") or {}
        rows = [_status_row(store, r, remote) for r in store.runs()]
        counts = store.counts()
        recipe = meta.get("recipe", "?")
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    emit(
        rows,
        [
            Column("run", "run_id", justify="left"),
            Column("config", "label", justify="left"),
            Column("status", "status", justify="left"),
            Column("N", "N", format_count),
            Column("step", "step"),
            Column("of", "max_steps"),
            Column("val loss", "val_loss", fmt_loss),
            Column("time", "wall_time", hms),
            Column("device", "device", justify="left"),
            *(
                [
                    Column("executor", "executor", justify="left"),
                    Column("tasks", "tasks", lambda t: ", ".join(t) or "-", justify="left"),
                    Column("retries", "retries"),
                ]
                if remote
                else []
            ),
            Column("error", "error", justify="left"),
        ],
        fmt,
        title=f"{out} ({recipe}): {summary or 'no runs'}",
        single=False,
    )


def _status_row(store, r, remote: dict) -> dict:
    from scalecalc.calibration.recipe import RunConfig

    pts = store.points(r.id)
    last = pts[-1] if pts else None
    vals = [p for p in pts if p.val_loss is not None]
    cfg = r.config
    try:
        label = RunConfig.from_dict(cfg).label()
    except TypeError:
        label = "?"
    return {
        "run_id": r.id,
        "label": label,
        "status": r.status,
        "N": r.params.get("total", cfg.get("n_params")),
        "step": last.step if last else 0,
        "max_steps": cfg.get("max_steps"),
        "val_loss": vals[-1].val_loss if vals else None,
        "wall_time": last.wall_time if last else None,
        "device": r.device,
        "error": r.error,
        **_remote_fields(r.id, remote),
    }


def _remote_fields(run_id: str, remote: dict) -> dict:
    """The executor, the remote task or job ids this run was sent as (one per submission, so a
    run resubmitted after a killed driver lists several) and its retries across drivers."""
    if not remote:
        return {}
    tasks = remote.get("runs", {}).get(run_id, [])
    return {"executor": remote.get("name"), "tasks": tasks, "retries": max(len(tasks) - 1, 0)}
