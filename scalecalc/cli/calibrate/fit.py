"""``scalecalc calibrate fit``: estimate the constants from the stored runs and write a law file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scalecalc.cli.calibrate.common import DirArg, calibrate_app, constants_table
from scalecalc.cli.common import (
    FormatOption,
    JsonOption,
    OutputFormat,
    emit,
    resolve_format,
)


@calibrate_app.command("fit")
def fit(
    out: DirArg,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Law file to write (default OUT/law.yaml).", dir_okay=False)
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates over runs for the intervals (0: none).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    name: Annotated[str, typer.Option("--name", help="Name of the law in the file.")] = "calibrated",
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
    from scalecalc.laws.lawfile import check_name

    check_name(name)  # before the estimate: a name `plan --law` would refuse is a usage error
    fmt = resolve_format(fmt, as_json)
    with Store(out) as store:
        est = estimate(store, bootstrap=bootstrap, seed=seed)
    path = est.write_law(output or out / "law.yaml", name)
    if fmt is OutputFormat.table:
        constants_table(est, f"{name}: {est.n_runs} runs, {est.n_sizes} sizes -> {path}")
    else:
        emit([{**est.to_dict(), "law_file": str(path)}], [], fmt, single=True)
