"""Corpora -> token arrays for calibration runs: sources, tokenizers, a memmap cache, batches.

The default corpus is the Python standard library's own source (about 12 MB on CPython 3.11),
present on every machine, so a first ``calibrate run`` needs no download. ``--data`` takes UTF-8
text files, folders (recursive) and globs, or pre-tokenised arrays: ``.bin`` (raw uint16, the
layout nanoGPT's ``data/*/prepare.py`` writes) and ``.npy`` (any integer array).

Tokens are computed once and cached as raw memmaps under ``$SCALECALC_HOME/corpora/<key>/``
(``train.bin``, ``val.bin``, ``meta.json``), written atomically, keyed by a sha256 over the
sources' relative paths and contents, the tokenizer and the validation size; a later load with
the same key maps the cached files instead of tokenising again (nanoGPT's "data prep is a
separate step that writes a uint16 memmap once").

The validation split is the last ``val_tokens`` tokens of the stream (held out, never trained on,
the same for every run of a sweep). Batches are random windows drawn with an explicit
:class:`numpy.random.Generator`, so a seed fixes them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalecalc.errors import DataError, MissingDependency, MissingInput, UnknownName, UsageError

try:  # the calibrate extra: without it, one line naming the extra rather than a traceback
    import torch
except ImportError:
    raise MissingDependency.for_extra("torch", "calibrate") from None

CACHE_VERSION = 1  # bump when the cache layout or the tokenisation of a source changes
TOKENIZERS = ("bytes", "tiktoken:<encoding>")
PRETOKENISED = (".bin", ".npy")
# directory names never part of the default corpus: test suites (code written to exercise corner
# cases, much of it generated data) and installed third-party packages
STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})


@dataclass(frozen=True, eq=False)
class TokenData:
    """A tokenised corpus split into training and held-out validation tokens (memmaps, read-only)."""

    train: np.memmap  # training tokens, uint16 (uint32 when vocab_size > 65536)
    val: np.memmap  # the last val_tokens tokens of the stream, never trained on
    vocab_size: int  # token ids are < vocab_size
    tokenizer: str  # "bytes", "tiktoken:<encoding>" or "pretokenised"
    corpus_hash: str  # sha256 over the sources' relative paths and contents (hex)
    n_train: int  # len(train)
    n_val: int  # len(val)
    sources: tuple[str, ...]  # the --data arguments as given, or ("stdlib",)


# --- sources ---------------------------------------------------------------------------------


def stdlib_root() -> Path:
    """The directory of this interpreter's standard library (``sysconfig`` "stdlib")."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The standard library's ``*.py`` files in sorted order, without tests and third-party code.

    Machine-specific files (``_sysconfigdata_*.py``, the ``config-*`` build directory) are left out
    too, so two machines with the same Python version hash to the same corpus (another version
    is another corpus, and the recorded hash says so). CPython 3.11: 732 files, 11.8 MB.
    """
    root = root or stdlib_root()
    files = []
    for folder, dirs, names in os.walk(root):
        rel_dir = Path(folder).relative_to(root)
        # prune in place so os.walk never descends into test suites or site-packages
        top = rel_dir == Path(".")
        dirs[:] = [d for d in dirs if d not in STDLIB_EXCLUDED_DIRS and not (top and d.startswith("config-"))]
        files += [Path(folder) / n for n in names if n.endswith(".py") and not n.startswith("_sysconfigdata_")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _visible_files(folder: Path) -> list[Path]:
    """Regular files under ``folder``, recursively, sorted by relative path; hidden ones skipped."""
    files = [
        p for p in folder.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def resolve_sources(sources: list[str] | None, *, max_bytes: int | None = None) -> list[tuple[str, Path]]:
    """Expand ``--data`` arguments into ``(label, path)`` pairs in a deterministic order.

    The label (path relative to the folder or glob root, or the file name) enters the corpus
    hash instead of the absolute path, so a moved corpus keeps its hash. ``None`` means the
    standard library. ``max_bytes`` keeps files, in order, until that many bytes are taken.
    """
    if not sources:
        root = stdlib_root()
        pairs = [(p.relative_to(root).as_posix(), p) for p in stdlib_files(root)]
    else:
        pairs = []
        for source in sources:
            path = Path(source).expanduser()
            if _is_glob(source):
                matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(source), recursive=True))
                files = [m for m in matches if m.is_file()]
                if not files:
                    raise DataError(f"--data: pattern {source!r} matched no files; check the pattern and quote it")
                pairs += [(m.as_posix(), m) for m in files]
            elif path.is_dir():
                files = _visible_files(path)
                if not files:
                    raise DataError(f"--data: folder {source} holds no files; point --data at text, .bin or .npy files")
                pairs += [(f.relative_to(path).as_posix(), f) for f in files]
            elif path.is_file():
                pairs.append((path.name, path))
            else:
                raise MissingInput(f"--data: {source} does not exist; give a text file, folder, glob, .bin or .npy")
    seen, unique = set(), []
    for label, path in pairs:  # the same file named twice (a folder and a glob) counts once
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append((label, path))
    if max_bytes is not None:
        unique = _first_bytes(unique, max_bytes)
    return unique


def _first_bytes(pairs: list[tuple[str, Path]], max_bytes: int) -> list[tuple[str, Path]]:
    kept, total = [], 0
    for label, path in pairs:
        if total >= max_bytes:
            break
        kept.append((label, path))
        total += path.stat().st_size
    return kept


# --- tokenizers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokenizer:
    """A text -> ids function with its vocabulary size and end-of-document id."""

    name: str
    vocab_size: int
    eot: int  # appended after every document so windows can see where one ends

    def encode(self, text: str) -> np.ndarray:
        if self.name == "bytes":
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        return np.asarray(_tiktoken(self.name).encode_ordinary(text), dtype=np.int64)


def _tiktoken(name: str):
    try:
        import tiktoken
    except ImportError:
        raise MissingDependency(
            f"--tokenizer {name}: tiktoken is not installed; install it with: pip install tiktoken"
        ) from None
    encoding = name.split(":", 1)[1]
    try:
        return tiktoken.get_encoding(encoding)
    except (ValueError, KeyError):
        raise UnknownName("tiktoken encoding", encoding, tiktoken.list_encoding_names(), "--tokenizer") from None


def get_tokenizer(name: str) -> Tokenizer:
    """``"bytes"`` (UTF-8 bytes, vocab 256, NUL as end of document) or ``"tiktoken:<encoding>"``."""
    if name == "bytes":
        return Tokenizer("bytes", 256, 0)  # NUL never occurs in text files, so it is free for EOT
    if name.startswith("tiktoken:"):
        enc = _tiktoken(name)
        return Tokenizer(name, enc.n_vocab, enc.eot_token)
    raise UnknownName("tokenizer", name, TOKENIZERS, "--tokenizer")


def _read_text(label: str, path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"--data: {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "convert it (iconv -t UTF-8) or pass pre-tokenised .bin/.npy"
        ) from None


def _load_array(path: Path) -> np.ndarray:
    if path.suffix == ".bin":
        if path.stat().st_size % 2:
            raise DataError(
                f"--data: {path} has an odd number of bytes; a .bin must be raw uint16 tokens (nanoGPT layout)"
            )
        return np.memmap(path, dtype=np.uint16, mode="r")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"--data: {path} is not a readable .npy array ({err}); save it with numpy.save") from None
    if not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"--data: {path} has dtype {array.dtype}; token arrays must be integers (e.g. uint16, int32)")
    if array.size and (array.min() < 0 or array.max() >= 2**32):
        raise DataError(f"--data: {path} holds token ids outside [0, 2**32); token ids must be non-negative")
    return array.reshape(-1)


# --- corpus loading and the cache -------------------------------------------------------------


def default_val_tokens(n: int) -> int:
    """Held-out size: 2% of the stream, at least min(2**18, 5%) tokens, at most 2**22.

    2**18 = 262,144 tokens keeps the validation noise of a loss estimate small next to the
    differences a sweep measures; the 5% cap keeps small corpora mostly for training.
    """
    return int(min(max(0.02 * n, min(2**18, 0.05 * n)), 2**22))


def scalecalc_home() -> Path:
    """``$SCALECALC_HOME``, else ``~/.cache/scalecalc``."""
    return Path(os.environ.get("SCALECALC_HOME") or Path.home() / ".cache" / "scalecalc")


def corpus_hash(pairs: list[tuple[str, Path]]) -> str:
    """sha256 over every source's label (relative path), size and bytes, in order (hex).

    Labels rather than absolute paths, so a corpus moved elsewhere keeps its hash.
    """
    digest = hashlib.sha256()
    for label, path in pairs:
        digest.update(f"{label}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _tokenise(pairs: list[tuple[str, Path]], tokenizer: str) -> tuple[np.ndarray, int, str]:
    """The token stream of the sources: (tokens, vocab_size, tokenizer name)."""
    kinds = {path.suffix in PRETOKENISED for _, path in pairs}
    if len(kinds) > 1:
        raise UsageError("--data: cannot mix text files with pre-tokenised .bin/.npy files; pass one kind")
    if kinds == {True}:
        parts = [_load_array(path) for _, path in pairs]
        tokens = np.concatenate(parts) if parts else np.zeros(0, np.uint32)
        # pre-tokenised arrays carry no vocabulary: the largest id seen sets it
        return tokens, int(tokens.max()) + 1 if tokens.size else 0, "pretokenised"
    tok = get_tokenizer(tokenizer)
    eot = np.array([tok.eot], dtype=np.int64)
    parts = []
    for label, path in pairs:
        text = _read_text(label, path)
        if text:  # an empty file is no document: no end-of-document token either
            parts += [tok.encode(text), eot]
    tokens = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return tokens, tok.vocab_size, tok.name


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_corpus(
    sources: list[str] | None = None,
    tokenizer: str = "bytes",
    *,
    home: Path | None = None,
    val_tokens: int | None = None,
    max_bytes: int | None = None,
) -> TokenData:
    """Tokenise a corpus once, cache it as memmaps, and return its train/validation split.

    Parameters
    ----------
    sources : list of str, optional
        ``--data`` arguments: text files, folders, globs, ``.bin`` or ``.npy``. None: the stdlib.
    tokenizer : str
        ``"bytes"`` (default) or ``"tiktoken:<encoding>"``; ignored for pre-tokenised sources.
    home : Path, optional
        Data dir (default ``$SCALECALC_HOME`` or ``~/.cache/scalecalc``).
    val_tokens : int, optional
        Held-out tokens at the end of the stream (default :func:`default_val_tokens`).
    max_bytes : int, optional
        Take source files in order only until this many bytes (quick runs and tests).

    Raises
    ------
    DataError
        Missing paths, no tokens, non-UTF-8 text, a non-integer ``.npy``, or a split that leaves
        no training or no validation tokens.
    """
    sources_t = tuple(sources) if sources else ("stdlib",)
    pairs = resolve_sources(sources, max_bytes=max_bytes)
    digest = corpus_hash(pairs)
    # the cache key adds what changes the arrays besides the content
    key_spec = json.dumps({"v": CACHE_VERSION, "hash": digest, "tokenizer": tokenizer, "val_tokens": val_tokens})
    directory = (home or scalecalc_home()) / "corpora" / hashlib.sha256(key_spec.encode()).hexdigest()[:16]
    cached = _open_cache(directory, sources_t)
    if cached is not None:
        return cached
    tokens, vocab_size, tok_name = _tokenise(pairs, tokenizer)
    n = int(tokens.size)
    if n == 0:
        raise DataError(f"--data: {', '.join(sources_t)} holds no tokens; give non-empty files")
    n_val = default_val_tokens(n) if val_tokens is None else int(val_tokens)
    if not 0 < n_val < n:
        raise DataError(
            f"--data: {n:,} tokens cannot hold out {n_val:,} validation tokens and still train; give more data"
        )
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory / "train.bin", tokens[: n - n_val].astype(dtype).tobytes())
    _write_atomic(directory / "val.bin", tokens[n - n_val :].astype(dtype).tobytes())
    meta = {
        "version": CACHE_VERSION,
        "corpus_hash": digest,
        "tokenizer": tok_name,
        "vocab_size": vocab_size,
        "dtype": np.dtype(dtype).name,
        "n_train": n - n_val,
        "n_val": n_val,
        "files": len(pairs),
        "sources": list(sources_t),
    }
    # the sidecar is written last, so its presence means both arrays are complete
    _write_atomic(directory / "meta.json", json.dumps(meta, indent=2).encode())
    return _open_cache(directory, sources_t)


def _open_cache(directory: Path, sources: tuple[str, ...]) -> TokenData | None:
    """Map a complete cache entry, or None when there is none (or it is from another version)."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != CACHE_VERSION:
        return None
    dtype = np.dtype(meta["dtype"])
    train = np.memmap(directory / "train.bin", dtype=dtype, mode="r")
    val = np.memmap(directory / "val.bin", dtype=dtype, mode="r")
    if len(train) != meta["n_train"] or len(val) != meta["n_val"]:
        return None
    return TokenData(
        train, val, meta["vocab_size"], meta["tokenizer"], meta["corpus_hash"], meta["n_train"], meta["n_val"], sources
    )


