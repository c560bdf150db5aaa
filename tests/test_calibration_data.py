"""Corpora -> tokens: the stdlib default, --data sources, the memmap cache, batches and errors."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")

from scalecalc.calibration.data import (  # noqa: E402
    TokenData,
    default_val_tokens,
    fixed_eval_batches,
    get_batch,
    load_corpus,
    scalecalc_home,
    stdlib_files,
    stdlib_root,
)
from scalecalc.errors import DataError, MissingDependency, MissingInput, UnknownName, UsageError  # noqa: E402

pytestmark = pytest.mark.torch
SMALL = 150_000  # bytes of the stdlib taken by the quick corpus tests


def stream(data: TokenData) -> np.ndarray:
    return np.concatenate([np.asarray(data.train), np.asarray(data.val)])


def cache_dir(data: TokenData):
    [entry] = [
        p
        for p in (scalecalc_home() / "corpora").iterdir()
        if json.loads((p / "meta.json").read_text())["corpus_hash"] == data.corpus_hash
    ]
    return entry


# --- the default corpus ---------------------------------------------------------------------


def test_stdlib_listing_is_sorted_and_excludes_tests_and_packages():
    root = stdlib_root()
    files = stdlib_files()
    rel = [f.relative_to(root).as_posix() for f in files]
    assert rel == sorted(rel) and len(rel) == len(set(rel)) > 100
    assert {"os.py", "json/__init__.py", "asyncio/events.py"} <= set(rel)
    for r in rel:
        parts = r.split("/")
        assert not {"test", "tests", "idle_test", "site-packages", "dist-packages"} & set(parts[:-1]), r
        assert r.endswith(".py") and not parts[-1].startswith("_sysconfigdata_")
    assert stdlib_files() == files


def test_stdlib_listing_rules_on_a_planted_tree(tmp_path):
    keep = ["a.py", "pkg/__init__.py", "pkg/b.py", "idlelib/editor.py", "lib2to3/pgen2/parse.py"]
    drop = [
        "test/test_a.py",
        "pkg/tests/t.py",
        "idlelib/idle_test/x.py",
        "lib2to3/tests/data/y.py",
        "site-packages/numpy/core.py",
        "dist-packages/z.py",
        "config-3.11-x86_64/m.py",
        "_sysconfigdata__linux.py",
        "pkg/__pycache__/b.py",
        "notes.txt",
    ]
    for name in keep + drop:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    got = [f.relative_to(tmp_path).as_posix() for f in stdlib_files(tmp_path)]
    assert got == sorted(keep)


def test_stdlib_corpus_is_deterministic_across_homes(tmp_path):
    a = load_corpus(max_bytes=SMALL, home=tmp_path / "one")
    b = load_corpus(max_bytes=SMALL, home=tmp_path / "two")
    assert a.corpus_hash == b.corpus_hash and len(a.corpus_hash) == 64
    assert np.array_equal(stream(a), stream(b))
    assert a.tokenizer == "bytes" and a.vocab_size == 256 and a.sources == ("stdlib",)
    assert a.train.dtype == np.uint16 and a.n_train == len(a.train) and a.n_val == len(a.val)
    # the byte stream is the listed files' bytes, each followed by the NUL end-of-document token
    root = stdlib_root()
    first = (root / "__future__.py").read_bytes()
    assert bytes(stream(a)[: len(first)].astype(np.uint8)) == first and stream(a)[len(first)] == 0


def test_default_val_split_holds_out_the_tail():
    assert default_val_tokens(12_000_000) == 262_144  # 2.2% of the stdlib, a few hundred thousand
    assert default_val_tokens(1_000_000) == 50_000  # at most 5% of a small corpus
    assert default_val_tokens(10**10) == 2**22
    data = load_corpus(max_bytes=SMALL)
    assert data.n_val == default_val_tokens(data.n_train + data.n_val)


# --- the cache ------------------------------------------------------------------------------


def test_second_load_reuses_the_cache(tmp_path):
    (tmp_path / "a.txt").write_text("hello world\n" * 500)
    first = load_corpus([str(tmp_path / "a.txt")])
    entry = cache_dir(first)
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    assert set(stamps) == {"train.bin", "val.bin", "meta.json"}  # no temp files left behind
    second = load_corpus([str(tmp_path / "a.txt")])
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps
    assert isinstance(second.train, np.memmap) and np.array_equal(stream(first), stream(second))
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["corpus_hash"] == first.corpus_hash and meta["n_train"] == first.n_train


def test_changed_content_changes_hash_and_cache(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("abc " * 1000)
    before = load_corpus([str(path)])
    path.write_text("abd " * 1000)
    after = load_corpus([str(path)])
    assert before.corpus_hash != after.corpus_hash
    assert bytes(np.asarray(after.train[:4]).astype(np.uint8)) == b"abd "
    assert len(list((scalecalc_home() / "corpora").iterdir())) == 2


def test_home_argument_and_env_are_honoured(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("x" * 5000)
    load_corpus([str(tmp_path / "a.txt")], home=tmp_path / "explicit")
    assert (tmp_path / "explicit" / "corpora").is_dir()
    monkeypatch.setenv("SCALECALC_HOME", str(tmp_path / "env"))
    load_corpus([str(tmp_path / "a.txt")])
    assert (tmp_path / "env" / "corpora").is_dir()


# --- --data sources -------------------------------------------------------------------------


def test_text_file_is_utf8_bytes(tmp_path):
    text = "naïve café ∑ " * 300
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    data = load_corpus([str(tmp_path / "t.txt")], val_tokens=100)
    raw = text.encode("utf-8")
    assert data.n_train + data.n_val == len(raw) + 1 and data.n_val == 100
    assert bytes(stream(data)[:-1].astype(np.uint8)) == raw and stream(data)[-1] == 0


def test_folder_is_recursive_sorted_and_skips_hidden(tmp_path):
    corpus = tmp_path / "corpus"
    for name, body in {"b.txt": "BBBB", "a/z.txt": "ZZZZ", "a/c.md": "CCCC", ".git/x": "HIDDEN", "e.txt": ""}.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(body * 100)
    data = load_corpus([str(corpus)], val_tokens=10)
    expected = b"".join(body * 100 + b"\0" for body in (b"CCCC", b"ZZZZ", b"BBBB"))  # a/c.md, a/z.txt, b.txt
    assert bytes(stream(data).astype(np.uint8)) == expected


def test_glob_selects_matching_files(tmp_path):
    for name in ("x1.txt", "x2.txt", "y.log"):
        (tmp_path / name).write_text(name * 200)
    data = load_corpus([str(tmp_path / "x*.txt")], val_tokens=10)
    assert bytes(stream(data).astype(np.uint8)) == b"x1.txt" * 200 + b"\0" + b"x2.txt" * 200 + b"\0"
    assert data.sources == (str(tmp_path / "x*.txt"),)


def test_bin_in_nanogpt_layout(tmp_path):
    tokens = np.arange(3000, dtype=np.uint16) % 1000 + 40000
    tokens.tofile(tmp_path / "train.bin")  # what nanoGPT's prepare.py writes
    data = load_corpus([str(tmp_path / "train.bin")], val_tokens=300)
    assert np.array_equal(stream(data), tokens) and data.vocab_size == 40999 + 1
    assert data.tokenizer == "pretokenised" and data.train.dtype == np.uint16


def test_npy_integer_array_and_wide_vocab(tmp_path):
    tokens = (np.arange(5000, dtype=np.int64) * 7919) % 100_000
    np.save(tmp_path / "tok.npy", tokens)
    data = load_corpus([str(tmp_path / "tok.npy")], val_tokens=500)
    assert np.array_equal(stream(data), tokens)
    assert data.vocab_size == tokens.max() + 1 and data.train.dtype == np.uint32  # > 65536 ids


# --- errors -----------------------------------------------------------------------------------


def test_missing_path_names_data(tmp_path):
    with pytest.raises(MissingInput, match=r"--data: .*nope\.txt does not exist"):  # exit 2
        load_corpus([str(tmp_path / "nope.txt")])
    with pytest.raises(DataError, match="matched no files"):
        load_corpus([str(tmp_path / "*.none")])


def test_empty_data_is_refused(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="no tokens"):
        load_corpus([str(tmp_path / "empty.txt")])
    (tmp_path / "dir").mkdir()
    with pytest.raises(DataError, match="holds no files"):
        load_corpus([str(tmp_path / "dir")])


def test_non_utf8_text_names_the_file(tmp_path):
    (tmp_path / "ok.txt").write_text("fine " * 100)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 100)
    with pytest.raises(DataError, match=r"latin1\.txt is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        load_corpus([str(tmp_path)])


def test_bad_npy_dtype_and_mixing_kinds(tmp_path):
    np.save(tmp_path / "f.npy", np.linspace(0, 1, 100))
    with pytest.raises(DataError, match=r"f\.npy has dtype float64"):
        load_corpus([str(tmp_path / "f.npy")])
    np.save(tmp_path / "neg.npy", np.array([1, -2, 3] * 100))
    with pytest.raises(DataError, match="outside"):
        load_corpus([str(tmp_path / "neg.npy")])
    (tmp_path / "t.txt").write_text("text " * 100)
    np.save(tmp_path / "i.npy", np.arange(100))
    with pytest.raises(UsageError, match="cannot mix"):
        load_corpus([str(tmp_path / "t.txt"), str(tmp_path / "i.npy")])


def test_fewer_tokens_than_one_batch(tmp_path):
    (tmp_path / "small.txt").write_text("y" * 1000)
    data = load_corpus([str(tmp_path / "small.txt")], val_tokens=100)
    msg = r"--data: 901 tokens are fewer than one batch \(batch_size 8 x seq_len 128 \+ 1 = 1,025\)"
    with pytest.raises(DataError, match=msg):
        get_batch(data.train, 8, 128, np.random.default_rng(0))
    x, _ = get_batch(data.train, 7, 128, np.random.default_rng(0))  # 7*128+1 = 897 fits
    assert x.shape == (7, 128)


def test_tokenizer_choices(tmp_path):
    (tmp_path / "a.txt").write_text("x" * 1000)
    with pytest.raises(UnknownName, match="--tokenizer: unknown tokenizer 'bpe'"):
        load_corpus([str(tmp_path / "a.txt")], tokenizer="bpe")
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependency, match="pip install tiktoken"):
            load_corpus([str(tmp_path / "a.txt")], tokenizer="tiktoken:gpt2")
    else:  # pragma: no cover - only where tiktoken is installed
        data = load_corpus([str(tmp_path / "a.txt")], tokenizer="tiktoken:gpt2", val_tokens=5)
        assert data.vocab_size == 50257 and data.tokenizer == "tiktoken:gpt2"


# --- batches ----------------------------------------------------------------------------------


def test_batches_are_shifted_windows_and_seeded():
    tokens = np.arange(10_000, dtype=np.uint16)
    x, y = get_batch(tokens, 16, 32, np.random.default_rng(7))
    assert x.shape == y.shape == (16, 32) and x.dtype == y.dtype == __import__("torch").int64
    assert (y[:, :-1] == x[:, 1:]).all() and (y[:, -1] == x[:, -1] + 1).all()
    assert ((x[:, 1:] - x[:, :-1]) == 1).all()  # contiguous windows of the array
    x2, _ = get_batch(tokens, 16, 32, np.random.default_rng(7))
    x3, _ = get_batch(tokens, 16, 32, np.random.default_rng(8))
    assert (x == x2).all() and not (x == x3).all()


def test_every_window_position_is_reachable():
    tokens, rng = np.arange(40, dtype=np.uint16), np.random.default_rng(0)
    starts = set()
    for _ in range(300):
        x, y = get_batch(tokens, 4, 8, rng)
        starts |= set(x[:, 0].tolist())
        assert y.max() <= 39
    assert starts == set(range(32))  # every start 0 .. len - T - 1, so the last token is a target too


def test_fixed_eval_batches_are_deterministic():
    val = np.arange(5000, dtype=np.uint16) % 251
    a = fixed_eval_batches(val, 4, 16, 3, seed=1)
    b = fixed_eval_batches(val, 4, 16, 3, seed=1)
    c = fixed_eval_batches(val, 4, 16, 3, seed=2)
    assert len(a) == 3 and all((xa == xb).all() and (ya == yb).all() for (xa, ya), (xb, yb) in zip(a, b))
    assert not all((xa == xc).all() for (xa, _), (xc, _) in zip(a, c))


def test_token_data_is_frozen(tmp_path):
    (tmp_path / "a.txt").write_text("x" * 1000)
    data = load_corpus([str(tmp_path / "a.txt")])
    with pytest.raises(AttributeError):
        data.vocab_size = 3


def test_hash_is_over_relative_paths_and_contents(tmp_path):
    # the same files in two places hash the same; a rename changes the hash
    for where in ("one", "two"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "a.txt").write_text("same content " * 100)
    one = load_corpus([str(tmp_path / "one")])
    two = load_corpus([str(tmp_path / "two")])
    assert one.corpus_hash == two.corpus_hash
    os.rename(tmp_path / "two" / "a.txt", tmp_path / "two" / "b.txt")
    assert load_corpus([str(tmp_path / "two")]).corpus_hash != one.corpus_hash
    size = (tmp_path / "one" / "a.txt").stat().st_size
    expected = hashlib.sha256(f"a.txt\0{size}\0".encode() + (tmp_path / "one" / "a.txt").read_bytes()).hexdigest()
    assert one.corpus_hash == expected
