"""Reading runs: aliases, formats, filters, derived tokens, and the errors users meet."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from scalecalc.errors import DataError, NotEnoughData, UsageError
from scalecalc.fit import read_runs

EPOCH = Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extracted.csv"


def test_epoch_file_reads_with_aliases_and_6nd_tokens():
    runs = read_runs(EPOCH)
    assert len(runs) == 245
    # docs/reference.md §3.1 ranges; tokens follow from D = C / (6 N).
    assert runs.params.min() == pytest.approx(5.73e7, rel=1e-3)
    assert runs.flops.max() == pytest.approx(1.3e22, rel=0.01)
    np.testing.assert_allclose(runs.tokens, runs.flops / (6 * runs.params))
    assert runs.loss.max() == pytest.approx(5.006, abs=1e-3)


def test_drop_top_loss_keeps_240_and_drops_the_highest():
    full = read_runs(EPOCH)
    runs = read_runs(EPOCH, drop_top_loss=5)
    assert len(runs) == 240 and runs.n_dropped == 5
    assert runs.loss.max() == np.sort(full.loss)[-6]


def test_where_filters_numeric_and_text(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("N,D,loss,tag\n1e8,2e9,3.0,a\n2e8,4e9,2.8,b\n4e8,8e9,2.6,a\n")
    assert len(read_runs(f, where=["N >= 2e8"])) == 2
    assert len(read_runs(f, where=["tag == a", "loss<3"])) == 1
    assert len(read_runs(f, where=["tag != 'a'"])) == 1


def test_jsonl_tsv_and_stdin(tmp_path, monkeypatch):
    j = tmp_path / "r.jsonl"
    j.write_text('{"params": 1e8, "flops": 1.2e18, "loss": 3.1}\n\n{"params": 2e8, "flops": 2.4e18, "loss": 3.0}\n')
    runs = read_runs(j)
    np.testing.assert_allclose(runs.tokens, [2e9, 2e9])
    t = tmp_path / "r.tsv"
    t.write_text("model size\ttokens\tval_loss\n1e8\t2e9\t3.1\n")
    assert read_runs(t).loss[0] == 3.1
    monkeypatch.setattr("sys.stdin", io.StringIO("n,d,l\n1e8,2e9,3\n"))
    assert read_runs("-").params[0] == 1e8


def test_explicit_columns_override_aliases(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("size_a,tok,my loss,loss\n1e8,2e9,3.0,9\n")
    runs = read_runs(f, params_col="size_a", tokens_col="tok", loss_col="my loss")
    assert runs.loss[0] == 3.0


@pytest.mark.parametrize(
    "text, exc, fragment",
    [
        ("", DataError, "the file is empty"),
        ("N,loss\n1e8,3\n", DataError, "columns found: N, loss"),
        ("N,D,loss\n1e8,2e9,abc\n2e8,x,3\n", DataError, "non-numeric values on line 3"),
        ("N,D,loss\n1e8,2e9,3\n-1,2e9,3\n0,1,1\n", DataError, "non-positive values on lines 3, 4"),
        ("N,D,loss\n1e8,2e9\n", DataError, "line 2 has 2 fields"),
        ("N,D,loss\n", DataError, "header but no rows"),
    ],
)
def test_bad_files(tmp_path, text, exc, fragment):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(exc, match=fragment):
        read_runs(f)


def test_bad_options(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("N,D,loss\n1e8,2e9,3\n")
    with pytest.raises(UsageError, match="--where: cannot read"):
        read_runs(f, where=["N ~ 3"])
    with pytest.raises(UsageError, match="no column 'X'"):
        read_runs(f, where=["X > 3"])
    with pytest.raises(UsageError, match="--flops"):
        read_runs(f, flops_convention="7nd")
    with pytest.raises(NotEnoughData, match="would drop all"):
        read_runs(f, drop_top_loss=1)
