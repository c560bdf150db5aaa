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

    The held-out check fits L(N) = (N_c/N)^alpha_N (Kaplan eq 1.1) to the final losses of every
    seed of the smaller sizes and predicts the largest size's final loss, with an interval for one
    new seed (bootstrap refits plus seed-to-seed noise), against the mean and each of its measured
    seeds; as a second row, the learning-curve law (eq 1.6) refitted on the smaller sizes predicts
    the largest run's whole curve. The spread of final losses over seeds is shown per size.

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
            _heldout_rows(held),
            [
                Column("prediction", "check", justify="left"),
                # emit shows a missing value (None) as "-"
                Column("predicted", "predicted", fmt_loss),
                Column("interval", "interval", lambda v: f"[{v[0]:.4f}, {v[1]:.4f}]"),
                Column("measured", "measured", fmt_loss),
                Column("seeds", "seeds", lambda v: ", ".join(f"{x:.4f}" for x in v)),
                Column("error", "error", lambda x: f"{100 * x:+.2f}%"),
                Column("covers", "covers"),
                Column("curve rms", "curve_rms", lambda x: f"{100 * x:.2f}%"),
            ],
            OutputFormat.table,
            title=(
                "held-out check: fit L(N) to the final losses of the smaller sizes, predict the largest "
                f"(N={format_count(held['N'])}, run {held['run_id']})"
            ),
            caption=_heldout_caption(held),
            warnings=held["warnings"],
        )
    for f in figures:
        console.print(f"wrote {f}")


def _heldout_rows(held: dict) -> list[dict]:
    """Table rows of ``heldout_check``: the primary eq 1.1 final-loss prediction against the mean and
    each seed of the held-out size, then the secondary eq 1.6 learning-curve prediction."""
    covered = None if held["covered"] is None else f"{held['covered']}/{held['n_seeds']} seeds"
    rows = [
        {
            "check": "final loss: L(N) eq 1.1 on the smaller sizes",
            "predicted": held["final_predicted"],
            "interval": held["final_interval"],
            "measured": held["final_measured"],
            "seeds": held["final_measured_seeds"],
            "error": held["final_rel_error"],
            "covers": covered,
            "curve_rms": None,
        }
    ]
    curve = held.get("curve")
    if curve:
        rows.append(
            {
                "check": "learning curve: L(N, S_min) eq 1.6 refit",
                "predicted": curve["final_predicted"],
                "interval": None,
                "measured": curve["final_measured"],
                "seeds": None,
                "error": curve["final_rel_error"],
                "covers": None,
                "curve_rms": curve["rms_rel_error"],
            }
        )
    return rows


def _heldout_caption(held: dict) -> str:
    law = held["law"]
    text = (
        f"{law['form']}: alpha_N={law['alpha_N']:.4g}, N_c={law['N_c']:.3g}, from {held['n_runs_refit']} runs of "
        f"{held['n_sizes_refit']} sizes; measured = mean over the held-out seeds"
    )
    if held["final_interval"] is not None:
        how = (
            f"{held['interval_replicates']} bootstrap refits"
            if held["interval_method"] == "bootstrap"
            else "the regression's prediction interval"
        )
        text += (
            f"; {100 * held['confidence']:.0f}% interval for one new seed: {how} plus seed noise "
            f"(sd of ln L {held['seed_sd']:.3g} from {held['seed_sd_source']})"
        )
    return text


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
    curve = held.get("curve")
    if "error" not in held and curve:
        fig, ax = plt.subplots(figsize=(7, 5))
        ax.plot(curve["steps"], curve["measured"], "o", ms=3, label="measured")
        ax.plot(curve["steps"], curve["predicted"], "-", label="predicted, eq 1.6 (refit without it)")
        S_end, pred, band = curve["steps"][-1], held["final_predicted"], held["final_interval"]
        ax.errorbar(
            [S_end],
            [pred],
            yerr=[[pred - band[0]], [band[1] - pred]] if band else None,
            fmt="s",
            color="C3",
            capsize=4,
            label="final loss, eq 1.1 L(N) fit" + (" with interval" if band else ""),
        )
        ax.plot([S_end] * held["n_seeds"], held["final_measured_seeds"], "x", color="k", label="measured seeds")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="step",
            ylabel="validation loss",
            title=f"held-out run {curve['run_id']} (N={format_count(held['N'])})",
        )
        ax.legend()
        out.append(save_figure(fig, folder / "heldout.png"))
    plt.close("all")
    return out
