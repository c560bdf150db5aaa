"""`scalecalc calibrate import`: a real `calibrate run` sweep exported to CSV, to TensorBoard event
files (written with the real TensorBoard writer, read back with TensorBoard's EventAccumulator)
and to W&B-style exports, imported into fresh stores: `calibrate fit` gives the constants of the
original store. Plus idempotence, skipped runs, and one `Error:` line for each kind of bad log.
"""

from __future__ import annotations

import csv
import json
import math

import pytest
import yaml
from helpers import TINY_SWEEP_SETTINGS

from scalecalc.calibration.store import Store
from tests.helpers import run

SWEEP = (
    """
name: tiny-import
"""
    + TINY_SWEEP_SETTINGS.lstrip("\n")
    + """sweeps:
  - name: sizes
    shapes: [{d_model: 8, n_layer: 1}, {d_model: 16, n_layer: 1}, {d_model: 32, n_layer: 1},
             {d_model: 32, n_layer: 2}]
    batch_size: 8
    steps: 150
  - name: batch
    shapes: [{d_model: 16, n_layer: 1}]
    batch_size: [4, 16, 32]
    tokens: 4e4
"""
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real tiny sweep trained by `calibrate run` on CPU, and its `calibrate fit` constants."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("trained")
    recipe = root / "recipe.yaml"
    recipe.write_text(SWEEP)
    out = root / "runs"
    r = run("calibrate", "run", str(recipe), "--out", str(out), "--device", "cpu", "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    return out, _fit(out)


def _fit(out) -> dict:
    r = run("calibrate", "fit", str(out), "--bootstrap", "0", "--json", "--output", str(out / "law.yaml"))
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["constants"]


def _runs(out):
    """(name, record, points) of the finished runs of a store."""
    with Store(out) as store:
        return [(f"run{i}", rec, store.points(rec.id)) for i, rec in enumerate(store.runs("done"))]


def _meta(rec) -> dict:
    return {
        "params_non_embedding": rec.params["non_embedding"],
        "params_total": rec.params["total"],
        "batch_size": rec.config["batch_size"],
        "seq_len": rec.config["seq_len"],
        "warmup_steps": rec.config["warmup_steps"],
    }


def _same_constants(got: dict, want: dict, rel: float) -> None:
    for key in ("N_c", "alpha_N", "S_c", "alpha_S", "Bstar", "alpha_B"):
        assert key in got, (key, got)
        assert got[key] == pytest.approx(want[key], rel=rel), key


def _import(out, *args):
    r = run("calibrate", "import", str(out), *map(str, args), "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["rows"]


@pytest.mark.torch
def test_csv_round_trip_gives_the_same_constants_and_is_idempotent(trained, tmp_path):
    out, want = trained
    path = tmp_path / "curves.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run",
                "non_embedding_params",
                "total_params",
                "batch_size",
                "seq_len",
                "warmup_steps",
                "step",
                "tokens",
                "val_loss",
                "lr",
            ]
        )
        for name, rec, pts in _runs(out):
            m = _meta(rec)
            for p in pts:
                w.writerow(
                    [
                        name,
                        m["params_non_embedding"],
                        m["params_total"],
                        m["batch_size"],
                        m["seq_len"],
                        m["warmup_steps"],
                        p.step,
                        p.tokens,
                        repr(p.val_loss),
                        p.lr,
                    ]
                )
    dest = tmp_path / "imported"
    rows = _import(dest, path)
    assert {r["status"] for r in rows} == {"imported"} and len(rows) == len(_runs(out))
    _same_constants(_fit(dest), want, 1e-9)
    # importing again changes nothing: same runs, same points
    before = (dest / "results.sqlite").stat().st_size, _counts(dest)
    again = _import(dest, path)
    assert {r["status"] for r in again} == {"already present"}
    assert _counts(dest) == before[1]


def _counts(out):
    with Store(out) as store:
        return len(store.runs()), sum(len(store.points(r.id)) for r in store.runs())


@pytest.mark.torch
def test_tensorboard_round_trip_with_the_real_writer_and_reader(trained, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    out, want = trained
    logs = tmp_path / "tb"
    runs_meta = {}
    for name, rec, pts in _runs(out):
        writer = SummaryWriter(log_dir=str(logs / name))
        for p in pts:
            writer.add_scalar("val/loss", p.val_loss, p.step)
            writer.add_scalar("train/lr", p.lr, p.step)
        writer.close()
        runs_meta[name] = _meta(rec)
    (logs / "scalecalc.yaml").write_text(yaml.safe_dump({"runs": runs_meta}))
    dest = tmp_path / "imported"
    rows = _import(dest, logs, "--tag", "val/loss")
    assert len(rows) == len(runs_meta) and {r["status"] for r in rows} == {"imported"}
    # TensorBoard stores scalars as float32: the constants agree to that precision
    _same_constants(_fit(dest), want, 2e-3)


@pytest.mark.torch
def test_wandb_exports_round_trip(trained, tmp_path):
    out, want = trained
    runs = _runs(out)
    # a chart panel's "Export CSV": Step, then "RUN - METRIC" (+ __MIN/__MAX) per run
    steps = sorted({p.step for _, _, pts in runs for p in pts})
    chart = tmp_path / "wandb_export.csv"
    with chart.open("w", newline="") as f:
        w = csv.writer(f)
        header = ["Step"]
        for name, _, _ in runs:
            header += [f"{name} - val_loss", f"{name} - val_loss__MIN", f"{name} - val_loss__MAX"]
        w.writerow(header)
        by = {name: {p.step: p.val_loss for p in pts} for name, _, pts in runs}
        for s in steps:
            row = [s]
            for name, _, _ in runs:
                v = by[name].get(s)
                row += ["" if v is None else repr(v)] * 3
            w.writerow(row)
    (tmp_path / "wandb_export.yaml").write_text(yaml.safe_dump({"runs": {name: _meta(rec) for name, rec, _ in runs}}))
    dest = tmp_path / "chart"
    assert len(_import(dest, chart)) == len(runs)
    _same_constants(_fit(dest), want, 1e-9)
    # run.history() saved as JSON, one file per run, with W&B's config.yaml layout as sidecar
    hist_dest = tmp_path / "history"
    files = []
    for name, rec, pts in runs:
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps([{"_step": p.step, "_runtime": p.wall_time, "val_loss": p.val_loss, "lr": p.lr} for p in pts])
        )
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump({k: {"desc": None, "value": v} for k, v in _meta(rec).items()})
        )
        files.append(path)
    assert len(_import(hist_dest, *files)) == len(runs)
    _same_constants(_fit(hist_dest), want, 1e-9)


