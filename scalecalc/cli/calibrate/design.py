"""``scalecalc calibrate design``: propose the calibration sweep that pins the law down best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scalecalc.cli.calibrate.common import calibrate_app, save_figure
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


@calibrate_app.command("design")
def design_sweep(
    target_compute: Annotated[
        Optional[float], typer.Option("--target-compute", help="FLOPs of the training run being planned (C = 6ND).")
    ] = None,
    target_params: Annotated[
        Optional[float],
        typer.Option(
            "--target-params", help="Or its parameter count: the target is the prior's compute optimal compute for it."
        ),
    ] = None,
    budget_flops: Annotated[
        Optional[float], typer.Option("--budget-flops", help="Calibration budget in FLOPs (C = 6ND over all runs).")
    ] = None,
    budget_gpu_hours: Annotated[
        Optional[float], typer.Option("--budget-gpu-hours", help="Or in GPU hours, with --gpu (and --mfu).")
    ] = None,
    gpu: Annotated[str, typer.Option("--gpu", help="GPU of the calibration runs.")] = "h100",
    mfu: Annotated[float, typer.Option("--mfu", help="Model FLOP utilisation of those runs.")] = 0.4,
    prior: Annotated[
        str, typer.Option("--prior", help="Law simulated from (Chinchilla form): a law name or a law file.")
    ] = "besiroglu2024",
    replicates: Annotated[
        int, typer.Option("--replicates", min=20, help="Simulations of the best sweeps (the reported interval).")
    ] = 400,
    confidence: Annotated[
        float, typer.Option("--confidence", min=0.5, max=0.99, help="Coverage of the predicted intervals.")
    ] = 0.8,
    seed_noise: Annotated[
        float,
        typer.Option(
            "--seed-noise",
            min=0.0,
            help="Std of ln(loss) between seeds (0.01: ~0.02 nats at L = 2, Kaplan et al. 2020).",
        ),
    ] = 0.01,
    min_params: Annotated[float, typer.Option("--min-params", min=1.0, help="Smallest model a sweep may use.")] = 1e6,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulations.")] = 0,
    recipe: Annotated[
        Path, typer.Option("--recipe", help="Write the best sweep as a recipe for `calibrate run`.", dir_okay=False)
    ] = Path("design.yaml"),
    plot: Annotated[
        Optional[Path],
        typer.Option("--plot", help="Write the figure of budget against interval width (PNG).", dir_okay=False),
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Propose the calibration sweep that best pins down N*, D* and loss at a target.

    Searches sweep shapes, simulates each from the prior law with seed noise, fits every
    replicate as `calibrate fit` does, and reports the predicted intervals at the target with
    the sweep's cost, the budget trade-off, and the best sweep as a recipe.

    Example:
        scalecalc calibrate design --target-compute 1e23 --budget-gpu-hours 50 --gpu h100
        scalecalc calibrate run design.yaml --out runs/design
    """
    fmt = resolve_format(fmt, as_json)
    from scalecalc.calibration.design import Prior, compute_for_params, design, work
    from scalecalc.calibration.design import shapes as all_shapes
    from scalecalc.calibration.design.search import feasible
    from scalecalc.laws import load_law

    law_prior = Prior.from_law(load_law(prior, "--prior"))
    target = _target(law_prior, target_compute, target_params, compute_for_params)
    cost, cost_option, gpu_obj = _budget(budget_flops, budget_gpu_hours, gpu, mfu)
    n_cands = len(feasible(all_shapes(), law_prior, cost, target, min_params))
    with _Bar(work(max(n_cands, 1), replicates, True)) as bar:
        result = design(
            law_prior,
            target,
            cost,
            replicates=replicates,
            confidence=confidence,
            noise=seed_noise,
            seed=seed,
            min_params=min_params,
            cost_option=cost_option,
            progress=bar.advance,
        )
    from scalecalc.calibration.design import write_recipe

    path = write_recipe(result, recipe)
    hours = _hours(gpu_obj, mfu)
    figure = _plot(result, plot, hours) if plot is not None else None
    best = result.best.to_dict()
    summary = {
        "target_flops": target,
        "prior": law_prior.name,
        "budget_flops": cost,
        "budget_gpu_hours": cost * hours,
        "gpu": gpu_obj.name,
        "mfu": mfu,
        "confidence": confidence,
        "seed_noise": seed_noise,
        "candidates": result.candidates,
        "prior_optimum": dict(zip(("N_star", "D_star", "loss"), result.truth)),
        "best": {**best, "gpu_hours": best["cost_flops"] * hours, "runs_detail": result.best.runs.rows()},
        "tradeoff": [{**r, "gpu_hours": r["sweep_cost_flops"] * hours} for r in result.tradeoff],
        "recipe": str(path),
        "figure": str(figure) if figure else None,
    }
    if fmt is OutputFormat.json:
        emit([summary], [], fmt, single=True)
        return
    rows = [_row(r, hours) for r in summary["tradeoff"]]
    if fmt is OutputFormat.csv:
        emit(rows, [], fmt)
        return
    lo, mid, hi = best["N_star"]
    console = stderr_console()
    emit(
        rows,
        [
            Column("budget", "budget_flops", format_sci),
            Column("budget GPU-h", "budget_gpu_hours", lambda x: f"{x:.3g}"),
            Column("sweep GPU-h", "gpu_hours", lambda x: f"{x:.3g}"),
            Column("best sweep", "label", justify="left"),
            Column("runs", "runs"),
            Column("N* low", "N_low", format_count),
            Column("N* high", "N_high", format_count),
            Column("D* low", "D_low", format_count),
            Column("D* high", "D_high", format_count),
            Column("loss low", "L_low", lambda x: f"{x:.4f}"),
            Column("loss high", "L_high", lambda x: f"{x:.4f}"),
            Column("width", "width", lambda x: f"x{x:.3f}"),
        ],
        OutputFormat.table,
        title=f"sweep design for {target:.3g} FLOPs (prior {law_prior.name}, "
        f"{confidence:.0%} intervals, {result.candidates} shapes searched): the "
        "trade-off, budget vs interval",
    )
    console.print(
        f"best for {cost:.3g} FLOPs ({cost * hours:.3g} {gpu_obj.name} GPU-hours at "
        f"MFU {mfu:g}): {best['label']}, {best['runs']} runs, N* "
        f"{format_count(lo)}..{format_count(hi)} (prior {format_count(mid)}); "
        f"recipe -> {path}",
        highlight=False,
    )
    if figure:
        console.print(f"wrote {figure}")


