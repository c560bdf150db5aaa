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
        rows = [_status_row(store, r) for r in store.runs()]
        counts = store.counts()
        recipe = store.meta().get("recipe", "?")
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    emit(rows, [
        Column("run", "run_id", justify="left"), Column("config", "label", justify="left"),
        Column("status", "status", justify="left"), Column("N", "N", format_count),
        Column("step", "step"), Column("of", "max_steps"), Column("val loss", "val_loss", fmt_loss),
        Column("time", "wall_time", hms), Column("device", "device", justify="left"),
        Column("error", "error", justify="left"),
    ], fmt, title=f"{out} ({recipe}): {summary or 'no runs'}", single=False)


def _status_row(store, r) -> dict:
    from scalecalc.calibration.recipe import RunConfig

    pts = store.points(r.id)
    last = pts[-1] if pts else None
    vals = [p for p in pts if p.val_loss is not None]
    cfg = r.config
    try:
        label = RunConfig.from_dict(cfg).label()
    except TypeError:
        label = "?"
    return {"run_id": r.id, "label": label, "status": r.status,
            "N": r.params.get("total", cfg.get("n_params")), "step": last.step if last else 0,
            "max_steps": cfg.get("max_steps"), "val_loss": vals[-1].val_loss if vals else None,
            "wall_time": last.wall_time if last else None, "device": r.device, "error": r.error}
