"""Reading training runs (CSV, TSV or JSONL) into a :class:`Runs` table of numpy arrays.

Columns are matched case-insensitively through aliases (``params``/``N``/``Model Size``,
``tokens``/``D``, ``flops``/``C``/``Training FLOP``, ``loss``), so the Epoch AI extraction of
Hoffmann et al. (2022) Fig. 4 reads as is; any two of N, D, C suffice, the third following from
the FLOP convention (``6nd``: C = 6·N·D, Kaplan et al. 2020 eq. 2.2 / Hoffmann et al. 2022 §3).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalecalc.errors import DataError, MalformedRuns, MissingInput, NotEnoughData, UsageError

# Normalised header -> role. Headers are lower-cased with '_' and '-' read as spaces.
ALIASES = {
    "params": (
        "params",
        "n",
        "model size",
        "parameters",
        "num params",
        "n params",
        "nparams",
        "param count",
        "model params",
        "size",
    ),
    "tokens": ("tokens", "d", "data", "num tokens", "n tokens", "training tokens", "train tokens", "dataset size"),
    "flops": ("flops", "c", "compute", "training flop", "training flops", "train flops", "flop"),
    "loss": ("loss", "l", "val loss", "validation loss", "eval loss", "final loss", "test loss"),
    "run": ("run", "run id", "model", "model id", "name"),
    "step": ("step", "steps", "iteration", "iter"),
    "budget": ("budget", "flop budget", "compute budget", "isoflop"),
    "unique_tokens": ("unique tokens", "unique data", "u d", "ud"),
}
_NUMERIC_ROLES = ("params", "tokens", "flops", "loss", "step", "budget", "unique_tokens")
_WHERE = re.compile(r"^\s*([^=<>!]+?)\s*(==|!=|<=|>=|=|<|>)\s*([^=<>!\s].*?)\s*$")


@dataclass(frozen=True)
class Runs:
    """Training runs, one row per (run, step) measurement.

    Attributes
    ----------
    params, tokens, flops, loss : ndarray
        N (parameters), D (training tokens), C (training FLOPs) and loss (nats/token), all > 0.
    run, step, budget : ndarray or None
        Optional run ids (learning curves), step numbers and nominal FLOP budgets (IsoFLOP).
    source : str
        Where the rows came from (file name or ``-``), for provenance.
    flops_convention : str
        The FLOP convention (:mod:`scalecalc.flops`) relating C to N·D (``6nd``: C = 6·N·D).
    n_dropped : int
        Rows removed by ``where`` filters and ``drop_top_loss``.
    """

    params: np.ndarray
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    run: np.ndarray | None = None
    step: np.ndarray | None = None
    budget: np.ndarray | None = None
    source: str = ""
    flops_convention: str = "6nd"
    n_dropped: int = 0
    lines: np.ndarray | None = field(default=None, repr=False)  # input line of each row
    unique_tokens: np.ndarray | None = None  # U_D: distinct tokens seen (data repeated if D > U_D)

    def __len__(self) -> int:
        return len(self.loss)

    def subset(self, mask) -> Runs:
        """Rows selected by a boolean mask or an index array (bootstrap resampling)."""
        pick = lambda a: None if a is None else a[mask]  # noqa: E731
        return Runs(
            self.params[mask],
            self.tokens[mask],
            self.flops[mask],
            self.loss[mask],
            pick(self.run),
            pick(self.step),
            pick(self.budget),
            self.source,
            self.flops_convention,
            self.n_dropped,
            pick(self.lines),
            pick(self.unique_tokens),
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        params=None,
        tokens=None,
        flops=None,
        loss,
        run=None,
        step=None,
        budget=None,
        flops_convention="6nd",
        source="arrays",
        unique_tokens=None,
    ) -> Runs:
        """Build runs from arrays; any two of params, tokens, flops (the third is derived)."""
        k = flops_per_param_token(flops_convention)
        N, D, C = _complete(_arr(params), _arr(tokens), _arr(flops), k, "arrays")
        return cls(
            N,
            D,
            C,
            _arr(loss),
            None if run is None else np.asarray(run),
            _arr(step),
            _arr(budget),
            source,
            flops_convention,
            unique_tokens=_arr(unique_tokens),
        )


def _arr(x):
    return None if x is None else np.asarray(x, dtype=float)


def flops_per_param_token(convention: str) -> float | None:
    """The k of C = k·N·D under a FLOP convention of :mod:`scalecalc.flops`.

    6 for ``6nd``, ``kaplan`` and ``head`` (Kaplan et al. 2020 eq. 2.2; N as each convention
    counts it), 5.711 for ``llama3``; None for conventions that need the model shape.
    """
    from scalecalc.flops import LLAMA3_FACTOR, get_convention

    conv = get_convention(str(convention), "--flops")
    if conv.needs_shape:
        return None
    return LLAMA3_FACTOR if conv.name == "llama3" else 6.0


def read_runs(
    path,
    *,
    params_col=None,
    tokens_col=None,
    flops_col=None,
    loss_col=None,
    flops_convention="6nd",
    where=(),
    drop_top_loss=0,
) -> Runs:
    """Read runs from a CSV, TSV or JSONL file (``'-'`` reads standard input).

    Parameters
    ----------
    path : str or Path
        The file; ``-`` for stdin. Format from the suffix (.csv, .tsv, .jsonl/.ndjson) or sniffed.
    params_col, tokens_col, flops_col, loss_col : str, optional
        Explicit column names, overriding the aliases.
    flops_convention : str
        A convention of :mod:`scalecalc.flops` (default ``6nd``): tokens D = C / (6·N) when only
        N and C are given.
    where : sequence of str
        Filters ``'COL OP VALUE'`` with OP one of == != < <= > >= (parsed, never evaluated).
    drop_top_loss : int
        Drop the K highest-loss rows (Besiroglu et al. 2024 drop 5 of Hoffmann's Fig. 4 points).

    Raises
    ------
    DataError
        Empty file, missing columns (the columns found are named), non-numeric or non-positive
        values (their line numbers are named).
    """
    name = "stdin" if str(path) == "-" else str(path)
    text = _read_stdin() if str(path) == "-" else _read_text(path)
    header, rows, lines = _parse_table(text, name, str(path))
    filters = [_parse_where(w) for w in where]
    cols = _resolve_columns(header, name, params=params_col, tokens=tokens_col, flops=flops_col, loss=loss_col)
    for col, _, _ in filters:
        if _norm(col) not in {_norm(h) for h in header}:
            raise UsageError(f"--where: no column {col!r} in {name}; columns found: {', '.join(header)}")
    keep = [i for i, row in enumerate(rows) if all(_passes(row, header, f, name) for f in filters)]
    n_filtered = len(rows) - len(keep)
    if not keep:
        raise NotEnoughData(f"{name}: no rows left after --where filters {list(where)}")
    rows, lines = [rows[i] for i in keep], np.asarray([lines[i] for i in keep])
    values = {
        role: _numeric(rows, lines, header.index(col), col, name, role)
        for role, col in cols.items()
        if role in _NUMERIC_ROLES
    }
    k = flops_per_param_token(flops_convention)
    N, D, C = _complete(values.get("params"), values.get("tokens"), values.get("flops"), k, name)
    run = np.asarray([r[header.index(cols["run"])] for r in rows]) if "run" in cols else None
    runs = Runs(
        N,
        D,
        C,
        values["loss"],
        run,
        values.get("step"),
        values.get("budget"),
        name,
        flops_convention,
        n_filtered,
        lines,
        values.get("unique_tokens"),
    )
    check_checkpoints(runs)
    return _drop_top(runs, drop_top_loss, name)


def check_checkpoints(runs: Runs) -> None:
    """Intermediate checkpoints (several rows per run) must not lose tokens as steps advance.

    Rows of one run are taken in step order when there is a step column, else in file order.
    Raises :class:`MalformedRuns` (exit 2) naming the run and the lines.
    """
    if runs.run is None:
        return
    for rid in np.unique(runs.run):
        idx = np.flatnonzero(runs.run == rid)
        if runs.step is not None:
            idx = idx[np.argsort(runs.step[idx], kind="stable")]
        drop = np.flatnonzero(np.diff(runs.tokens[idx]) < 0)
        if drop.size:
            i, j = idx[drop[0]], idx[drop[0] + 1]
            where = (
                f"lines {int(runs.lines[i])} and {int(runs.lines[j])}"
                if runs.lines is not None
                else f"rows {i + 1} and {j + 1}"
            )
            raise MalformedRuns(
                f"{runs.source}: tokens decrease within run {str(rid)!r} ({where}: "
                f"{runs.tokens[i]:.4g} then {runs.tokens[j]:.4g}); a run's "
                "checkpoints must have non-decreasing tokens; fix the run ids "
                "or the order of its rows"
            )


def _read_text(path) -> str:
    """The file's text, bounded and UTF-8 only (scalecalc.validate.files)."""
    from scalecalc.validate import files, limits

    if not Path(path).exists():
        raise MissingInput(f"{path}: no such file; give the path of a CSV, TSV or JSONL file of runs")

    return files.read_text(
        path,
        limit=limits.MAX_RUNS_FILE_BYTES,
        limit_name="MAX_RUNS_FILE_BYTES",
        kind="CSV, TSV or JSONL file of runs",
        error=DataError,
    )


def _read_stdin() -> str:
    from scalecalc.validate.files import read_stdin

    return read_stdin("FILE", stream=sys.stdin, error=DataError)


def _parse_table(text: str, name: str, path: str):
    """Return (header, rows of strings, input line numbers)."""
    if not text.strip():
        raise DataError(f"{name}: the file is empty; give a header line and one row per run")
    first = text.lstrip()[0]
    if path.endswith((".jsonl", ".ndjson", ".json")) or first in "{[":
        return _parse_jsonl(text, name)
    delim = "\t" if path.endswith(".tsv") or ("\t" in text.splitlines()[0] and "," not in text.splitlines()[0]) else ","
    try:
        table = [
            (i, r) for i, r in enumerate(csv.reader(io.StringIO(text), delimiter=delim), 1) if any(c.strip() for c in r)
        ]
    except csv.Error as exc:
        raise DataError(f"{name}: not a valid CSV/TSV table ({exc}); give a header line and one row per run") from None
    if not table:
        raise DataError(f"{name}: the file is empty; give a header line and one row per run")
    header = [h.strip() for h in table[0][1]]
    rows, lines = [], []
    for lineno, r in table[1:]:
        if len(r) != len(header):
            raise DataError(
                f"{name}: line {lineno} has {len(r)} fields but the header has "
                f"{len(header)}; fix the row or quote fields that contain '{delim}'"
            )
        rows.append([c.strip() for c in r])
        lines.append(lineno)
    if not rows:
        raise DataError(f"{name}: the file has a header but no rows; add one row per run")
    return header, rows, lines


def _parse_jsonl(text: str, name: str):
    records, lines = [], []
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array of objects is accepted too
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"{name}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        except (ValueError, RecursionError) as exc:  # integers over 4,300 digits, deep nesting
            raise DataError(f"{name}: unreadable JSON ({type(exc).__name__}); give plain numbers") from None
        if not isinstance(records, list):
            records = [records]
        lines = list(range(1, len(records) + 1))
    else:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{name}: line {lineno} is not valid JSON ({exc.msg}); give one JSON object per line"
                ) from None
            except (ValueError, RecursionError) as exc:  # integers over 4,300 digits, deep nesting
                raise DataError(
                    f"{name}: line {lineno}: unreadable JSON ({type(exc).__name__}); give plain numbers"
                ) from None
            lines.append(lineno)
    if not records or not all(isinstance(r, dict) for r in records):
        raise DataError(
            f'{name}: expected one JSON object per line, e.g. {{"params": 1e8, "tokens": 2e9, "loss": 3.1}}'
        )
    header: list[str] = []
    for r in records:
        header.extend(k for k in r if k not in header)
    rows = [["" if r.get(h) is None else str(r.get(h)) for h in header] for r in records]
    return header, rows, lines


