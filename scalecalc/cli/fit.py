"""``scalecalc fit``: fit a scaling law to your own runs and write a law file.

The command parses options, calls :func:`scalecalc.fit.fit_law` and renders the
:class:`~scalecalc.fit.FitResult`. numpy, scipy and the fitting modules are imported inside the
command so that ``scalecalc --help`` and ``scalecalc plan`` never pay for them.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from scalecalc.cli.base import app
from scalecalc.cli.common import (
    Column,
    FormatOption,
    JsonOption,
    OutputFormat,
    dumps_csv,
    dumps_json,
    print_table,
    print_warnings,
    resolve_format,
)
from scalecalc.quantities import format_count, format_sci


class Form(str, Enum):
    chinchilla = "chinchilla"
    gadre = "gadre"
    muennighoff = "muennighoff"
    auto = "auto"
    isoflop = "isoflop"
    envelope = "envelope"
    kaplan = "kaplan"


class Objective(str, Enum):
    huber = "huber"
    mse = "mse"
    asymmetric = "asymmetric"


class Interp(str, Enum):
    auto = "auto"
    parabola = "parabola"
    local = "local"
    akima = "akima"


class KaplanVars(str, Enum):
    N = "N"
    D = "D"
    ND = "ND"


DEFAULT_BUDGETS = ("1e21", "1e23", "1e25")


@app.command("fit")
def fit_command(
    file: Annotated[str, typer.Argument(help="Runs as CSV, TSV or JSONL ('-' reads stdin).", show_default=False)],
    form: Annotated[
        Form,
        typer.Option(
            "--form",
            case_sensitive=False,
            help="chinchilla (approach 3), gadre (Gadre et al. 2024: alpha = beta), muennighoff (repeated data; "
            "needs unique_tokens), auto (the one of chinchilla, gadre with the lowest held-out error), "
            "isoflop (approach 2), envelope (approach 1) or kaplan.",
        ),
    ] = Form.chinchilla,
    holdout: Annotated[
        str,
        typer.Option(
            "--holdout",
            help="Held-out runs to predict: auto (the largest size when 4+ sizes), largest, K largest sizes, a "
            "filter such as 'params > 1e9', or none.",
        ),
    ] = "auto",
    fix: Annotated[
        Optional[list[str]],
        typer.Option("--fix", help="Hold a constant fixed: NAME=VALUE, e.g. alpha=0.34 (repeatable)."),
    ] = None,
    prior: Annotated[
        Optional[list[str]],
        typer.Option(
            "--prior", help="Gaussian prior on a constant: NAME=MEAN±SD (or +-), e.g. E=1.8±0.1 (repeatable)."
        ),
    ] = None,
    compare_forms: Annotated[
        bool,
        typer.Option(
            "--compare-forms", help="Also fit chinchilla and gadre and report their held-out errors side by side."
        ),
    ] = False,
    objective: Annotated[
        Objective,
        typer.Option("--objective", case_sensitive=False, help="Penalty on log-loss residuals, summed over points."),
    ] = Objective.huber,
    delta: Annotated[
        float, typer.Option("--delta", help="Huber threshold in log loss (Hoffmann et al.: 1e-3).")
    ] = 1e-3,
    grid: Annotated[
        str, typer.Option("--grid", help="Starting points: full (Hoffmann's 4500 for chinchilla), coarse, or a count.")
    ] = "full",
    params_col: Annotated[Optional[str], typer.Option("--params-col", help="Column with parameter counts N.")] = None,
    tokens_col: Annotated[Optional[str], typer.Option("--tokens-col", help="Column with training tokens D.")] = None,
    flops_col: Annotated[Optional[str], typer.Option("--flops-col", help="Column with training FLOPs C.")] = None,
    loss_col: Annotated[Optional[str], typer.Option("--loss-col", help="Column with the loss (nats/token).")] = None,
    flops: Annotated[
        str, typer.Option("--flops", help="FLOP convention relating C to N and D (tokens = C / (6 N) under 6nd).")
    ] = "6nd",
    drop_top_loss: Annotated[
        int, typer.Option("--drop-top-loss", min=0, help="Drop the K highest-loss points first (Epoch AI drop 5).")
    ] = 0,
    where: Annotated[
        Optional[list[str]],
        typer.Option("--where", help="Keep rows matching 'COLUMN OP VALUE' (OP: == != < <= > >=); repeatable."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", "-b", min=0, help="Bootstrap replicates for 95% intervals (1000 is typical).")
    ] = 0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for the bootstrap (results do not depend on the core count).")
    ] = 0,
    budget: Annotated[
        Optional[list[str]],
        typer.Option("--budget", "-c", help="Compute budget C for derived N*, D*, loss (repeat or a:b:n)."),
    ] = None,
    output: Annotated[
        Optional[str],
        typer.Option("--output", "-o", help="Write the fitted law as YAML (atomically) for `scalecalc plan --law`."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the written law ([a-z0-9._-]).")] = "fitted",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Save a figure (needs the plot extra).")] = None,
    interp: Annotated[
        Interp,
        typer.Option(
            "--interp",
            case_sensitive=False,
            help="isoflop: auto (an asymmetry test picks parabola or local), parabola in log N (Hoffmann), local "
            "(a parabola weighted about the lowest point) or akima (Porian).",
        ),
    ] = Interp.auto,
    seed_noise: Annotated[
        float,
        typer.Option("--seed-noise", min=0, help="isoflop bootstrap: std of noise added to log loss (Porian: 0.002)."),
    ] = 0.002,
    irreducible: Annotated[bool, typer.Option("--irreducible", help="kaplan: add an irreducible term E.")] = False,
    kaplan_vars: Annotated[
        KaplanVars,
        typer.Option("--kaplan-vars", case_sensitive=False, help="kaplan: L(N) eq 1.1, L(D) eq 1.2 or L(N, D) eq 1.5."),
    ] = KaplanVars.N,
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=1, help="Processes for the bootstrap (default: all cores).")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Fit a scaling law to your runs: constants with intervals, fit quality, allocation.

    Example:

        scalecalc fit runs.csv --drop-top-loss 5 --bootstrap 1000 -o mylaw.yaml
        scalecalc fit runs.csv --holdout 'params > 2e9' --compare-forms -b 200
        scalecalc fit isoflop.csv --form isoflop --json
        scalecalc plan --compute 1e23 --law mylaw.yaml
    """
    from scalecalc.fit import fit_law, read_runs
    from scalecalc.fit.lawfile import check_name
    from scalecalc.fit.models import check_grid
    from scalecalc.fit.runs import check_where
    from scalecalc.flops import get_convention
    from scalecalc.quantities import parse_values

    # Options first, so that a typo is reported before a long read or fit.
    from scalecalc.validate import options, paths

    options.check(
        **{
            "--delta": delta,
            "--seed": seed,
            "--bootstrap": bootstrap,
            "--drop-top-loss": drop_top_loss,
            "--seed-noise": seed_noise,
            "--workers": workers,
        }
    )
    paths.check_outputs({"--output": (output, (".yaml", ".yml")), "--plot": (plot, (".png", ".pdf", ".svg"))})
    get_convention(flops, "--flops")
    check_grid(grid)
    check_where(where or [])
    from scalecalc.fit.constraints import parse_constraints
    from scalecalc.fit.holdout import check_spec

    check_spec(holdout)
    parse_constraints(fix or [], prior or [])
    if output:
        check_name(name)
    budgets = parse_values(list(budget or DEFAULT_BUDGETS), "--budget")
    runs = read_runs(
        file,
        params_col=params_col,
        tokens_col=tokens_col,
        flops_col=flops_col,
        loss_col=loss_col,
        flops_convention=flops,
        where=where or [],
        drop_top_loss=drop_top_loss,
    )
    result = fit_law(
        runs,
        form.value,
        objective=objective.value,
        delta=delta,
        grid=grid,
        bootstrap=bootstrap,
        seed=seed,
        budgets=budgets,
        workers=workers,
        interp=interp.value,
        seed_noise=seed_noise,
        irreducible=irreducible,
        kaplan_vars=kaplan_vars.value,
        holdout=holdout,
        fix=fix or [],
        prior=prior or [],
        compare_forms=compare_forms,
        progress=_progress(),
    )
    if plot:  # the figure first: a failing plot must not leave the law file behind
        from scalecalc.fit.plot import plot_fit
        from scalecalc.plot import announce_written

        announce_written(plot_fit(result, plot))
    if output:
        from scalecalc.fit.lawfile import write_law

        write_law(output, result.to_law(name=name))
    _render(result, runs, resolve_format(fmt, as_json), output)


