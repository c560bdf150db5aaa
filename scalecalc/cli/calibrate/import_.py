"""``scalecalc calibrate import``: learning curves from your own logs into a results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scalecalc.cli.calibrate.common import calibrate_app
from scalecalc.cli.common import (
    Column,
    FormatOption,
    JsonOption,
    OutputFormat,
    emit,
    resolve_format,
)
from scalecalc.errors import UsageError
from scalecalc.quantities import format_count


@calibrate_app.command("import")
def import_runs(
    out: Annotated[
        Path,
        typer.Argument(
            help="Results folder to fill (created if absent; the store `calibrate fit` and `report` read).",
            file_okay=False,
        ),
    ],
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="CSV/TSV/JSONL files (one row per run and step), W&B history or chart exports, "
            "TensorBoard event files or log folders."
        ),
    ],
    tag: Annotated[
        Optional[str],
        typer.Option(
            "--tag",
            help="The loss: TensorBoard scalar tag, W&B metric or column name (default: "
            "the first of val/loss, val_loss, eval/loss, loss ... found).",
        ),
    ] = None,
    col: Annotated[
        Optional[list[str]],
        typer.Option(
            "--col",
            help="ROLE=COLUMN, repeatable: run, step, tokens, loss, lr, params, "
            "batch_size, seq_len, batch_tokens, seed, flops_per_token, warmup_steps.",
        ),
    ] = None,
    meta: Annotated[
        Optional[Path],
        typer.Option(
            "--meta",
            help="Sidecar YAML with each run's metadata (default: FILE.yaml beside a "
            "table, scalecalc.yaml in a log folder).",
            dir_okay=False,
        ),
    ] = None,
    params: Annotated[
        Optional[float],
        typer.Option("--params", help="Parameter count of every run without one in its log or sidecar."),
    ] = None,
    params_kind: Annotated[
        str, typer.Option("--params-kind", help="What the parameter counts count: non_embedding (Kaplan's N) or total.")
    ] = "non_embedding",
    batch_size: Annotated[
        Optional[float], typer.Option("--batch-size", help="Sequences per batch, for runs without one.")
    ] = None,
    seq_len: Annotated[
        Optional[float], typer.Option("--seq-len", help="Tokens per sequence, for runs without one.")
    ] = None,
    warmup_steps: Annotated[
        Optional[float],
        typer.Option(
            "--warmup-steps",
            help="Warmup steps, for runs without one (points up to it are not "
            "fitted; default: the store's rule, N tokens).",
        ),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="Skip runs that cannot be imported (listed with the reason) instead of stopping."
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Import finished runs from CSV/JSONL, W&B exports or TensorBoard logs into OUT.

    `calibrate fit`, `report` and `plan --law` then work on them as on trained runs.
    Importing the same logs twice changes nothing.

    Example:
        scalecalc calibrate import runs/mine curves.csv --params-kind total
        scalecalc calibrate import runs/mine logs/tb --tag val/loss --batch-size 32 --seq-len 1024
        scalecalc calibrate fit runs/mine
    """
    from scalecalc.calibration.importers import PARAMS_KINDS, Options, import_into, read_sources

    fmt = resolve_format(fmt, as_json)
    if params_kind not in PARAMS_KINDS:
        raise UsageError(f"--params-kind: {params_kind!r}; choose {' or '.join(PARAMS_KINDS)}")
    options = Options(
        tag=tag,
        columns=_columns(col or []),
        params_kind=params_kind,
        meta={"params": params, "batch_size": batch_size, "seq_len": seq_len, "warmup_steps": warmup_steps},
    )
    files = read_sources(sources, options, meta_file=meta, skip_bad=skip_bad)
    new_ids = import_into(out, files)
    rows = []
    for f, fresh in zip(files, new_ids):
        for run in f.runs:
            rows.append(
                {
                    "source": str(f.source),
                    "run": f.names[run.id],
                    "run_id": run.id,
                    "N": run.params["non_embedding"],
                    "N_total": run.params["total"],
                    "batch_tokens": run.config["batch_size"] * run.config["seq_len"],
                    "points": len(run.points),
                    "status": "imported" if run.id in fresh else "already present",
                    "reason": "",
                }
            )
        rows += [
            {
                "source": str(f.source),
                "run": name,
                "run_id": None,
                "N": None,
                "N_total": None,
                "batch_tokens": None,
                "points": 0,
                "status": "skipped",
                "reason": why,
            }
            for name, why in f.skipped
        ]
        notes = dict(f.notes)
        for r in rows:
            if r["source"] == str(f.source) and r["run"] in notes:
                r["reason"] = notes[r["run"]]
    n_imported = sum(r["status"] == "imported" for r in rows)
    emit(
        rows,
        [
            Column("source", "source", justify="left"),
            Column("run", "run", justify="left"),
            Column("id", "run_id", justify="left"),
            Column("N", "N", format_count),
            Column("B tokens", "batch_tokens", format_count),
            Column("points", "points"),
            Column("status", "status", justify="left"),
            Column("note", "reason", justify="left"),
        ],
        fmt,
        title=f"{out}: {n_imported} runs imported, "
        f"{sum(r['status'] == 'already present' for r in rows)} already present, "
        f"{sum(r['status'] == 'skipped' for r in rows)} skipped",
        single=False,
    )


def _columns(items: list[str]) -> dict:
    from scalecalc.calibration.importers.table import ROLES

    out = {}
    for item in items:
        role, sep, name = item.partition("=")
        role = role.strip().replace("-", "_")
        if not sep or not name.strip():
            raise UsageError(f"--col: {item!r} is not ROLE=COLUMN, e.g. --col loss=val/loss")
        if role not in ROLES:
            raise UsageError(f"--col: unknown role {role!r}; choose from {', '.join(ROLES)}")
        out[role] = name.strip()
    return out