def _target(prior, compute, params, compute_for_params) -> float:
    if (compute is None) == (params is None):
        raise UsageError("give exactly one of --target-compute (FLOPs) and --target-params")
    if compute is not None:
        if not compute > 0:
            raise UsageError(f"--target-compute: {compute:g} must be > 0 FLOPs, e.g. 1e23")
        return float(compute)
    if not params > 0:
        raise UsageError(f"--target-params: {params:g} must be > 0, e.g. 7e9")
    return compute_for_params(prior, params)


def _budget(flops, gpu_hours, gpu, mfu):
    from scalecalc.hardware import budget_flops, get_gpu

    gpu_obj = get_gpu(gpu)
    if (flops is None) == (gpu_hours is None):
        raise UsageError("give exactly one of --budget-flops and --budget-gpu-hours (with --gpu)")
    if flops is not None:
        if not flops > 0:
            raise UsageError(f"--budget-flops: {flops:g} must be > 0, e.g. 1e20")
        return float(flops), "--budget-flops", gpu_obj
    if not gpu_hours > 0:
        raise UsageError(f"--budget-gpu-hours: {gpu_hours:g} must be > 0, e.g. 50")
    return float(budget_flops(gpu_obj, gpu_hours=gpu_hours, mfu=mfu)), "--budget-gpu-hours", gpu_obj


def _hours(gpu_obj, mfu: float) -> float:
    """GPU-hours per FLOP at this MFU (docs/reference.md §14)."""
    return 1.0 / (3600.0 * gpu_obj.peak_flops() * mfu)


def _row(r: dict, hours: float) -> dict:
    return {
        "budget_flops": r["budget_flops"],
        "budget_gpu_hours": r["budget_flops"] * hours,
        "sweep_cost_flops": r["sweep_cost_flops"],
        "gpu_hours": r["gpu_hours"],
        "label": r["label"],
        "runs": r["runs"],
        "N_low": r["N_star"][0],
        "N_high": r["N_star"][2],
        "D_low": r["D_star"][0],
        "D_high": r["D_star"][2],
        "L_low": r["loss"][0],
        "L_high": r["loss"][2],
        "width": r["N_star"][2] / r["N_star"][0],
    }


def _plot(result, path: Path, hours: float) -> Path:
    from scalecalc.errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.tradeoff
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [r["budget_flops"] * hours for r in rows]
    ax.plot(x, [r["N_star"][2] / r["N_star"][0] for r in rows], "o-")
    ax.set(
        xscale="log",
        xlabel="calibration budget (GPU-hours)",
        ylabel=f"N* interval width (high/low, {result.confidence:.0%})",
        title=f"sweep design for {result.target_flops:.3g} FLOPs",
    )
    out = save_figure(fig, path)
    plt.close(fig)
    return out


class _Bar:
    """A rich progress bar on stderr over the replicate fits (only on a terminal)."""

    def __init__(self, total: int):
        self.total = total
        self.progress = None

    def __enter__(self):
        console = stderr_console()
        if console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("design"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("design", total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=n)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False
