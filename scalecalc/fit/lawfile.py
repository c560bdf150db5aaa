"""FitResult -> law-file mapping (CONTRACTS.md "Law file format") -> atomic YAML write.

Formulas use only the law formula language (numbers, + - * / **, names): the chinchilla loss
``E + A / N**alpha + B / D**beta``, Kaplan's ``(Nc / N)**alpha_N`` and eq. 1.5, and for the
allocation forms ``G * C**a`` / ``H * C**b``. Up to 1000 bootstrap replicates of the constants
are stored as columns so that ``scalecalc plan --law`` can propagate them into intervals.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from scalecalc.errors import UsageError

MAX_REPLICATES = 1000
_NAME = re.compile(r"^[a-z0-9._-]+$")


def check_name(name: str) -> str:
    """A law name: lower-case letters, digits, '.', '_' and '-' (CONTRACTS.md)."""
    if not _NAME.match(name or ""):
        raise UsageError(f"--name: {name!r} must use only a-z, 0-9, '.', '_' and '-'")
    return name


def law_dict(result, name: str = "fitted", source: str | None = None) -> dict:
    """The law-file mapping for a :class:`~scalecalc.fit.FitResult`."""
    check_name(name)
    law: dict = {
        "name": name,
        "title": f"{result.form} fit of {Path(result.source).name or 'runs'} ({result.n_points} "
                 f"{'budgets' if result.form == 'isoflop' else 'points'})",
        "source": source or f"scalecalc fit --form {result.form} {result.source}",
        "form": result.form,
    }
    for key, formula in (("loss", result.loss_formula), ("params", result.params_formula),
                         ("tokens", result.tokens_formula)):
        if formula:
            law[key] = formula
    law["constants"] = {k: _num(v) for k, v in result.params.items()}
    if result.stderr:
        law["stderr"] = {k: _num(v) for k, v in result.stderr.items()}
    boot = _bootstrap_columns(result.bootstrap)
    if boot:
        law["bootstrap"] = boot
    law["flops"] = result.flops_convention
    from scalecalc.flops import get_convention

    law["params_kind"] = get_convention(result.flops_convention).n_kind
    law["fitted_range"] = {k: [_num(lo), _num(hi)] for k, (lo, hi) in result.fitted_range.items()}
    law["warnings"] = list(result.warnings)
    law["provenance"] = _provenance(result)
    return law


def _num(v) -> float:
    return float(f"{float(v):.10g}")


def _bootstrap_columns(samples: dict) -> dict:
    """Columns of at most 1000 replicates; replicates with a non-finite constant are dropped."""
    if not samples:
        return {}
    table = np.column_stack([np.asarray(v, float) for v in samples.values()])
    table = table[np.all(np.isfinite(table), axis=1)][:MAX_REPLICATES]
    return {k: [float(f"{x:.8g}") for x in table[:, j]] for j, k in enumerate(samples)}


def _provenance(result) -> dict:
    import scipy

    from scalecalc import __version__

    prov = {
        "tool": "scalecalc fit",
        "scalecalc": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "data": result.source,
        "n_points": int(result.n_points),
        "objective": result.objective_name,
        "objective_value": _num(result.objective),
        "residual_rms": _num(result.residual_rms),
        "method": result.method,
        "bootstrap_replicates": len(next(iter(result.bootstrap.values()), [])),
    }
    if result.delta is not None:
        prov["delta"] = float(result.delta)
    digest = _sha256(result.source)
    if digest:
        prov["data_sha256"] = digest
    prov.update({k: v for k, v in result.details.items() if k in ("seed", "interp", "seed_noise")})
    return prov


def _sha256(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def write_law(path, law: dict) -> Path:
    """Write the law as YAML atomically: temp file in the same directory, fsync, os.replace."""
    import yaml

    path = Path(path)
    text = yaml.safe_dump(law, sort_keys=False, default_flow_style=None, width=100)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"--output: directory {str(directory)!r} does not exist; create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a law file is an ordinary file
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # disk full, permissions: one error line, no partial file
            from scalecalc.errors import ScalecalcError

            raise ScalecalcError(f"--output: cannot write {path} ({exc.strerror or exc}); free space or choose another location") from None
        raise
    return path
