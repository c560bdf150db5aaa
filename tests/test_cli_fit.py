"""``scalecalc fit`` through the real CLI: the Epoch refit, outputs, law files, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_fit_synth import isoflop_runs, learning_curves
from typer.testing import CliRunner

from scalecalc.cli import app

EPOCH = str(Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extracted.csv")
runner = CliRunner()


def fit(*args, input=None):
    return runner.invoke(app, ["fit", *map(str, args)], input=input)


def test_epoch_refit_full_grid_through_the_cli():
    """docs/reference.md §3.2 / §10: Hoffmann's 4500-start grid, summed Huber 1e-3, 240 points."""
    res = fit(EPOCH, "--drop-top-loss", "5", "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    c = out["constants"]
    assert c["E"] == pytest.approx(1.8172, abs=0.002)
    assert c["alpha"] == pytest.approx(0.3473, abs=0.003)
    assert c["beta"] == pytest.approx(0.3672, abs=0.003)
    assert c["A"] == pytest.approx(477.83, rel=0.01) and c["B"] == pytest.approx(2143.2, rel=0.01)
    assert out["objective"] == pytest.approx(1.0183e-3, rel=1e-4)
    assert out["n_points"] == 240 and out["n_dropped"] == 5 and out["form"] == "chinchilla"
    assert out["success"] and "4500-start grid" in out["method"]
    assert out["implied"]["a"] == pytest.approx(0.514, abs=0.002)  # beta / (alpha + beta)
    assert set(out) >= {"form", "constants", "intervals", "n_points", "objective", "warnings"}


def test_table_output_and_warnings_on_stderr():
    res = fit(EPOCH, "--drop-top-loss", "5", "--grid", "coarse")
    assert res.exit_code == 0
    assert "alpha" in res.stdout and "0.3473" in res.stdout and "1.817" in res.stdout
    assert "Implied allocation: a = 0.5139, b = 0.4861" in res.stdout
    assert "240 points used, 5 dropped" in res.stdout
    assert res.stderr.startswith("warning: 5 outliers beyond 4 robust sigma")


def test_csv_output():
    res = fit(EPOCH, "--drop-top-loss", "5", "--grid", "coarse", "--format", "csv")
    lines = res.stdout.splitlines()
    assert lines[0] == "name,value,lo,hi,stderr"
    assert [l.split(",")[0] for l in lines[1:]] == ["E", "A", "B", "alpha", "beta"]


def test_law_file_has_the_contract_keys_and_plans_with_intervals(tmp_path):
    law = tmp_path / "mylaw.yaml"
    res = fit(
        EPOCH,
        "--drop-top-loss",
        "5",
        "--grid",
        "coarse",
        "--bootstrap",
        "100",
        "--budget",
        "1e23",
        "-o",
        law,
        "--name",
        "epoch-refit",
        "--json",
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    lo, hi = out["intervals"]["alpha"]
    assert lo < out["constants"]["alpha"] < hi
    assert out["derived"][0]["params_ci"][0] < out["derived"][0]["params"] < out["derived"][0]["params_ci"][1]
    data = yaml.safe_load(law.read_text())
    assert data["name"] == "epoch-refit" and data["form"] == "chinchilla"
    assert data["loss"] == "E + A / N**alpha + B / D**beta"
    assert set(data["constants"]) == {"E", "A", "B", "alpha", "beta"}
    assert {k: len(v) for k, v in data["bootstrap"].items()} == dict.fromkeys(data["constants"], 100)
    assert data["flops"] == "6nd" and data["fitted_range"]["params"][0] == pytest.approx(5.733e7, rel=1e-3)
    assert data["provenance"]["data_sha256"] and data["warnings"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file
    plan = runner.invoke(app, ["plan", "--compute", "1e23", "--law", str(law), "--json"])
    assert plan.exit_code == 0, plan.stderr
    (row,) = json.loads(plan.stdout)["rows"]
    assert row["params_ci"][0] < row["params"] < row["params_ci"][1]
    assert row["loss_ci"][0] < row["loss"] < row["loss_ci"][1]
    # the same law gives the same interval through fit --budget and plan --law
    assert row["params_ci"] == pytest.approx(out["derived"][0]["params_ci"], rel=1e-3)


def _write_runs(path, runs, with_budget=False, with_run=False):
    cols = {"params": runs.params, "tokens": runs.tokens, "loss": runs.loss}
    if with_budget:
        cols["budget"] = runs.budget
    if with_run:
        cols["run"] = runs.run
    lines = [",".join(cols)] + [",".join(str(v[i]) for v in cols.values()) for i in range(len(runs))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_isoflop_and_envelope_write_allocation_laws(tmp_path):
    src = _write_runs(tmp_path / "iso.csv", isoflop_runs(noise=0.0), with_budget=True)
    law = tmp_path / "iso.yaml"
    res = fit(src, "--form", "isoflop", "-o", law, "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out["constants"]) == {"G", "a", "H", "b"}
    assert out["constants"]["a"] == pytest.approx(0.4565, abs=0.003)
    data = yaml.safe_load(law.read_text())
    assert data["params"] == "G * C**a" and data["tokens"] == "H * C**b" and "loss" not in data
    plan = runner.invoke(app, ["plan", "--compute", "1e20", "--law", str(law), "--json"])
    assert plan.exit_code == 0, plan.stderr
    src = _write_runs(tmp_path / "curves.csv", learning_curves(sizes=np.geomspace(3e7, 3e9, 17)), with_run=True)
    res = fit(src, "--form", "envelope", "--json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["constants"]["a"] == pytest.approx(0.4565, abs=0.01)


def test_stdin_kaplan_and_where(tmp_path):
    N = np.geomspace(1e6, 1e10, 20)
    text = "N,D,loss,keep\n" + "".join(f"{n},{20 * n},{(8.8e13 / n) ** 0.076},{i % 5}\n" for i, n in enumerate(N))
    res = fit("-", "--form", "kaplan", "--where", "keep != 0", "--json", input=text)
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["n_points"] == 16 and out["constants"]["alpha_N"] == pytest.approx(0.076, rel=1e-4)


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "fit.png"
    res = fit(EPOCH, "--drop-top-loss", "5", "--grid", "20", "--plot", png)
    assert res.exit_code == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_and_docstring_example():
    res = runner.invoke(app, ["fit", "--help"])
    assert res.exit_code == 0 and "Example:" in res.stdout and "--bootstrap" in res.stdout
    from scalecalc.cli.fit import fit_command

    assert "Example:" in fit_command.__doc__


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "make, extra, code, line",
    [
        (
            lambda t: str(t / "missing.csv"),
            [],
            2,  # a missing file is a usage error
            "Error: {f}: no such file; give the path of a CSV, TSV or JSONL file of runs",
        ),
        (
            lambda t: _bad(t, "empty.csv", ""),
            [],
            1,
            "Error: {f}: the file is empty; give a header line and one row per run",
        ),
        (
            lambda t: _bad(t, "cols.csv", "size,loss\n1e8,3\n"),
            [],
            1,
            "Error: {f}: need two of params/tokens/flops (missing tokens, flops); columns found: size, "
            "loss; name them with --params-col, --tokens-col, --flops-col, --loss-col",
        ),
        (
            lambda t: _bad(t, "nan.csv", "N,D,loss\n1e8,2e9,3\n2e8,4e9,n/a\n"),
            [],
            1,
            "Error: {f}: column 'loss' has non-numeric values on line 3; fix or remove those rows (or "
            "filter them with --where)",
        ),
        (
            lambda t: _bad(t, "neg.csv", "N,D,loss\n1e8,2e9,3\n-2e8,4e9,2\n"),
            [],
            1,
            "Error: {f}: column 'N' has non-positive values on line 3; params must be > 0 (remove those "
            "rows or filter them with --where)",
        ),
        (
            lambda t: _bad(t, "few.csv", "N,D,loss\n1e8,2e9,3\n2e8,4e9,2.9\n4e8,8e9,2.8\n"),
            [],
            1,
            "Error: {f}: 3 points cannot fit the 5 free parameters of --form chinchilla; give at least 6 (ideally 25)",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--where", "X > 3"],
            2,
            "Error: --where: no column 'X' in {f}; columns found: N, D, loss",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--where", "N => 3"],
            2,
            "Error: --where: cannot read 'N => 3'; write 'COLUMN OP VALUE' with OP one of == != < <= > >=, "
            "e.g. --where 'loss < 5'",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--flops", "7nd"],
            2,
            "Error: --flops: unknown FLOP convention '7nd'; did you mean 6nd?",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--grid", "lots"],
            2,
            "Error: --grid: 'lots' is not full, coarse or a number of starts",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--drop-top-loss", "3"],
            1,
            "Error: --drop-top-loss 3 would drop all 1 rows of {f}",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--form", "envelope"],
            1,
            "Error: {f}: --form envelope needs learning curves: a run column (run, run_id, model) and "
            "one row per logged step",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["-o", "x.yaml", "--name", "My Law"],
            2,
            "Error: --name: 'My Law' must use only lower-case letters, digits, '.', '_' and '-', starting "
            "with a letter or digit (e.g. 'my-law')",
        ),
        (
            lambda t: _bad(t, "ok.csv", "N,D,loss\n1e8,2e9,3\n"),
            ["--form", "quadratic"],
            2,
            "Error: Invalid value for '--form': 'quadratic' is not one of 'chinchilla', 'gadre', "
            "'muennighoff', 'auto', 'isoflop', 'envelope', 'kaplan'.",
        ),
    ],
)
def test_bad_inputs_give_one_error_line(tmp_path, make, extra, code, line):
    f = make(tmp_path)
    res = fit(f, *extra)
    assert res.exit_code == code, res.stderr
    assert res.stderr == line.format(f=f) + "\n"
    assert res.stdout == ""
