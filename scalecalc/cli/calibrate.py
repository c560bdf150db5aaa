"""``scalecalc calibrate``: train tiny-model sweeps, then re-estimate the scaling constants.

``run`` trains a recipe into a results store, ``status`` shows where it stands, ``fit`` estimates
the constants and writes a law file, ``report`` shows them with a held-out check. torch (the
``calibrate`` extra) is imported only inside ``run``; ``status``, ``fit`` and ``report`` read the
store with the standard library and numpy/scipy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scalecalc.cli.common import (
    Column, FormatOption, JsonOption, OutputFormat, emit, resolve_format, stderr_console,
)
from scalecalc.errors import UsageError
from scalecalc.quantities import format_count, format_sci

calibrate_app = typer.Typer(
    help="Train tiny GPT sweeps on your data and hardware, re-estimate the scaling constants "
         "(N_c, alpha_N, B*, alpha_B, S_c, alpha_S; E, A, B, alpha, beta) and write a law file.",
    no_args_is_help=True,
)

OutOption = Annotated[Path, typer.Option("--out", "-o", help="Results folder (created; holds "
                                         "results.sqlite and checkpoints/).", file_okay=False)]
DirArg = Annotated[Path, typer.Argument(help="Results folder written by `calibrate run`.",
                                        file_okay=False)]


def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _loss(x) -> str:
    return f"{x:.4f}"


@calibrate_app.command("run")
def run(
    recipe: Annotated[str, typer.Argument(help="Recipe file, or a built-in name: quick-cpu, "
                                          "workstation, isoflop, batch-size.")],
    out: OutOption,
    device: Annotated[str, typer.Option("--device", help="auto (cuda, mps, cpu), cpu, cuda, "
                                        "cuda:N or mps.")] = "auto",
    devices: Annotated[Optional[str], typer.Option(
        "--devices", help="Several devices, comma-separated (cuda:0,cuda:1): one worker "
        "process each.")] = None,
    data: Annotated[Optional[list[str]], typer.Option(
        "--data", help="Corpus: text files, folders, globs, .bin (uint16) or .npy; repeatable. "
        "Default: the recipe's, else the Python standard library's source.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(
        "--tokenizer", help="bytes or tiktoken:<encoding> (default: the recipe's, else bytes).")
    ] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", min=1, help="CPU threads for torch (1 avoids contention on a busy "
        "machine).")] = None,
    checkpoint_steps: Annotated[Optional[int], typer.Option(
        "--checkpoint-steps", min=1, help="Also checkpoint every this many steps (default: "
        "every 3 minutes only).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List the runs with N, D, FLOPs and a time estimated from a few "
        "measured steps; train nothing.")] = False,
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
    rec = load_recipe(recipe)  # recipe problems are reported before torch is imported
    from scalecalc.errors import require

    require("torch", "calibrate")
    from scalecalc.calibration import sweep

    device_list = [d.strip() for d in devices.split(",") if d.strip()] if devices else None
    if device_list is not None and not device_list:
        raise UsageError("--devices: give one or more devices, e.g. cuda:0,cuda:1")
    if dry_run:
        rows = sweep.plan_sweep(rec, device=device, out_dir=out, data=data, tokenizer=tokenizer,
                                threads=threads)
        _render_plan(rows, rec.name, fmt)
        return
    console = stderr_console()
    with _ProgressView(console) as view:
        summary = sweep.run_sweep(rec, out, device=device, devices=device_list, data=data,
                                  tokenizer=tokenizer, compile=compile, progress=view,
                                  checkpoint_every_steps=checkpoint_steps, threads=threads)
    _render_summary(summary, fmt)
    if summary.interrupted:
        console.print("interrupted: progress is checkpointed; rerun the same command to resume")
        raise typer.Exit(130)


def _render_plan(rows, recipe: str, fmt: OutputFormat) -> None:
    from dataclasses import asdict

    dicts = [asdict(r) for r in rows]
    total = sum(r.seconds or 0 for r in rows)
    emit(dicts, [
        Column("run", "run_id", justify="left"), Column("sweep", "sweep", justify="left"),
        Column("layers", "n_layer"), Column("d_model", "d_model"),
        Column("batch", "batch_size"), Column("lr", "lr", lambda x: f"{x:g}"),
        Column("N", "N", format_count), Column("N_non_emb", "N_non_embedding", format_count),
        Column("D", "D", format_count), Column("FLOPs", "C", format_sci),
        Column("steps", "steps"), Column("D/N", "tokens_per_param", lambda x: f"{x:.3g}"),
        Column("est. time", "seconds", _hms), Column("status", "status", justify="left"),
    ], fmt, title=f"{recipe}: {len(rows)} runs, estimated {_hms(total)} in all", single=False)


def _render_summary(summary, fmt: OutputFormat) -> None:
    row = {"out_dir": summary.out_dir, "recipe": summary.recipe,
           "devices": list(summary.devices), "total": summary.total, **summary.counts,
           "wall_time": summary.wall_time, "interrupted": summary.interrupted}
    emit([row], [
        Column("recipe", "recipe", justify="left"), Column("runs", "total"),
        Column("done", "done"), Column("diverged", "diverged"), Column("failed", "failed"),
        Column("queued", "queued"), Column("wall time", "wall_time", _hms),
    ], fmt, title=f"sweep in {summary.out_dir}", single=True)


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
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeRemainingColumn(),
                                     TextColumn("{task.fields[info]}"), console=self.console,
                                     transient=False)
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
        if kind == "device":
            self.console.print(f"device: {', '.join(event['devices'])}")
        elif kind == "sweep":
            c = event["counts"]
            self.total = event["total"]
            self.finished = c["done"] + c["diverged"] + c["failed"]
            if self.progress is not None:
                self.progress.update(self.sweep_task, total=self.total, completed=self.finished)
            elif "recipe" in event:
                self.console.print(f"{event['recipe']}: {self.total} runs, {self.finished} "
                                   f"finished, {self.total - self.finished} to train")
        elif kind == "start":
            resumed = f", resumed at step {event['resumed']}" if event.get("resumed") else ""
            msg = (f"run {event['label']} ({event['run_id']}): N={format_count(event['N'])} "
                   f"D={format_count(event['D'])} D/N={event['tokens_per_param']:.3g} "
                   f"steps={event['max_steps']} warmup={event['warmup_steps']}{resumed}")
            if self.progress is not None:
                if self.run_task is not None:
                    self.progress.remove_task(self.run_task)
                self.run_task = self.progress.add_task(event["label"], total=event["max_steps"],
                                                       completed=event["step"], info="")
            else:
                self.console.print(msg)
        elif kind == "step" and self.progress is not None and self.run_task is not None:
            val = f" val {event['val_loss']:.3f}" if event.get("val_loss") else ""
            self.progress.update(self.run_task, completed=event["step"],
                                 info=f"{event['tokens_per_s']:,.0f} tok/s loss "
                                      f"{event['loss']:.3f}{val}")
        elif kind == "run":
            self.finished += 1
            if self.progress is not None:
                self.progress.update(self.sweep_task, completed=self.finished)
            loss = f" loss {event['final_loss']:.4f}" if event.get("final_loss") else ""
            took = f" in {_hms(event['wall_time'])}" if event.get("wall_time") else ""
            err = f": {event['error']}" if event.get("error") else ""
            self.console.print(f"[{self.finished}/{self.total}] {event['label']} "
                               f"{event['status']}{loss}{took}{err}", highlight=False)


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
        Column("step", "step"), Column("of", "max_steps"), Column("val loss", "val_loss", _loss),
        Column("time", "wall_time", _hms), Column("device", "device", justify="left"),
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


@calibrate_app.command("fit")
def fit(
    out: DirArg,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Law file to write (default OUT/law.yaml).", dir_okay=False)] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates "
                                           "over runs for the intervals (0: none).")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    name: Annotated[str, typer.Option("--name", help="Name of the law in the file.")] =
        "calibrated",
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Estimate the constants from the finished runs and write a law file for `plan --law`.

    Example:
        scalecalc calibrate fit runs/quick
        scalecalc plan --law runs/quick/law.yaml --compute 1e18
    """
    from scalecalc.calibration.estimate import estimate
    from scalecalc.calibration.store import Store

    fmt = resolve_format(fmt, as_json)
    with Store(out) as store:
        est = estimate(store, bootstrap=bootstrap, seed=seed)
    path = est.write_law(output or out / "law.yaml", name)
    if fmt is OutputFormat.table:
        _constants_table(est, f"{name}: {est.n_runs} runs, {est.n_sizes} sizes -> {path}")
    else:
        emit([{**est.to_dict(), "law_file": str(path)}], [], fmt, single=True)


