"""Options shared by every command, and the renderers (table, JSON, CSV).

Results go to stdout; warnings, progress and errors to stderr, so ``--format json | jq`` stays
clean. The output contract (README "Output formats", schemas in ``scalecalc/schemas/``):

- JSON is one object per command: ``{"rows": [...], "notes": [...]}`` for the commands that print
  rows (``plan``, ``compare`` adds ``spreads``, ``laws``, ``gpus``), whatever the number of rows;
  a command that reports one thing (``flops``, ``fit``) prints that object.
- Floats stay floats (``2.0``, ``1.46e+24``), never integers; only counts (layers, heads, steps
  of a shape) are integers. NaN and infinity are ``null``.
- CSV is a header and rows, nested blocks flattened to dotted keys (``shape.n_layer``), a list
  in one cell joined with ``;`` and written with :func:`format_cell` (``1.4e+18;1.3e+22``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", case_sensitive=False, help="Output format: table, json or csv."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Shorthand for --format json.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No warnings on stderr (they stay in the JSON and CSV rows).")
]


def resolve_format(fmt: OutputFormat, as_json: bool) -> OutputFormat:
    return OutputFormat.json if as_json else fmt


@dataclass(frozen=True)
class Column:
    """One table column: its header, the key in the row dict, and how to print the value."""

    header: str
    key: str
    fmt: Callable[[Any], str] = str
    justify: str = "right"
    wrap: bool = True  # False: a name or number is never split across lines (it may be cut with …)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers, tuples become lists."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(data: Any) -> str:
    """Indented JSON; bulk output (over 1,000 rows) is compact, because only compact JSON gets
    the C encoder (indenting 100,000 plan rows takes seconds)."""
    indent = None if isinstance(data, list) and len(data) > 1000 else 2
    try:  # plan rows are plain Python values already; clean only when serialising fails
        return json.dumps(data, indent=indent, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_clean(data), indent=indent)


def flatten(row: dict, prefix: str = "") -> dict:
    """{'shape': {'n_layer': 4}} -> {'shape.n_layer': 4}; lists are joined with ';'."""
    out: dict = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def dumps_csv(rows: Sequence[dict]) -> str:
    """A header and one line per row; nested blocks become dotted columns, every cell is written
    as :func:`format_cell` says (lists joined with ';', missing values and NaN as an empty cell)."""
    nested = any(isinstance(v, dict) for r in rows[:1] for v in r.values())  # rows share one layout
    flat = [flatten(r) for r in rows] if nested else rows
    header = list(dict.fromkeys(k for r in flat for k in r))
    # format_cell per cell costs ~1 s per 100,000 plan rows: apply it only to the columns that
    # need it (lists, numpy scalars, NaN); the others are written as they are
    special = [k for k in header if any(_needs_format(r.get(k)) for r in flat)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    if special:
        index = [header.index(k) for k in special]
        for r in flat:
            cells = [r.get(k) for k in header]
            for i in index:
                cells[i] = format_cell(cells[i])
            writer.writerow(cells)
    else:
        writer.writerows([r.get(k) for k in header] for r in flat)
    return buf.getvalue()


def _needs_format(value: Any) -> bool:
    t = type(value)
    if t is float:
        return value != value
    return not (t is str or t is int or t is bool or value is None)


def format_cell(value: Any) -> Any:
    """One CSV cell, one way: a list is its items joined with ';' (``1.4e+18;1.3e+22``), each item
    as its own cell would be; None and NaN are empty; numbers are Python's shortest round-trip
    text; anything else is str()."""
    if isinstance(value, (list, tuple)):
        return ";".join(str(format_cell(v)) for v in value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value


def emit(
    rows: Sequence[dict],
    columns: Sequence[Column],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    caption: str | None = None,
    warnings: Iterable[str] = (),
    notes: Sequence[str] = (),
    single: bool = False,
    quiet: bool = False,
) -> None:
    """Print ``rows`` in the chosen format (the JSON contract: README "Output formats").

    JSON is one object: ``{"rows": [...], "notes": [...]}`` whatever the number of rows, or the
    single row itself when ``single`` (a command that reports one thing, such as ``flops``).
    ``warnings`` go to stderr in every format (tagged ``warning:``) unless ``quiet``; ``notes``
    are command-level remarks that also go into the JSON document.
    """
    if fmt is OutputFormat.json:
        doc = rows[0] if single else {"rows": list(rows), "notes": list(notes)}
        sys.stdout.write(dumps_json(doc) + "\n")
    elif fmt is OutputFormat.csv:
        sys.stdout.write(dumps_csv(rows))
    else:
        print_table(rows, columns, title=title, caption=caption)
    if not quiet:
        print_warnings([*notes, *warnings])


def print_table(rows, columns, *, title=None, caption=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=_width())
    if title:
        console.print(title, highlight=False, markup=False)
    cells = [[_cell(row, col) for col in columns] for row in rows]
    natural = sum(max([len(col.header), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns))
    # SIMPLE_HEAVY puts 3 columns between cells (padding + divider); on a narrow terminal one
    # space is enough and keeps every number whole
    tight = natural + 3 * len(columns) + 1 > console.width
    table = Table(box=box.SIMPLE_HEAVY, padding=(0, 0) if tight else (0, 1))
    for col in columns:
        if col.wrap:
            table.add_column(col.header, justify=col.justify, overflow="fold")
        else:
            table.add_column(col.header, justify=col.justify, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*row)
    console.print(table)
    if caption:
        console.print(caption, highlight=False, markup=False, style="dim")


def _width() -> int | None:
    """The terminal's width; when piped (no terminal, no COLUMNS) a generous 160 columns rather
    than rich's 80, so wide tables are not folded into unreadable columns in logs and files."""
    import os

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return 160


def output_width() -> int:
    """Columns to wrap text lines to: $COLUMNS, else the terminal's, else 160 when piped."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return 160


def wrap_line(text: str, indent: str = "    ") -> str:
    """One logical line wrapped at spaces to :func:`output_width` (never inside a number or a
    name), continuation lines indented."""
    import textwrap

    return (
        "\n".join(
            textwrap.wrap(
                text,
                width=max(40, output_width() - 1),
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
        or text
    )


def _cell(row: dict, col: Column) -> str:
    value: Any = row
    for part in col.key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return "-"
    return col.fmt(value)


def print_warnings(warnings: Iterable[str]) -> None:
    seen: list[str] = []
    for w in warnings:
        if w not in seen:
            seen.append(w)
    for w in seen:
        sys.stderr.write(f"warning: {w}\n")


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)