# --- without torch: small hand-made logs --------------------------------------------------


def _write(path, text):
    path.write_text(text)
    return path


def test_metadata_from_flags_nan_points_dropped_and_reported(tmp_path):
    path = _write(tmp_path / "a.tsv", "step\tloss\n10\t5.0\n20\tnan\n30\t4.0\n")
    rows = _import(tmp_path / "s", path, "--params", "1e6", "--batch-size", "8", "--seq-len", "32")
    assert rows[0]["run"] == "a" and rows[0]["points"] == 2 and rows[0]["N"] == 1_000_000
    assert "1 NaN" in rows[0]["reason"] and rows[0]["batch_tokens"] == 256
    with Store(tmp_path / "s") as store:
        rec = store.runs()[0]
        assert rec.status == "done" and [p.val_loss for p in store.points(rec.id)] == [5.0, 4.0]
        assert store.points(rec.id)[-1].tokens == 30 * 256


def test_params_kind_total_and_tokens_give_the_batch(tmp_path):
    path = _write(
        tmp_path / "r.jsonl",
        "\n".join(
            json.dumps(x)
            for x in [
                {"run": "x", "params": 2e6, "tokens": 1000, "step": 10, "loss": 3.0},
                {"run": "x", "params": 2e6, "tokens": 2000, "step": 20, "loss": 2.5},
            ]
        ),
    )
    rows = _import(tmp_path / "s", path, "--params-kind", "total")
    assert rows[0]["N_total"] == 2_000_000 and rows[0]["batch_tokens"] == 100


def test_skip_bad_imports_the_rest_and_says_why(tmp_path):
    path = _write(
        tmp_path / "r.csv",
        "run,params,batch_size,step,loss\n"
        "good,1e6,8,1,3.0\ngood,1e6,8,2,2.9\nnoparams,,8,1,3.0\n"
        "back,1e6,8,2,3.0\nback,1e6,8,1,2.9\n",
    )
    rows = _import(tmp_path / "s", path, "--skip-bad")
    status = {r["run"]: (r["status"], r["reason"]) for r in rows}
    assert status["good"][0] == "imported"
    assert status["noparams"][0] == "skipped" and "parameter count" in status["noparams"][1]
    assert status["back"][0] == "skipped" and "backwards" in status["back"][1]


