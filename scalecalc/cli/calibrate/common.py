"""What the ``calibrate`` subcommands share: the sub-app, the OUT options and value formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalecalc.cli.common import Column, OutputFormat, emit

calibrate_app = typer.Typer(
    help="Train tiny GPT sweeps on your data and hardware, re-estimate the scaling constants "
    "(N_c, alpha_N, B*, alpha_B, S_c, alpha_S; E, A, B, alpha, beta) and write a law file.",
    no_args_is_help=True,
    rich_markup_mode=None,  # help renders as written (see scalecalc.cli.base)
)

OutOption = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Results folder (created; holds results.sqlite and checkpoints/).", file_okay=False
    ),
]
DirArg = Annotated[Path, typer.Argument(help="Results folder written by `calibrate run`.", file_okay=False)]


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_loss(x) -> str:
    return f"{x:.4f}"


def constants_table(est, title: str) -> None:
    def g(x):
        return f"{x:.4g}"

    emit(
        est.rows(),
        [
            Column("constant", "name", justify="left"),
            Column("value", "value", g),
            Column("low", "low", g),
            Column("high", "high", g),
            Column("unit", "unit", justify="left"),
            Column("meaning", "meaning", justify="left"),
        ],
        OutputFormat.table,
        title=title,
        warnings=est.warnings,
    )


def save_figure(fig, path: Path) -> Path:
    import os

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path