def _norm(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def _resolve_columns(header, name, **explicit) -> dict:
    """Map roles to header names: explicit options first, then aliases."""
    normed = {_norm(h): h for h in header}
    cols = {}
    for role, col in explicit.items():
        if col is not None:
            if _norm(col) not in normed:
                raise DataError(f"{name}: --{role}-col {col!r} not found; columns found: {', '.join(header)}")
            cols[role] = normed[_norm(col)]
    for role, aliases in ALIASES.items():
        if role not in cols:
            hit = next((normed[a] for a in aliases if a in normed), None)
            if hit is not None and hit not in cols.values():
                cols[role] = hit
    sizes = [r for r in ("params", "tokens", "flops") if r in cols]
    if "loss" not in cols or len(sizes) < 2:
        missing = [r for r in ("params", "tokens", "flops") if r not in cols]
        need = (
            ("a loss column" if "loss" not in cols else "")
            + (" and " if "loss" not in cols and len(sizes) < 2 else "")
            + (f"two of params/tokens/flops (missing {', '.join(missing)})" if len(sizes) < 2 else "")
        )
        raise DataError(
            f"{name}: need {need}; columns found: {', '.join(header)}; name them "
            "with --params-col, --tokens-col, --flops-col, --loss-col"
        )
    return cols


def _numeric(rows, lines, j, col, name, role) -> np.ndarray:
    out = np.empty(len(rows))
    bad, nonpos = [], []
    for i, r in enumerate(rows):
        try:
            out[i] = float(r[j])
        except (ValueError, OverflowError):
            bad.append(int(lines[i]))
            continue
        if not math.isfinite(out[i]):
            bad.append(int(lines[i]))
        elif out[i] <= 0 and role != "step":
            nonpos.append(int(lines[i]))
        elif out[i] < 0:
            nonpos.append(int(lines[i]))
    if bad:
        raise DataError(
            f"{name}: column {col!r} has non-numeric values on {_lines(bad)}; "
            "fix or remove those rows (or filter them with --where)"
        )
    if nonpos:
        raise DataError(
            f"{name}: column {col!r} has non-positive values on {_lines(nonpos)}; "
            f"{role} must be > 0 (remove those rows or filter them with --where)"
        )
    return out


def _lines(nums) -> str:
    shown = ", ".join(str(n) for n in nums[:10])
    more = f" and {len(nums) - 10} more" if len(nums) > 10 else ""
    return f"line{'s' if len(nums) > 1 else ''} {shown}{more}"


def _complete(N, D, C, k, name):
    if k is None and (N is None or D is None or C is None):
        raise DataError(
            f"{name}: this --flops convention needs the model shape to relate C to "
            "N and D; give params, tokens and flops columns, or use --flops 6nd"
        )
    if N is None:
        N = C / (k * D)
    if D is None:
        D = C / (k * N)
    if C is None:
        C = k * N * D
    return N, D, C


def check_where(where) -> list:
    """Parse every ``--where`` filter (raises :class:`UsageError` on the first bad one)."""
    return [_parse_where(w) for w in where]


def _parse_where(text: str):
    m = _WHERE.match(str(text))
    if not m:
        raise UsageError(
            f"--where: cannot read {text!r}; write 'COLUMN OP VALUE' with OP one of "
            "== != < <= > >=, e.g. --where 'loss < 5'"
        )
    col, op, value = m.groups()
    return col, ("==" if op == "=" else op), value.strip("'\"")


def _passes(row, header, flt, name) -> bool:
    col, op, value = flt
    normed = [_norm(h) for h in header]
    if _norm(col) not in normed:
        raise UsageError(f"--where: no column {col!r} in {name}; columns found: {', '.join(header)}")
    cell = row[normed.index(_norm(col))]
    try:
        left, right = float(cell), float(value)
    except ValueError:
        if op not in ("==", "!="):
            raise UsageError(
                f"--where: {op} needs numbers but {col!r} is {cell!r} or "
                f"{value!r} is not a number; use == or != for text"
            ) from None
        left, right = cell, value
    return {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _drop_top(runs: Runs, k: int, name: str) -> Runs:
    if k < 0:
        raise UsageError(f"--drop-top-loss: {k} must be >= 0")
    if k == 0:
        return runs
    if k >= len(runs):
        raise NotEnoughData(f"--drop-top-loss {k} would drop all {len(runs)} rows of {name}")
    order = np.argsort(runs.loss, kind="stable")
    keep = np.sort(order[: len(runs) - k])
    out = runs.subset(keep)
    return Runs(**{**out.__dict__, "n_dropped": runs.n_dropped + k})
