"""`scalecalc calibrate` end to end on CPU: a tiny sweep through the real CLI, a divergent run,
a SIGKILLed sweep that resumes to the same curves, and the learning-rate schedule.

Every sweep here trains byte-level models of a few thousand parameters on the first megabyte of
the default corpus (the Python standard library), with one CPU thread so that runs are
deterministic and two of them can be compared exactly.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from helpers import TINY_SWEEP_SETTINGS  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from scalecalc.calibration.recipe import RunConfig, parse_recipe  # noqa: E402
from scalecalc.calibration.store import Store  # noqa: E402
from scalecalc.cli import app  # noqa: E402

pytestmark = pytest.mark.torch

COMMON = TINY_SWEEP_SETTINGS

SWEEP = (
    COMMON
    + """
name: tiny
sweeps:
  - name: sizes
    shapes: [{d_model: 8, n_layer: 1}, {d_model: 16, n_layer: 1}, {d_model: 32, n_layer: 1},
             {d_model: 32, n_layer: 2}, {d_model: 48, n_layer: 2}]
    batch_size: 8
    steps: 200
  - name: batch
    shapes: [{d_model: 16, n_layer: 1}]
    batch_size: [4, 16, 32]
    tokens: 5e4
  - name: diverge
    shapes: [{d_model: 16, n_layer: 1}]
    batch_size: 8
    lr: 1e3
    steps: 200
"""
)

RESUME = (
    COMMON
    + """
name: resume
sweeps:
  - shapes: [{d_model: 16, n_layer: 1}, {d_model: 32, n_layer: 1}]
    batch_size: 8
    steps: 400