# --- batches ---------------------------------------------------------------------------------


def get_batch(
    tokens: np.ndarray, batch_size: int, seq_len: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: x = tokens[i:i+T], y = tokens[i+1:i+T+1] for B seeded starts i (int64, CPU).

    Raises DataError when the array holds fewer than one batch of tokens (B*T + 1).
    """
    need = batch_size * seq_len + 1
    if len(tokens) < need:
        raise DataError(
            f"--data: {len(tokens):,} tokens are fewer than one batch (batch_size {batch_size} x seq_len {seq_len} + 1 "
            f"= {need:,}); give more data or a smaller batch size or context"
        )
    starts = rng.integers(0, len(tokens) - seq_len, size=batch_size)  # last valid start: len - T - 1
    windows = np.asarray(tokens[starts[:, None] + np.arange(seq_len + 1)], dtype=np.int64)  # (B, T+1)
    return torch.from_numpy(windows[:, :-1].copy()), torch.from_numpy(windows[:, 1:].copy())


def fixed_eval_batches(
    val: np.ndarray, batch_size: int, seq_len: int, n_batches: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same ``n_batches`` validation batches for every call with the same seed (every eval of a sweep)."""
    rng = np.random.default_rng(seed)
    return [get_batch(val, batch_size, seq_len, rng) for _ in range(n_batches)]
