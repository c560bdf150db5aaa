"""``scalecalc calibrate run``: train a recipe's runs into OUT/results.sqlite, with progress on stderr."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from scalecalc.cli.calibrate.common import OutOption, calibrate_app, hms
from scalecalc.cli.common import (
    Column,
    FormatOption,
    JsonOption,
    OutputFormat,
    emit,
    resolve_format,
    stderr_console,
)
from scalecalc.errors import UsageError
from scalecalc.quantities import format_count, format_sci


@calibrate_app.command("run")
def run(
    recipe: Annotated[
        str, typer.Argument(help="Recipe file, or a built-in name: quick-cpu, workstation, isoflop, batch-size.")
    ],
    out: OutOption,
    device: Annotated[str, typer.Option("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps.")] = "auto",
    devices: Annotated[
        Optional[str],
        typer.Option("--devices", help="Several devices, comma-separated (cuda:0,cuda:1): one worker process each."),
    ] = None,
    data: Annotated[
        Optional[list[str]],
        typer.Option(
            "--data",
            help="Corpus: text files, folders, globs, .bin (uint16) or .npy; repeatable. "
            "Default: the recipe's, else the Python standard library's source.",
        ),
    ] = None,
    tokenizer: Annotated[
        Optional[str],
        typer.Option("--tokenizer", help="bytes or tiktoken:<encoding> (default: the recipe's, else bytes)."),
    ] = None,
    compile: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the model (packed: the stacked forward and loss, compiled again when a run leaves "
            "the pack). Pays off on GPUs; compiling costs about 25 s per shape on a CPU.",
        ),
    ] = False,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", min=1, help="CPU threads for torch (1 avoids contention on a busy machine)."),
    ] = None,
    checkpoint_steps: Annotated[
        Optional[int],
        typer.Option(
            "--checkpoint-steps", min=1, help="Also checkpoint every this many steps (default: every 3 minutes only)."
        ),
    ] = None,
    runs_per_device: Annotated[
        str,
        typer.Option(
            "--runs-per-device",
            help="Train up to K same-shape runs together as one stacked model "
            "(seeds, learning rates of one size); auto measures memory and step time and picks K.",
        ),
    ] = "1",
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 autocast on CUDA, fp32 elsewhere), fp32 or bf16.")
    ] = "auto",
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="Where runs train: local (this machine), ray (a Ray cluster) or "
            "slurm (job arrays through submitit). See README: Calibrating on a cluster.",
        ),
    ] = "local",
    address: Annotated[
        Optional[str], typer.Option("--address", help="Ray: the cluster, auto or HOST:PORT (default auto).")
    ] = None,
    gpus_per_run: Annotated[
        Optional[float],
        typer.Option(
            "--gpus-per-run", help="Ray or Slurm: GPUs per run (Ray takes fractions: 0.25 puts four runs on a GPU)."
        ),
    ] = None,
    partition: Annotated[Optional[str], typer.Option("--partition", help="Slurm: the partition to submit to.")] = None,
    time_limit: Annotated[
        Optional[str], typer.Option("--time", help="Slurm: time limit per job, minutes or [D-]HH:MM:SS.")
    ] = None,
    array_parallelism: Annotated[
        Optional[int], typer.Option("--array-parallelism", help="Slurm: at most this many array tasks at once.")
    ] = None,
    sbatch_flag: Annotated[
        Optional[list[str]],
        typer.Option("--sbatch-flag", help="Slurm: one more sbatch flag, passed through; repeatable."),
    ] = None,
    shared_dir: Annotated[
        Optional[str],
        typer.Option(
            "--shared-dir",
            help="Ray or Slurm: a folder every node sees, for checkpoints (a retried "
            "run resumes; without it, it restarts from step 0).",
        ),
    ] = None,
    max_retries: Annotated[
        int, typer.Option("--max-retries", help="Ray or Slurm: retries of a run whose worker or node was lost.")
    ] = 3,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="List the runs with N, D, FLOPs, memory per run, the packing plan and "
            "a time estimated from a few measured steps; train nothing.",
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Train every run of RECIPE not yet done, streaming curves into OUT/results.sqlite.

    Rerunning the same command resumes: done runs are skipped and an interrupted run continues
    from its last checkpoint. Ctrl-C checkpoints and exits with code 130.

    Example:
        scalecalc calibrate run quick-cpu --out runs/quick
        scalecalc calibrate run calibrate/workstation.yaml --out runs/ws --devices cuda:0,cuda:1
    """
    from scalecalc.calibration.recipe import load_recipe

    fmt = resolve_format(fmt, as_json)
    k = _parse_runs_per_device(runs_per_device)
    if precision not in ("auto", "fp32", "bf16"):
        raise UsageError(f"--precision {precision}: use auto, fp32 or bf16")
    rec = load_recipe(recipe)  # recipe problems are reported before torch is imported
    from scalecalc.calibration.executors import ExecutorOptions, make_executor

    options = ExecutorOptions(
        executor,
        address,
        gpus_per_run,
        partition,
        time_limit,
        array_parallelism,
        tuple(sbatch_flag or ()),
        shared_dir,
        max_retries,
    )
    if executor != "local" and devices:
        raise UsageError(f"--devices: only for --executor local; with {executor} use --gpus-per-run")
    make_executor(options)  # a missing extra or a bad option: one line, before torch
    from scalecalc.errors import require

    require("torch", "calibrate")
    from scalecalc.calibration import sweep

    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    if device_list is not None and not device_list:
        raise UsageError("--devices: give one or more devices, e.g. cuda:0,cuda:1")
    if dry_run:
        from scalecalc.calibration.dryrun import dry_run as plan

        _render_plan(
            plan(
                rec,
                device=device,
                runs_per_device=k,
                precision=precision,
                out_dir=out,
                data=data,
                tokenizer=tokenizer,
                threads=threads,
                devices=device_list,
            ),
            rec,
            fmt,
            out=out,
            threads=threads,
            data=data,
            tokenizer=tokenizer,
        )
        return
    console = stderr_console()
    with _ProgressView(console) as view:
        summary = sweep.run_sweep(
            rec,
            out,
            device=device,
            devices=device_list,
            data=data,
            tokenizer=tokenizer,
            compile=compile,
            progress=view,
            checkpoint_every_steps=checkpoint_steps,
            threads=threads,
            runs_per_device=k,
            precision=precision,
            executor=options,
        )
    _render_summary(summary, fmt)
    if summary.interrupted:
        console.print("interrupted: progress is checkpointed; rerun the same command to resume")
        raise typer.Exit(130)