"""
)


def _recipe(tmp_path, text, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def test_tiny_sweep_end_to_end_through_the_cli(tmp_path):
    recipe = _recipe(tmp_path, SWEEP)
    out = tmp_path / "runs"
    r = _invoke("calibrate", "run", recipe, "--out", out, "--device", "cpu", "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    with Store(out) as store:
        runs = {x.id: x for x in store.runs()}
        expected = parse_recipe(__import__("yaml").safe_load(SWEEP)).runs()
        assert set(runs) == {c.run_id for c in expected}
        statuses = {c.label(): runs[c.run_id].status for c in expected}
        # the absurd learning rate diverged, and the sweep went on to train everything else
        diverged = [lab for lab, s in statuses.items() if s == "diverged"]
        assert diverged == ["d16-l1-b8-lr1000-steps200-s0"]
        assert sum(s == "done" for s in statuses.values()) == len(expected) - 1
        bad = next(x for x in runs.values() if x.status == "diverged")
        assert "loss" in bad.error
        for cfg in expected:
            rec = runs[cfg.run_id]
            pts = store.points(rec.id)
            if rec.status != "done":
                continue
            # every planned eval step once; the learning curve goes down
            assert [p.step for p in pts] == cfg.eval_steps(rec.config["max_steps"])
            assert pts[-1].val_loss < pts[0].val_loss < math.log(256) + 0.5
            assert rec.params["total"] == sum(
                p.numel()
                for p in __import__("scalecalc.calibration.loop", fromlist=["x"]).build_model(cfg).parameters()
            )
            assert pts[-1].tokens == rec.config["max_steps"] * cfg.batch_size * cfg.seq_len
            assert pts[-1].flops == pytest.approx(pts[-1].tokens * rec.flops_per_token["6nd"])
            assert rec.corpus_hash and rec.device == "cpu" and rec.versions["torch"]
    # a second run is a no-op: everything is done or diverged
    again = _invoke("calibrate", "run", recipe, "--out", out, "--device", "cpu", "--json")
    assert again.exit_code == 0 and '"done": 8' in again.stdout

    status = _invoke("calibrate", "status", out, "--format", "csv")
    assert status.exit_code == 0
    lines = status.stdout.strip().splitlines()
    assert lines[0].startswith("run_id,label,status") and len(lines) == 1 + len(expected)
    assert sum(",diverged," in line for line in lines) == 1

    fit = _invoke("calibrate", "fit", out, "--bootstrap", "0", "--json")
    assert fit.exit_code == 0, fit.output
    law = out / "law.yaml"
    assert law.is_file() and str(law) in fit.stdout
    constants = __import__("json").loads(fit.stdout)["constants"]
    assert {"N_c", "alpha_N", "Bstar", "alpha_B"} <= set(constants)
    plan = _invoke("plan", "--law", law, "--compute", "1e15", "--json")
    assert plan.exit_code == 0, plan.output


def _run_until(cmd, out, run_id, step, sig):
    """Start the sweep, wait until ``run_id`` has a point at ``step`` or later, send ``sig``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if _max_step(out, run_id) >= step:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be stopped"
        os.kill(proc.pid, sig)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_then_sigkill_resume_to_the_uninterrupted_result(tmp_path):
    recipe = _recipe(tmp_path, RESUME)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = [
        sys.executable,
        "-m",
        "scalecalc",
        "calibrate",
        "run",
        str(recipe),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--checkpoint-steps",
        "25",
        "--json",
        "--out",
    ]
    # warm the corpus cache so the stopped processes spend their time training
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from scalecalc.calibration.data import load_corpus; load_corpus(None, max_bytes=1000000)",
        ],
        check=True,
    )
    first, second = (c.run_id for c in parse_recipe(__import__("yaml").safe_load(RESUME)).runs())
    # Ctrl-C: the run checkpoints at the next step, goes back to the queue, exit code 130
    assert _run_until(cmd + [str(killed)], killed, first, 60, signal.SIGINT) == 130
    with Store(killed) as s:
        assert s.run(first).status == "queued"
    assert (killed / "checkpoints" / f"{first}.pt").is_file()
    # SIGKILL: no chance to clean up; the run stays 'running' under a dead worker
    assert _run_until(cmd + [str(killed)], killed, second, 60, signal.SIGKILL) == -signal.SIGKILL
    with Store(killed) as s:
        assert s.run(first).status == "done" and s.run(second).status == "running"
    assert (killed / "checkpoints" / f"{second}.pt").is_file()
    resumed = subprocess.run(cmd + [str(killed)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = subprocess.run(cmd + [str(clean)], capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    with Store(killed) as a, Store(clean) as b:
        assert [r.id for r in a.runs()] == [r.id for r in b.runs()]
        for ra in a.runs():
            assert ra.status == "done"
            pa, pb = a.points(ra.id), b.points(ra.id)
            steps = [p.step for p in pa]
            assert steps == sorted(set(steps)) == RunConfig.from_dict(ra.config).eval_steps(ra.config["max_steps"])
            assert [p.step for p in pb] == steps
            # same seeds, same data windows, restored RNG and optimizer: the same numbers
            assert [p.val_loss for p in pa] == [p.val_loss for p in pb]
            assert [p.train_loss for p in pa] == [p.train_loss for p in pb]
    assert not list((killed / "checkpoints").glob("*.pt"))  # removed once a run is done


PACKED_RESUME = (
    COMMON
    + """
name: packed-resume
sweeps:
  - shapes: [{d_model: 16, n_layer: 1}]
    batch_size: 8
    lr: [1e-2, 5e-3]
    seeds: 2
    steps: 300
"""
)


def test_sigkill_mid_packed_step_resumes_every_member_to_the_uninterrupted_result(tmp_path):
    """Four runs packed together (--runs-per-device 4); SIGKILL mid-step; the rerun resumes
    every member from its checkpoint, and each curve equals an uninterrupted packed sweep's."""
    recipe = _recipe(tmp_path, PACKED_RESUME)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = [
        sys.executable,
        "-m",
        "scalecalc",
        "calibrate",
        "run",
        str(recipe),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--checkpoint-steps",
        "25",
        "--runs-per-device",
        "4",
        "--json",
        "--out",
    ]
    runs = parse_recipe(__import__("yaml").safe_load(PACKED_RESUME)).runs()
    assert _run_until(cmd + [str(killed)], killed, runs[0].run_id, 60, signal.SIGKILL) == -signal.SIGKILL
    with Store(killed) as s:
        assert {r.status for r in s.runs()} == {"running"}  # all four in the dead worker's pack
    assert len(list((killed / "checkpoints").glob("*.pt"))) == 4
    for out in (killed, clean):
        done = subprocess.run(cmd + [str(out)], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    with Store(killed) as a, Store(clean) as b:
        assert len(a.runs()) == 4
        for ra in a.runs():
            assert ra.status == "done"
            pa, pb = a.points(ra.id), b.points(ra.id)
            assert [p.step for p in pa] == [p.step for p in pb] == sorted({p.step for p in pa})
            assert [p.val_loss for p in pa] == [p.val_loss for p in pb]
            assert [p.train_loss for p in pa] == [p.train_loss for p in pb]
    assert not list((killed / "checkpoints").glob("*.pt"))


def _max_step(out, run_id) -> int:
    try:
        db = sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True, timeout=1)
        row = db.execute("SELECT MAX(step) FROM points WHERE run_id=?", (run_id,)).fetchone()
        db.close()
        return row[0] or 0
    except sqlite3.Error:
        return 0


def test_one_worker_process_per_device(tmp_path):
    recipe = _recipe(
        tmp_path,
        COMMON
        + """
name: two
sweeps:
  - shapes: [{d_model: 8, n_layer: 1}, {d_model: 16, n_layer: 1}]
    batch_size: [4, 8]
    steps: 100
""",
    )
    out = tmp_path / "o"
    r = _invoke("calibrate", "run", recipe, "--out", out, "--devices", "cpu,cpu", "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    assert __import__("json").loads(r.stdout)["done"] == 4
    with Store(out) as s:
        for run in s.runs():
            steps = [p.step for p in s.points(run.id)]
            assert run.status == "done" and steps == RunConfig.from_dict(run.config).eval_steps(100)


def test_dry_run_lists_runs_with_a_measured_time(tmp_path):
    recipe = _recipe(tmp_path, RESUME)
    r = _invoke("calibrate", "run", recipe, "--out", tmp_path / "x", "--dry-run", "--device", "cpu", "--json")
    assert r.exit_code == 0, r.output
    rows = __import__("json").loads(r.stdout)["rows"]
    assert [row["steps"] for row in rows] == [400, 400]
    assert all(row["seconds"] > 0 and row["D"] == 400 * 8 * 32 for row in rows)
    assert not (tmp_path / "x").exists()  # a dry run writes nothing


def test_recipe_errors_and_unknown_devices_are_one_line(tmp_path):
    bad = _recipe(tmp_path, "name: x\nsweeps: [{lr: 1, batch_size: 2, tokens: 1e4, foo: 1}]\n")
    r = _invoke("calibrate", "run", bad, "--out", tmp_path / "o")
    assert r.exit_code == 2
    assert r.output.count("Error: ") == 1 and "unknown key 'foo'" in r.output
    r = _invoke("calibrate", "run", _recipe(tmp_path, RESUME, "ok.yaml"), "--out", tmp_path / "o", "--device", "tpu")
    assert r.exit_code == 2 and "Error: --device tpu: unknown device" in r.output


def test_missing_or_too_small_data_is_one_line(tmp_path):
    recipe = _recipe(tmp_path, RESUME)
    r = _invoke(
        "calibrate", "run", recipe, "--out", tmp_path / "o", "--device", "cpu", "--data", tmp_path / "missing.txt"
    )
    assert r.exit_code == 2 and r.output.count("Error: ") == 1  # a missing file: usage
    assert "--data:" in r.output and "does not exist" in r.output
    assert not (tmp_path / "o").exists()
    small = tmp_path / "small.txt"
    small.write_text("print('hello')\n" * 4)
    r = _invoke("calibrate", "run", recipe, "--out", tmp_path / "o", "--device", "cpu", "--data", small)
    assert r.exit_code == 1 and r.output.count("Error: ") == 1, r.output
    assert "fewer than one batch" in r.output
    with Store(tmp_path / "o") as s:  # nothing was trained and nothing is marked failed
        assert s.counts()["queued"] == 2 and s.counts()["failed"] == 0


def test_missing_torch_is_one_line_with_the_install_hint(tmp_path):
    recipe = _recipe(tmp_path, RESUME)
    code = (
        "import sys; sys.modules['torch'] = None; sys.argv = ['scalecalc', 'calibrate', "
        f"'run', {str(recipe)!r}, '--out', {str(tmp_path / 'o')!r}]; "
        "from scalecalc.cli import main; main()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == ("Error: torch is not installed; install it with: pip install 'scalecalc[calibrate]'")


def test_learning_rate_schedules():
    from scalecalc.calibration.loop import get_lr

    base = dict(n_layer=1, n_head=1, d_model=16, lr=1.0, min_lr_frac=0.1)
    cos = RunConfig(**base, schedule="cosine")
    assert get_lr(0, cos, 10, 100) == pytest.approx(0.1)  # 1. warmup
    assert get_lr(9, cos, 10, 100) == pytest.approx(1.0)
    assert get_lr(10, cos, 10, 100) == pytest.approx(1.0)  # 3. cosine from the peak...
    assert get_lr(100, cos, 10, 100) == pytest.approx(0.1)  # ...to 10 %
    assert get_lr(55, cos, 10, 100) == pytest.approx(0.55)
    const = RunConfig(**base, schedule="constant")
    assert get_lr(99, const, 10, 100) == 1.0  # 2.
    wsd = RunConfig(**base, schedule="wsd", cooldown_frac=0.2)
    assert get_lr(79, wsd, 10, 100) == 1.0  # 4. stable until the last 20 %...
    assert get_lr(99, wsd, 10, 100) == pytest.approx(0.1)  # ...then linear to 10 %
    assert 0.1 < get_lr(90, wsd, 10, 100) < 1.0