def _progress():
    """A progress callback that writes to stderr only when a person is watching (a TTY)."""
    if not sys.stderr.isatty():
        return None

    def report(stage, done, total):
        sys.stderr.write(f"\r{stage}: {done}/{total}" + ("\n" if done >= total else ""))
        sys.stderr.flush()

    return report


def _ci(v) -> str:
    return "-" if not v or v[0] is None else f"{_num(v[0])} – {_num(v[1])}"


def _num(v) -> str:
    return "-" if v is None else (f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.4e}")


CONSTANT_COLUMNS = [
    Column("Constant", "name", str, "left"),
    Column("Value", "value", _num),
    Column("95% interval", "interval", _ci),
    Column("Std. error", "stderr", _num),
]
ALLOCATION_COLUMNS = [
    Column("Compute (FLOPs)", "compute", format_sci),
    Column("N*", "params", format_count),
    Column("N* 95% CI", "params_ci", lambda v: f"{format_count(v[0])}–{format_count(v[1])}"),
    Column("D* (tokens)", "tokens", format_count),
    Column("D/N", "tokens_per_param", lambda v: f"{v:.1f}"),
    Column("Loss", "loss", lambda v: f"{v:.4f}"),
    Column("Loss 95% CI", "loss_ci", lambda v: f"{v[0]:.4f}–{v[1]:.4f}"),
]


