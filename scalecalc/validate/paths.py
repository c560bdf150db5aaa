"""Output paths (``-o``, ``--plot``, ``--out``): checked before any work, written atomically.

An output is written whole and only when the command succeeds: :func:`check_output` runs when
the options are read (so a bad ``--plot`` fails before ``-o`` is written), and
:func:`atomic_write` writes a temporary file in the same folder, fsyncs it and renames it over
the target, removing the temporary file on any failure (disk full included).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from scalecalc.errors import ScalecalcError, UsageError


def check_output(path, option: str, *, suffixes: Iterable[str] = ()) -> Path:
    """Refuse an output path that is a directory, lies in a folder that does not exist or cannot
    be written, or (with ``suffixes``) has the wrong extension."""
    p = Path(path)
    suffixes = tuple(suffixes)
    if str(path).strip() == "":
        raise UsageError(f"{option}: empty path; give a file name")
    if p.is_dir():
        raise UsageError(f"{option}: {p} is a directory; give a file name inside it")
    if suffixes and p.suffix.lower() not in suffixes:
        raise UsageError(f"{option}: {p} must end in {', '.join(suffixes)}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageError(f"{option}: cannot write to {p} (permission denied); choose a writable location")
    return p


def atomic_write(path, write: Callable, *, mode: str = "w", option: str = "output") -> None:
    """Write ``path`` whole or not at all: ``write(f)`` fills a temporary file beside it, which
    is fsynced and renamed over ``path``; on any error the temporary file is removed and an
    ``OSError`` becomes one :class:`ScalecalcError` naming the path."""
    import tempfile

    p = Path(path)
    fd, tmp = None, None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent or ".")
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            fd = None
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        tmp = None
    except OSError as exc:
        raise ScalecalcError(
            f"{option}: cannot write {p} ({exc.strerror or exc}); free space or choose another location"
        ) from None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def check_outputs(outputs: dict) -> None:
    """``check_outputs({"-o": (path, (".yaml",)), "--plot": (path, (".png",))})``; None skipped."""
    for option, (path, suffixes) in outputs.items():
        if path is not None:
            check_output(path, option, suffixes=suffixes)