@pytest.mark.parametrize(
    "content, args, needle",
    [
        ("run,step,x\na,1,2\n", [], "no loss column"),
        ("run,step,loss\na,1,2\na,2,1.9\n", [], "no parameter count"),
        ("run,params,batch_size,step,loss\na,1e6,8,2,2\na,1e6,8,1,1.9\n", [], "steps go backwards"),
        ("run,params,step,loss\na,1e6,1,2\n", [], "no batch size"),
        ("run,step,loss\na,1,2\n", ["--tag", "val/loss"], "no column 'val/loss'"),
        ("step,loss\n1,2\n", ["--col", "nonsense"], "ROLE=COLUMN"),
        ("step,loss\n1,2\n", ["--params-kind", "embedding"], "--params-kind"),
    ],
)
def test_bad_tables_are_one_error_line_exit_2_nothing_written(tmp_path, content, args, needle):
    path = _write(tmp_path / "bad.csv", content)
    good = _write(tmp_path / "good.csv", "step,loss,params,batch_size\n1,3,1e6,8\n2,2.5,1e6,8\n")
    dest = tmp_path / "s"
    r = run("calibrate", "import", str(dest), str(good), str(path), *args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert not (dest / "results.sqlite").exists()  # nothing half-imported, not even good.csv


def test_tensorboard_folder_without_the_tag(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    logs = tmp_path / "tb" / "r1"
    writer = EventFileWriter(str(logs))
    for step, loss in ((1, 3.0), (2, 2.5)):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="train/loss", simple_value=loss)])
        writer.add_event(event_pb2.Event(step=step, wall_time=float(step), summary=summary))
    writer.close()
    r = run(
        "calibrate",
        "import",
        str(tmp_path / "s"),
        str(tmp_path / "tb"),
        "--tag",
        "val/loss",
        "--params",
        "1e6",
        "--batch-size",
        "4",
    )
    assert r.exit_code == 2
    assert r.stderr.startswith("Error: ") and "no scalar tag 'val/loss'" in r.stderr
    assert "train/loss" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    ok = _import(tmp_path / "s", tmp_path / "tb", "--tag", "train/loss", "--params", "1e6", "--batch-size", "4")
    assert ok[0]["run"] == "r1" and ok[0]["points"] == 2


def test_missing_source_bad_sidecar_and_unknown_format(tmp_path):
    r = run("calibrate", "import", str(tmp_path / "s"), str(tmp_path / "nope.csv"))
    assert r.exit_code == 2 and "nope.csv: no such file" in r.stderr
    path = _write(tmp_path / "x.csv", "step,loss\n1,2\n")
    _write(tmp_path / "x.yaml", "runs: [unclosed\n")
    r = run("calibrate", "import", str(tmp_path / "s"), str(path))
    assert r.exit_code == 2 and "x.yaml: not a readable YAML sidecar" in r.stderr
    _write(tmp_path / "x.yaml", "!!python/object/apply:os.system ['echo hi']\n")
    r = run("calibrate", "import", str(tmp_path / "s"), str(path))
    assert r.exit_code == 2 and "x.yaml" in r.stderr  # safe_load refuses python tags
    r = run("calibrate", "import", str(tmp_path / "s"), str(_write(tmp_path / "a.pkl", "x")))
    assert r.exit_code == 2 and "unknown log format" in r.stderr
    assert not (tmp_path / "s").exists()


def test_imported_runs_fit_like_trained_ones_on_synthetic_kaplan_curves(tmp_path):
    """Without torch: Kaplan curves exported to CSV, imported, fitted: the constants used to
    make them come back (the same check the estimator's own tests make on the curves)."""
    import numpy as np

    from scalecalc.calibration.estimate import KAPLAN_TABLE5, synthetic_curves

    curves = synthetic_curves(
        KAPLAN_TABLE5,
        [1e6, 3e6, 1e7, 3e7, 1e8],
        [2**17, 2**19, 2**21],
        steps=np.geomspace(1e3, 1e5, 30).round(),
        noise=0.0,
    )
    path = tmp_path / "k.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "non_embedding_params", "total_params", "batch_tokens", "warmup_steps", "step", "loss"])
        for c in curves:
            for s, x in zip(c.steps, c.loss):
                w.writerow([c.run_id, c.N_non_embedding, c.N_total, c.batch_tokens, 0, int(s), repr(float(x))])
    dest = tmp_path / "s"
    _import(dest, path)
    got = _fit(dest)
    for key in ("alpha_N", "alpha_S", "alpha_B"):
        assert got[key] == pytest.approx(KAPLAN_TABLE5[key], rel=0.05), key
    assert math.isfinite(got["N_c"])