def _render(result, runs, fmt: OutputFormat, output) -> None:
    data = result.to_dict()
    data["n_dropped"] = int(runs.n_dropped)
    if output:
        data["law_file"] = output
    if fmt is OutputFormat.json:
        sys.stdout.write(dumps_json(data) + "\n")
        return
    rows = [
        {"name": k, "value": v, "interval": data["intervals"].get(k), "stderr": data["stderr"].get(k)}
        for k, v in data["constants"].items()
    ]
    if fmt is OutputFormat.csv:
        sys.stdout.write(
            dumps_csv(
                [
                    {
                        "name": r["name"],
                        "value": r["value"],
                        "lo": (r["interval"] or [None])[0],
                        "hi": (r["interval"] or [None, None])[1],
                        "stderr": r["stderr"],
                    }
                    for r in rows
                ]
            )
        )
        return
    resid = "log loss" if result.form in ("chinchilla", "kaplan") else "log N* about the fit"
    quality = (
        f"objective {result.objective:.6g} ({_objective_label(result)}), residual RMS "
        f"{result.residual_rms:.4g} ({resid}); "
        f"{result.n_points} points used, {runs.n_dropped} dropped; nfev {result.nfev}; "
        f"{'converged' if result.success else 'NOT converged'}"
    )
    print_table(
        rows,
        CONSTANT_COLUMNS,
        title=f"scalecalc fit --form {result.form}: {runs.source}",
        caption=quality + f"\nMethod: {result.method}",
    )
    if result.derived:
        imp = result.implied
        title = (
            f"Implied allocation: a = {imp['a']:.4f}, b = {imp['b']:.4f}" if imp else "Derived at the requested budgets"
        )
        cols = [c for c in ALLOCATION_COLUMNS if any(row.get(c.key) is not None for row in result.derived)]
        print_table(list(result.derived), cols, title=title)
    _render_holdout(data.get("holdout"))
    if data.get("comparison"):
        print_table(
            data["comparison"],
            COMPARISON_COLUMNS,
            title="Forms compared by held-out error (lowest is chosen by --form auto)",
        )
    if output:
        sys.stderr.write(f"wrote {output}\n")
    print_warnings(result.warnings)


HOLDOUT_COLUMNS = [
    Column("N", "params", format_count),
    Column("D (tokens)", "tokens", format_count),
    Column("Actual", "loss", lambda v: f"{v:.4f}"),
    Column("Predicted", "predicted", lambda v: f"{v:.4f}"),
    Column("Error", "rel_error", lambda v: f"{v:+.2%}"),
    Column("95% interval", "interval", lambda v: f"{v[0]:.4f}–{v[1]:.4f}"),
    Column("Covered", "covered", lambda v: "yes" if v else "NO"),
]
COMPARISON_COLUMNS = [
    Column("Form", "form", str, "left"),
    Column("Free", "free_constants", str),
    Column("Residual RMS", "residual_rms", lambda v: f"{v:.4g}"),
    Column("Held-out mean |error|", "holdout_mean_abs_rel_error", lambda v: f"{v:.2%}"),
    Column("Covered", "covered", str),
    Column("Chosen", "chosen", lambda v: "*" if v else ""),
]


def _render_holdout(block) -> None:
    if not block:
        return
    cov = (
        f", intervals cover {block['covered']} of {block['n_held_out']}"
        if "covered" in block
        else " (intervals need --bootstrap)"
    )
    title = (
        f"Held-out check ({block['selection']}): fitted on {block['n_train']} runs up to "
        f"N = {format_count(block['train_params_max'])}, mean |error| "
        f"{block['mean_abs_rel_error']:.2%}{cov}"
    )
    rows = block["runs"]
    shown = rows if len(rows) <= 20 else sorted(rows, key=lambda r: -abs(r["rel_error"]))[:20]
    cols = [c for c in HOLDOUT_COLUMNS if any(r.get(c.key) is not None for r in shown)]
    print_table(shown, cols, title=title + ("" if len(rows) <= 20 else " (20 largest errors)"))


def _objective_label(result) -> str:
    if result.objective_name in ("wls", "ols"):
        return ("weighted " if result.objective_name == "wls" else "") + "sum of squares of log N*"
    if result.delta is None:
        return f"sum of {result.objective_name}"
    return f"sum of {result.objective_name}, delta {result.delta:g}"
