"""Options shared by every command, and the renderers (table, JSON, CSV).

Results go to stdout; warnings, progress and errors to stderr, so ``--format json | jq`` stays
clean. JSON is one document (an object for one row, a list for several); CSV is a header and
rows, with nested blocks flattened to dotted keys (``shape.n_layer``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Callable, Iterable, Sequence

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


def resolve_format(fmt: OutputFormat, as_json: bool) -> OutputFormat:
    return OutputFormat.json if as_json else fmt


@dataclass(frozen=True)
class Column:
    """One table column: its header, the key in the row dict, and how to print the value."""

    header: str
    key: str
    fmt: Callable[[Any], str] = str
    justify: str = "right"


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
    """A header and one line per row; nested blocks become dotted columns, lists join with ';'."""
    nested = any(isinstance(v, dict) for r in rows[:1] for v in r.values())  # rows share one layout
    flat = [flatten(r) for r in rows] if nested else rows
    header = list(dict.fromkeys(k for r in flat for k in r))
    listed = {k for r in flat[:1] for k, v in r.items() if isinstance(v, (list, tuple))}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # writes None as an empty cell
    writer.writerow(header)
    if listed:
        writer.writerows([_joined(r.get(k)) if k in listed else r.get(k) for k in header] for r in flat)
    else:
        writer.writerows([r.get(k) for k in header] for r in flat)
    return buf.getvalue()


def _joined(value: Any) -> Any:
    return ";".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def emit(
    rows: Sequence[dict],
    columns: Sequence[Column],
    fmt: OutputFormat,
    *,
    title: str | None = None,
    caption: str | None = None,
    warnings: Iterable[str] = (),
    single: bool | None = None,
) -> None:
    """Print ``rows`` in the chosen format; warnings go to stderr for the table format.

    ``single`` forces one JSON object (True) or a list (False); by default one row prints as an
    object and several as a list.
    """
    if fmt is OutputFormat.json:
        one = len(rows) == 1 if single is None else single
        sys.stdout.write(dumps_json(rows[0] if one and rows else list(rows)) + "\n")
        return
    if fmt is OutputFormat.csv:
        sys.stdout.write(dumps_csv(rows))
        return
    print_table(rows, columns, title=title, caption=caption)
    print_warnings(warnings)


def print_table(rows, columns, *, title=None, caption=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=_width())
    if title:
        console.print(title, highlight=False, markup=False)
    table = Table(box=box.SIMPLE_HEAVY)
    for col in columns:
        table.add_column(col.header, justify=col.justify, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row, col) for col in columns))
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
