"""``calibrate import``: learning curves trained elsewhere -> the calibration results store.

Library use::

    from scalecalc.calibration.importers import Options, read_sources, import_into
    files = read_sources(["logs/tb", "runs.csv"], Options(tag="val/loss"))
    added = import_into("runs/imported", files)

Readers: CSV/TSV/JSONL tables and W&B exports (``table.py``), TensorBoard event folders
(``tensorboard.py``). Metadata merging and checks are in ``curve.py``. Every source is read and
checked before anything is written; each file's runs are then written in one transaction, so a
failure leaves the store as it was, and re-importing the same logs adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scalecalc.calibration.store import FinishedRun

from .curve import (
    META_KEYS,
    PARAMS_KINDS,
    ImportInputError,
    Options,
    RawCurve,
    RunProblem,
    finish,
    load_sidecar,
)
from .table import read_table
from .tensorboard import is_event_file, read_tensorboard

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".json")
SIDECAR_NAMES = ("scalecalc.yaml", "scalecalc.yml")

__all__ = [
    "Options",
    "FileImport",
    "read_sources",
    "import_into",
    "ImportInputError",
    "META_KEYS",
    "PARAMS_KINDS",
    "RawCurve",
]


@dataclass
class FileImport:
    """What one source gave: runs ready to store, runs skipped with the reason, and notes."""

    source: Path
    runs: list[FinishedRun] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run name, why)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (run name, what was dropped)
    names: dict[str, str] = field(default_factory=dict)  # run id -> run name


def _sidecar_for(path: Path, explicit: Path | None) -> dict:
    """``--meta FILE``, else ``FILE.yaml`` beside a table, else ``scalecalc.yaml`` in the
    folder (or the log folder given)."""
    if explicit is not None:
        return load_sidecar(explicit)
    candidates = [path.with_suffix(".yaml"), path.with_suffix(".yml")] if path.is_file() else []
    folder = path if path.is_dir() else path.parent
    candidates += [folder / n for n in SIDECAR_NAMES]
    for c in candidates:
        if c.is_file() and c != path:
            return load_sidecar(c)
    return {}


def read_curves(path: Path, options: Options) -> list[RawCurve]:
    """The raw curves of one source, by its kind (event files or folder, or a table)."""
    if not path.exists():
        raise ImportInputError(
            f"{path}: no such file or folder; give CSV/TSV/JSONL files, W&B exports or TensorBoard log folders"
        )
    if path.is_dir() or is_event_file(path):
        return read_tensorboard(path, options.tag)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return read_table(path, options.columns, options.tag)
    raise ImportInputError(
        f"{path}: unknown log format {path.suffix or '(no suffix)'!r}; give "
        f"{', '.join(TABLE_SUFFIXES)} files or TensorBoard event folders"
    )


def read_sources(
    sources, options: Options, *, meta_file: Path | None = None, skip_bad: bool = False
) -> list[FileImport]:
    """Read and check every source; nothing is written.

    A run that cannot be imported (no parameter count or batch, steps going backwards, no
    finite loss) raises :class:`ImportInputError` naming the file and run, unless ``skip_bad``:
    then it is listed in :attr:`FileImport.skipped` with the reason.
    """
    out = []
    for source in map(Path, sources):
        sidecar = _sidecar_for(source, meta_file)
        result = FileImport(source)
        for raw in read_curves(source, options):
            try:
                run, notes = finish(raw, sidecar, options)
            except RunProblem as exc:
                if not skip_bad:
                    raise ImportInputError(
                        f"{raw.source}: run {raw.name!r}: {exc} (or pass --skip-bad to import the other runs)"
                    ) from None
                result.skipped.append((raw.name, str(exc)))
                continue
            result.runs.append(run)
            result.names[run.id] = raw.name
            result.notes += [(raw.name, n) for n in notes]
        out.append(result)
    return out


def import_into(directory, files: list[FileImport]) -> list[set[str]]:
    """Write each file's runs into the store at ``directory`` (created), one transaction per
    file. Returns the ids newly stored, per file (runs already imported are left as they are)."""
    from scalecalc.calibration.store import Store

    with Store(directory, create=True) as store:
        if "recipe" not in store.meta():
            store.set_meta(recipe="import")
        known = {r.id for r in store.runs()}
        new = []
        for f in files:
            store.add_finished_runs(f.runs)
            new.append({r.id for r in f.runs} - known)
            known |= new[-1]
        return new
