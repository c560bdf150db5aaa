"""``scalecalc calibrate report``: constants with intervals, a held-out check, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scalecalc.cli.calibrate.common import (
    DirArg,
    calibrate_app,
    constants_table,
    fmt_loss,
    save_figure,
)
from scalecalc.cli.common import (
    Column,
    FormatOption,
    JsonOption,
    OutputFormat,
    emit,
    resolve_format,
    stderr_console,
)
from scalecalc.quantities import format_count


@calibrate_app.command("report")
def report(
    out: DirArg,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot", help="Write figures (learning curves, held-out prediction) to this folder.", file_okay=False
        ),
    ] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates for the intervals.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Runs, constants with intervals, the seed spread, and a held-out check of the largest model.

    The held-out check refits without the largest model and predicts its whole learning curve;
    its final loss gets a bootstrap interval (seeds resampled when the recipe has several), and
    the spread of final losses over seeds is shown per size.

    Example:
        scalecalc calibrate report runs/quick
        scalecalc calibrate report runs/quick --plot runs/quick/figures
    """
    from scalecalc.calibration.estimate import curves_from_store, estimate, heldout_check, seed_spread
    from scalecalc.calibration.store import Store
    from scalecalc.errors import NotEnoughData

    fmt = resolve_format(fmt, as_json)
    with Store(out) as store:
        counts = store.counts()
        est = estimate(store, bootstrap=bootstrap, seed=seed)
        spread = seed_spread(curves_from_store(store))
        try:
            held = heldout_check(store, bootstrap=bootstrap, seed=seed)
        except NotEnoughData as exc:
            held = {"error": str(exc)}
        figures = _plots(store, held, plot) if plot is not None else []
    if fmt is not OutputFormat.table:
        emit(
            [
                {
                    "runs": counts,
                    "estimate": est.to_dict(),
                    "heldout": held,
                    "seed_spread": spread,
                    "figures": [str(f) for f in figures],
                }
            ],
            [],
            fmt,
            single=True,
        )
        return
    console = stderr_console()
    constants_table(
        est, f"{out}: {est.n_runs} runs, {est.n_sizes} sizes ({', '.join(f'{n} {s}' for s, n in counts.items() if n)})"
    )
    _spread_table(spread, console)
    if "error" in held:
        console.print(f"held-out check: {held['error']}")
    else:
        emit(
            [held],
            [
                Column("held-out run", "run_id", justify="left"),
                Column("N", "N", format_count),
                Column("measured", "final_measured", fmt_loss),
                Column("predicted", "final_predicted", fmt_loss),
                Column("final error", "final_rel_error", lambda x: f"{100 * x:+.2f}%"),
                Column("interval", "final_interval", lambda v: f"[{v[0]:.4f}, {v[1]:.4f}]" if v else "-"),
                Column("covers", "covers_measured", lambda v: "-" if v is None else ("yes" if v else "no")),
                Column("curve rms", "rms_rel_error", lambda x: f"{100 * x:.2f}%"),
            ],
            OutputFormat.table,
            title="held-out check: refit without the largest model, predict its learning curve",
            warnings=held["warnings"],
        )
    for f in figures:
        console.print(f"wrote {f}")


def _spread_table(rows: list[dict], console) -> None:
    """Final loss over the seeds of each configuration (recipe ``seeds: N``)."""
    if not any(r["seeds"] > 1 for r in rows):
        console.print(
            "seed spread: one seed per configuration (add `seeds: 3` to the recipe for the seed-to-seed noise)"
        )
        return
    emit(
        [r for r in rows if r["seeds"] > 1],
        [
            Column("N", "N", format_count),
            Column("batch (tokens)", "batch_tokens", format_count),
            Column("seeds", "seeds"),
            Column("mean", "mean", fmt_loss),
            Column("std", "std", lambda x: "-" if x is None else f"{x:.4f}"),
            Column("low", "low", fmt_loss),
            Column("high", "high", fmt_loss),
            Column("spread", "rel_spread", lambda x: f"{100 * x:.2f}%"),
        ],
        OutputFormat.table,
        title="final loss over seeds, per configuration (nats/token)",
    )


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
            ax.plot(
                [p.tokens for p in pts],
                [p.val_loss for p in pts],
                lw=1,
                label=f"N={format_count(r.params.get('non_embedding', 0))} B={r.config.get('batch_size')}",
            )
    ax.set(xscale="log", yscale="log", xlabel="tokens", ylabel="validation loss (nats/token)", title="learning curves")
    ax.legend(fontsize=6, ncol=2)
    out.append(save_figure(fig, folder / "learning_curves.png"))
    if "error" not in held:
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.plot(held["steps"], held["measured"], "o", ms=3, label="measured")
        ax.plot(held["steps"], held["predicted"], "-", label="predicted (refit without it)")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="step",
            ylabel="validation loss",
            title=f"held-out run {held['run_id']} (N={format_count(held['N'])})",
        )
        ax.legend()
        out.append(save_figure(fig, folder / "heldout.png"))
    plt.close("all")
    return out