def _constants_table(est, title: str) -> None:
    def g(x):
        return f"{x:.4g}"

    emit(est.rows(), [
        Column("constant", "name", justify="left"), Column("value", "value", g),
        Column("low", "low", g), Column("high", "high", g), Column("unit", "unit", justify="left"),
        Column("meaning", "meaning", justify="left"),
    ], OutputFormat.table, title=title, warnings=est.warnings)


@calibrate_app.command("report")
def report(
    out: DirArg,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Write figures (learning curves, held-out prediction) to this folder.",
        file_okay=False)] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates "
                                           "for the intervals.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Runs, constants with intervals, and a held-out check of the largest model.

    The held-out check refits without the largest model and predicts its whole learning curve.

    Example:
        scalecalc calibrate report runs/quick
        scalecalc calibrate report runs/quick --plot runs/quick/figures
    """
    from scalecalc.errors import NotEnoughData
    from scalecalc.calibration.estimate import estimate, heldout_check
    from scalecalc.calibration.store import Store

    fmt = resolve_format(fmt, as_json)
    with Store(out) as store:
        counts = store.counts()
        est = estimate(store, bootstrap=bootstrap, seed=seed)
        try:
            held = heldout_check(store)
        except NotEnoughData as exc:
            held = {"error": str(exc)}
        figures = _plots(store, held, plot) if plot is not None else []
    if fmt is not OutputFormat.table:
        emit([{"runs": counts, "estimate": est.to_dict(), "heldout": held,
               "figures": [str(f) for f in figures]}], [], fmt, single=True)
        return
    console = stderr_console()
    _constants_table(est, f"{out}: {est.n_runs} runs, {est.n_sizes} sizes "
                          f"({', '.join(f'{n} {s}' for s, n in counts.items() if n)})")
    if "error" in held:
        console.print(f"held-out check: {held['error']}")
    else:
        emit([held], [
            Column("held-out run", "run_id", justify="left"), Column("N", "N", format_count),
            Column("measured", "final_measured", _loss),
            Column("predicted", "final_predicted", _loss),
            Column("final error", "final_rel_error", lambda x: f"{100 * x:+.2f}%"),
            Column("curve rms", "rms_rel_error", lambda x: f"{100 * x:.2f}%"),
        ], OutputFormat.table, title="held-out check: refit without the largest model, "
                                     "predict its learning curve", warnings=held["warnings"])
    for f in figures:
        console.print(f"wrote {f}")


def _plots(store, held: dict, folder: Path) -> list[Path]:
    """Learning curves (log-log) and the held-out prediction as PNG files."""
    from scalecalc.errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in store.runs("done"):
        pts = [p for p in store.points(r.id) if p.val_loss is not None and p.step > 0]
        if pts:
            ax.plot([p.tokens for p in pts], [p.val_loss for p in pts], lw=1,
                    label=f"N={format_count(r.params.get('non_embedding', 0))} "
                          f"B={r.config.get('batch_size')}")
    ax.set(xscale="log", yscale="log", xlabel="tokens", ylabel="validation loss (nats/token)",
           title="learning curves")
    ax.legend(fontsize=6, ncol=2)
    out.append(_save(fig, folder / "learning_curves.png"))
    if "error" not in held:
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.plot(held["steps"], held["measured"], "o", ms=3, label="measured")
        ax.plot(held["steps"], held["predicted"], "-", label="predicted (refit without it)")
        ax.set(xscale="log", yscale="log", xlabel="step", ylabel="validation loss",
               title=f"held-out run {held['run_id']} (N={format_count(held['N'])})")
        ax.legend()
        out.append(_save(fig, folder / "heldout.png"))
    plt.close("all")
    return out


def _save(fig, path: Path) -> Path:
    import os

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


from scalecalc.cli.base import app  # noqa: E402  (mounted last: the registry imports this module)

app.add_typer(calibrate_app, name="calibrate")
