"""The law-file contract shared by the loader, ``scalecalc fit`` and ``scalecalc calibrate fit``.

One module owns the three things every law file must agree on (README, "Law files"):

- the **name rule**: lower-case letters, digits, ``.``, ``_`` and ``-``, starting with a letter or
  a digit, so that a name a writer accepts is a name ``plan --law`` loads;
- the **provenance block**: ``tool``, ``date`` (ISO 8601, UTC, whole seconds, ``Z``), ``versions``
  (``scalecalc``, ``numpy``, ``scipy`` and whatever the caller adds, e.g. ``torch``), then the
  writer's own fields;
- the **atomic write**: YAML in reading order (``sort_keys=False``) to a temporary file in the
  target folder, fsync, ``os.replace``; a failure leaves no file behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from scalecalc.errors import UsageError

NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
NAME_HELP = "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit"


def suggest_name(name: str) -> str:
    """The nearest valid name: lower-cased, runs of other characters turned into ``-``."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", str(name).strip().lower()).strip("-._")
    return slug or "law"


def name_problem(name: object) -> str | None:
    """Why ``name`` breaks the name rule, or ``None`` when it is valid."""
    if isinstance(name, str) and NAME_RULE.match(name):
        return None
    return f"{name!r} must use only {NAME_HELP} (e.g. {suggest_name(str(name))!r})"


def check_name(name: str, option: str = "--name") -> str:
    """Return ``name`` if a law file may carry it, else raise :class:`UsageError` naming ``option``."""
    problem = name_problem(name)
    if problem:
        raise UsageError(f"{option}: {problem}")
    return name


def utc_now() -> str:
    """The provenance date format: ``2026-11-29T03:41:23Z``."""
    import datetime as _dt  # lazy, like tempfile below: the loader imports this module on `plan`

    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance(tool: str, versions: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    """The provenance block every writer starts from; ``fields`` that are ``None`` are dropped."""
    import numpy as np
    import scipy

    from scalecalc import __version__

    block: dict[str, Any] = {
        "tool": tool,
        "date": utc_now(),
        "versions": {**(versions or {}), "scalecalc": __version__, "numpy": np.__version__, "scipy": scipy.__version__},
    }
    block.update({k: v for k, v in fields.items() if v is not None})
    return block


def dump(law: dict) -> str:
    """The YAML text of a law mapping, keys in reading order like a published law file."""
    import yaml

    return yaml.safe_dump(law, sort_keys=False, default_flow_style=None, width=100)


def write_law(path: str | Path, law: dict, *, option: str = "--output", make_parents: bool = False) -> Path:
    """Write ``law`` to ``path`` atomically (temp file in the same folder, fsync, os.replace).

    The name is checked first, so nothing is written that the loader would refuse. With
    ``make_parents`` the folder is created; otherwise a missing folder is a usage error.
    """
    import tempfile

    check_name(law.get("name", ""), "--name")
    text = dump(law)
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise UsageError(f"{option}: directory {str(directory)!r} does not exist; create it first")
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

            raise ScalecalcError(
                f"{option}: cannot write {path} ({exc.strerror or exc}); free space or choose another location"
            ) from None
        raise
    return path
