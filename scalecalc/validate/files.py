"""Bounded reads of user files and stdin: a size limit, UTF-8 only, one clear error each.

Every reader names the file (or ``stdin``), the limit it hit (from :mod:`.limits`) and the fix;
binary data and text that is not UTF-8 are refused instead of producing garbage further down.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scalecalc.errors import DataError, ScalecalcError, UsageError


def read_text(path, *, limit: int, limit_name: str, kind: str, error=UsageError) -> str:
    """The UTF-8 text of ``path``; refuses folders, missing files, files over ``limit`` bytes,
    binary data (NUL bytes) and invalid UTF-8 with ``error`` naming the file."""
    p = Path(path)
    try:
        if p.is_dir():
            raise error(f"{p}: is a directory; give the path of a {kind}")
        size = p.stat().st_size
        if size > limit:
            raise error(f"{p}: {size:,} bytes is more than the {kind} limit of {limit:,} bytes ({limit_name})")
        data = p.read_bytes()[: limit + 1]
    except ScalecalcError:
        raise
    except FileNotFoundError:
        raise error(f"{p}: cannot read it: no such file; give the path of a {kind}") from None
    except OSError as exc:
        raise error(f"{p}: cannot read it ({exc.strerror or exc}); check the path and its permissions") from None
    return decode(data, str(p), kind, error)


def decode(data: bytes, where: str, kind: str, error=UsageError) -> str:
    """UTF-8 text of ``data`` (a leading BOM dropped); binary or non-UTF-8 data is refused."""
    if b"\x00" in data:
        raise error(f"{where}: binary data (NUL bytes), not a {kind}; give a UTF-8 text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: byte {exc.start} is not UTF-8; save the {kind} as UTF-8 text") from None


def read_stdin(option: str, *, stream=None, error=UsageError) -> str:
    """All of stdin as text, at most :data:`~.limits.MAX_STDIN_BYTES` bytes, UTF-8 only."""
    from scalecalc.validate.limits import MAX_STDIN_BYTES

    stream = sys.stdin if stream is None else stream
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # a text stream (tests pass io.StringIO)
        text = stream.read(MAX_STDIN_BYTES + 1)
        data = None
    else:
        data = buffer.read(MAX_STDIN_BYTES + 1)
        text = None
    size = len(data) if data is not None else len(text)
    if size > MAX_STDIN_BYTES:
        raise error(
            f"{option}: stdin is more than the limit of {MAX_STDIN_BYTES:,} bytes (MAX_STDIN_BYTES); split the input"
        )
    if data is not None:
        text = decode(data, f"{option}: stdin", "text stream", error)
    elif "\x00" in text:
        raise error(f"{option}: stdin: binary data (NUL bytes); pipe UTF-8 text, one value per line")
    return text


__all__ = ["read_text", "decode", "read_stdin", "DataError"]