def _parse_runs_per_device(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        k = int(value)
    except ValueError:
        k = 0
    if k < 1:
        raise UsageError(f"--runs-per-device {value}: give a whole number >= 1 or auto")
    return k


def minutes(seconds: float | None) -> str:
    """An estimate in plain minutes ("23.9 min"), never an ambiguous "23:53"."""
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _render_plan(plan, rec, fmt: OutputFormat, *, out, threads, data, tokenizer) -> None:
    """The dry run: the setup, the packing choice and plan, memory per run, one line per run,
    the estimate in minutes and what to run next."""
    from dataclasses import asdict

    from scalecalc.cli.common import output_width, wrap_line

    rows, device = plan.rows, plan.device
    dicts = [asdict(r) for r in rows]
    total = plan.seconds
    if fmt is not OutputFormat.table:  # machine-readable: the packing plan travels with the rows
        for d in dicts:
            d["pack"] = next(i for i, ids in enumerate(plan.packs) if d["run_id"] in ids)
            d["runs_per_device"] = plan.choice.k
            d["bytes_per_run"] = plan.choice.bytes_per_run
    columns = [
        Column("run", "run_id", lambda v: v[:8], justify="left", wrap=False),
        Column("sweep", "sweep", justify="left", wrap=False),
        Column("layers", "n_layer", wrap=False),
        Column("d_model", "d_model", wrap=False),
        Column("batch", "batch_size", wrap=False),
        Column("lr", "lr", lambda x: f"{x:.2g}", wrap=False),
        Column("N", "N", format_count, wrap=False),
        Column("D", "D", format_count, wrap=False),
        Column("FLOPs", "C", lambda v: format_sci(v, 1), wrap=False),
        Column("steps", "steps", wrap=False),
        Column("est.", "seconds", minutes, wrap=False),
        Column("status", "status", justify="left", wrap=False),
    ]
    if output_width() < 100:  # the run id and sweep name are in --format json/csv
        columns = [c for c in columns if c.key not in ("sweep", "status")]
    first = rec.runs()[0] if rec.runs() else None
    setup = {
        "data": ", ".join(data)
        if data
        else ", ".join(first.data)
        if first and first.data
        else "Python standard library source (default)",
        "tokenizer": tokenizer or (first.tokenizer if first else "bytes"),
        "context": first.seq_len if first else None,
        "device": device if plan.workers == 1 else f"{device} x {plan.workers} workers (--devices)",
        "threads": threads if threads else "torch default",
        "out": str(out),
    }
    emit(
        dicts,
        columns,
        fmt,
        title=(
            f"{rec.name}: {len(rows)} runs, estimated {total / 60:.1f} minutes in all (measured on {device}, "
            f"{plan.choice.k} per device" + (f", {plan.workers} workers" if plan.workers > 1 else "") + ")"
            if fmt is OutputFormat.table
            else None
        ),
    )
    if fmt is OutputFormat.table:
        lines = [
            f"Data: {setup['data']}; tokenizer {setup['tokenizer']}; context {setup['context']} tokens",
            f"Device: {setup['device']}; threads: {setup['threads']}; results go to {setup['out']}/results.sqlite",
            f"Precision: {plan.precision}; packing: {plan.choice.reason}",
            *_cpu_workers_tip(plan),
            f"Memory per run (est.): {plan.choice.bytes_per_run / 2**20:.1f} MiB"
            + (f" of {plan.choice.free_bytes / 2**30:.1f} GiB free" if plan.choice.free_bytes else "")
            + f"; {len(plan.packs)} packs: "
            + ", ".join(f"{len(ids)} x {minutes(sec)}" for ids, sec in zip(plan.packs, plan.pack_seconds)),
            "Next: scalecalc calibrate run " + (rec.path or rec.name) + f" --out {setup['out']}",
            f"      scalecalc calibrate status {setup['out']}",
            f"      scalecalc calibrate fit {setup['out']}",
        ]
        sys.stdout.write("\n".join(wrap_line(line, "      ") for line in lines) + "\n")


def _cpu_workers_tip(plan) -> list[str]:
    """On a multi-core CPU with one worker: the faster way, one single-threaded worker per core
    (packing cannot speed up a compute-bound CPU step; calibrate/README.md, "Seeds and packing")."""
    import os

    cores = min(os.cpu_count() or 1, len(plan.packs))
    if plan.device != "cpu" or plan.workers > 1 or cores < 2:
        return []
    return [
        f"Faster here: one worker per core, --devices {','.join(['cpu'] * cores)} --threads 1 "
        "(1.6-1.8x over one process on 2 cores: bench/pack_throughput.py --processes 2)"
    ]


def _render_summary(summary, fmt: OutputFormat) -> None:
    row = {
        "out_dir": summary.out_dir,
        "recipe": summary.recipe,
        "devices": list(summary.devices),
        "total": summary.total,
        **summary.counts,
        "wall_time": summary.wall_time,
        "interrupted": summary.interrupted,
    }
    emit(
        [row],
        [
            Column("recipe", "recipe", justify="left"),
            Column("runs", "total"),
            Column("done", "done"),
            Column("diverged", "diverged"),
            Column("failed", "failed"),
            Column("queued", "queued"),
            Column("wall time", "wall_time", hms),
        ],
        fmt,
        title=f"sweep in {summary.out_dir}",
        single=True,
    )


class _ProgressView:
    """Draws sweep events on stderr: a rich live progress on a terminal, one line per run
    otherwise (logs, CI)."""

    def __init__(self, console):
        self.console = console
        self.live = console.is_terminal
        self.total, self.finished = 0, 0
        self.progress = None

    def __enter__(self):
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.console,
                transient=False,
            )
            self.progress.__enter__()
            self.sweep_task = self.progress.add_task("sweep", total=None, info="")
            self.run_task = None
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "submitted":
            tasks = list(event["tasks"].values())
            shown = ", ".join(tasks[:3]) + (f" ... ({len(tasks)} in all)" if len(tasks) > 3 else "")
            self.console.print(f"{event['executor']}: submitted {event['units']} run(s): {shown}", highlight=False)
            if not event.get("shared_dir"):
                self.console.print("no --shared-dir: a retried run restarts from step 0")
        elif kind == "cancelled":
            ids = event["ids"]
            self.console.print(
                f"{event['executor']}: cancelled {len(ids)} pending or running "
                f"task(s){': ' + ', '.join(ids) if ids else ''}",
                highlight=False,
            )
        elif kind == "device":
            self.console.print(f"device: {', '.join(event['devices'])}")
        elif kind == "packing":
            self.console.print(f"packing: {event['reason']}", highlight=False)
        elif kind == "sweep":
            c = event["counts"]
            self.total = event["total"]
            self.finished = c["done"] + c["diverged"] + c["failed"]
            if self.progress is not None:
                self.progress.update(self.sweep_task, total=self.total, completed=self.finished)
            elif "recipe" in event:
                self.console.print(
                    f"{event['recipe']}: {self.total} runs, {self.finished} "
                    f"finished, {self.total - self.finished} to train"
                )
        elif kind == "start":
            resumed = f", resumed at step {event['resumed']}" if event.get("resumed") else ""
            msg = (
                f"run {event['label']} ({event['run_id']}): N={format_count(event['N'])} "
                f"D={format_count(event['D'])} D/N={event['tokens_per_param']:.3g} "
                f"steps={event['max_steps']} warmup={event['warmup_steps']}{resumed}"
            )
            if self.progress is not None:
                if self.run_task is not None:
                    self.progress.remove_task(self.run_task)
                self.run_task = self.progress.add_task(
                    event["label"], total=event["max_steps"], completed=event["step"], info=""
                )
            else:
                self.console.print(msg)
        elif kind == "step" and self.progress is not None and self.run_task is not None:
            val = f" val {event['val_loss']:.3f}" if event.get("val_loss") else ""
            self.progress.update(
                self.run_task,
                completed=event["step"],
                info=f"{event['tokens_per_s']:,.0f} tok/s loss {event['loss']:.3f}{val}",
            )
        elif kind == "run":
            self.finished += 1
            if self.progress is not None:
                self.progress.update(self.sweep_task, completed=self.finished)
            loss = f" loss {event['final_loss']:.4f}" if event.get("final_loss") else ""
            took = f" in {hms(event['wall_time'])}" if event.get("wall_time") else ""
            err = f": {event['error']}" if event.get("error") else ""
            if event.get("host"):
                err += f" on {event['host']}"
                if event.get("resumed"):
                    err += f" (resumed at step {event['resumed']})"
            self.console.print(
                f"[{self.finished}/{self.total}] {event['label']} {event['status']}{loss}{took}{err}", highlight=False
            )
