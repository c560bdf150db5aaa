"""`calibrate run --executor ray|slurm` for real: a local Ray cluster of two nodes started here
(fake GPUs), the single-node Slurm that `.ci/run` starts (`.ci/slurm.sh`), the same tiny recipe
through each, node and driver kills mid-sweep, and the store compared with a local run.

A test needing Slurm skips only when no Slurm controller answers here; CI starts one, and
SCALECALC_REQUIRE_CLUSTER=1 (set by `.ci/run`) turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from helpers import TINY_SWEEP_SETTINGS  # noqa: E402

from scalecalc.calibration.store import Store  # noqa: E402

pytestmark = pytest.mark.torch

RECIPE = (
    """
name: tiny-cluster
"""
    + TINY_SWEEP_SETTINGS.lstrip("\n")
    + """sweeps:
  - shapes: [{d_model: 16, n_layer: 1}, {d_model: 32, n_layer: 1}]
    batch_size: 8
    steps: 300
"""
)
REQUIRE = bool(os.environ.get("SCALECALC_REQUIRE_CLUSTER"))
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}


def _cli(*args, timeout=300, env=None):
    return subprocess.run(
        [sys.executable, "-m", "scalecalc", "calibrate", "run", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or ENV,
    )


def _sweep_args(recipe, out, *extra):
    return (recipe, "--out", out, "--device", "cpu", "--threads", "1", "--checkpoint-steps", "20", "--json", *extra)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="module")
def reference(recipe, tmp_path_factory):
    """The same sweep trained locally, uninterrupted: what every executor must reproduce."""
    out = tmp_path_factory.mktemp("local") / "runs"
    r = _cli(*_sweep_args(recipe, out))
    assert r.returncode == 0, r.stderr
    return out


def assert_same_store(got: Path, want: Path) -> None:
    """Same runs, all done, the same points (steps and losses), none duplicated."""
    with Store(got) as a, Store(want) as b:
        assert sorted(r.id for r in a.runs()) == sorted(r.id for r in b.runs())
        for run in a.runs():
            assert run.status == "done", (run.id, run.status, run.error)
            pa, pb = a.points(run.id), b.points(run.id)
            steps = [p.step for p in pa]
            assert steps == sorted(set(steps)) == [p.step for p in pb]
            assert [p.val_loss for p in pa] == [p.val_loss for p in pb]
            assert [p.train_loss for p in pa] == [p.train_loss for p in pb]
            assert run.params == b.run(run.id).params and run.corpus_hash
        rows = a._db.execute("SELECT COUNT(*), COUNT(DISTINCT run_id || ':' || step) FROM points").fetchone()
        assert rows[0] == rows[1]


def _one_error_line(r, *words):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


# -- bad input: one line, exit 2, nothing written, no cluster needed ---------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (("--partition", "gpu"), ("--partition", "--executor")),
        (("--executor", "ray", "--partition", "gpu"), ("--partition", "slurm")),
        (("--executor", "slurm", "--address", "auto"), ("--address", "ray")),
        (("--executor", "nomad"), ("--executor", "local, ray or slurm")),
        (("--executor", "ray", "--shared-dir", "/proc/no/such"), ("--shared-dir", "writable")),
        (("--executor", "ray", "--gpus-per-run", "-1"), ("--gpus-per-run",)),
        (("--executor", "slurm", "--gpus-per-run", "0.5"), ("--gpus-per-run", "integer")),
        (("--executor", "slurm", "--time", "soon"), ("--time", "HH:MM:SS")),
        (("--executor", "slurm", "--sbatch-flag", "qos"), ("--sbatch-flag",)),
    ],
)
def test_bad_options_fail_before_any_cluster(recipe, tmp_path, monkeypatch, args, words):
    from typer.testing import CliRunner

    from scalecalc.cli import app

    monkeypatch.setenv("PATH", "/nonexistent")  # no sbatch: option errors come first anyway
    out = tmp_path / "runs"
    r = CliRunner().invoke(app, ["calibrate", "run", str(recipe), "--out", str(out), *args])
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    _one_error_line(r, *words)
    assert not out.exists()


def test_no_sbatch_on_path(recipe, tmp_path):
    r = _cli(recipe, "--out", tmp_path / "o", "--executor", "slurm", env={**ENV, "PATH": "/nonexistent"})
    assert r.returncode == 2
    _one_error_line(r, "sbatch", "PATH")
    assert not (tmp_path / "o").exists()


def test_no_ray_cluster_at_address(recipe, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _cli(recipe, "--out", tmp_path / "o", "--executor", "ray", "--address", f"127.0.0.1:{port}", timeout=60)
    assert r.returncode == 2
    _one_error_line(r, "--address", "ray start --head")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("executor, extra", [("ray", "scalecalc[ray]"), ("slurm", "scalecalc[slurm]")])
def test_missing_extra_names_it(recipe, tmp_path, executor, extra):
    module = {"ray": "ray", "slurm": "submitit"}[executor]
    code = (
        f"import sys; sys.modules[{module!r}] = None; from scalecalc.cli import main; "
        f"sys.argv = ['scalecalc', 'calibrate', 'run', {str(recipe)!r}, '--out', "
        f"{str(tmp_path / 'o')!r}, '--executor', {executor!r}]; main()"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert r.returncode == 1
    _one_error_line(r, extra)
    assert not (tmp_path / "o").exists()


# -- Ray: a real two-node local cluster ------------------------------------------------------


class RayCluster:
    """`ray start --head --block` and a second node joined by address, each in its own process
    group (so a test can SIGKILL one node whole), fake GPUs; stopped by process group."""

    def __init__(self):
        pytest.importorskip("ray")
        self.ray = str(Path(sys.executable).parent / "ray")
        self.tmp = tempfile.mkdtemp(prefix="scr", dir="/tmp")  # short: Unix socket paths
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.head = self._start(
            "--head",
            f"--port={self.port}",
            f"--temp-dir={self.tmp}",
            "--include-dashboard=false",
            "--node-ip-address=127.0.0.1",
        )
        self._wait_nodes(1)
        self.worker = self.start_worker()

    def _start(self, *args):
        return subprocess.Popen(
            [self.ray, "start", "--block", "--num-cpus=1", "--num-gpus=2", "--disable-usage-stats", *args],
            env=ENV,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start_worker(self):
        proc = self._start(f"--address={self.address}", "--node-ip-address=127.0.0.1")
        self._wait_nodes(2)
        return proc

    def _wait_nodes(self, n, timeout=90):
        code = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
            "print(sum(x['Alive'] for x in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run([sys.executable, "-c", code, self.address], capture_output=True, text=True, env=ENV)
            if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]:
                return
            time.sleep(1)
        raise AssertionError(f"the Ray cluster did not reach {n} nodes: {r.stderr[-500:]}")

    def kill_worker(self):
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def stop(self):
        for proc in (self.worker, self.head):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (self.worker, self.head):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    t0 = time.perf_counter()
    cluster = RayCluster()
    print(f"\nRay cluster (2 nodes) up in {time.perf_counter() - t0:.1f} s")
    yield cluster
    cluster.stop()


def test_ray_sweep_equals_local(ray_cluster, recipe, reference, tmp_path):
    out = tmp_path / "runs"
    r = _cli(*_sweep_args(recipe, out, "--executor", "ray", "--address", ray_cluster.address, "--gpus-per-run", "0.5"))
    assert r.returncode == 0, r.stderr
    assert "ray: submitted 2 run(s)" in r.stderr
    assert_same_store(out, reference)
    with Store(out) as store:
        meta = store.meta()["executor"]
    assert meta["name"] == "ray" and all(len(v) == 1 for v in meta["runs"].values())
    status = subprocess.run(
        [sys.executable, "-m", "scalecalc", "calibrate", "status", str(out), "--json"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    rows = json.loads(status.stdout)["rows"]
    assert {row["executor"] for row in rows} == {"ray"} and all(row["tasks"] for row in rows)


def test_ray_gpus_per_run_larger_than_any_node(ray_cluster, recipe, tmp_path):
    r = _cli(
        recipe, "--out", tmp_path / "o", "--executor", "ray", "--address", ray_cluster.address, "--gpus-per-run", "3"
    )
    assert r.returncode == 2
    _one_error_line(r, "--gpus-per-run", "at most 2")
    assert not (tmp_path / "o").exists()


def _wait_for_progress(shared: Path, step: int, proc, timeout=180):
    """Until some run's streamed points (on the shared dir) reach ``step``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        for f in (shared / "checkpoints").glob("*.points.jsonl"):
            lines = f.read_text().splitlines()
            if lines and json.loads(lines[-1])[0] >= step:
                return f.name.split(".")[0]
        time.sleep(0.1)
    raise AssertionError("no run made progress")


def test_ray_worker_node_killed_mid_run(ray_cluster, recipe, reference, tmp_path):
    out, shared = tmp_path / "runs", tmp_path / "shared"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalecalc",
            "calibrate",
            "run",
            *map(
                str,
                _sweep_args(recipe, out, "--executor", "ray", "--address", ray_cluster.address, "--shared-dir", shared),
            ),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_progress(shared, 60, proc)
        ray_cluster.kill_worker()  # its raylet and workers: the task there is lost and retried
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        ray_cluster.worker = ray_cluster.start_worker()
    assert_same_store(out, reference)


def test_ray_driver_sigkill_then_rerun(ray_cluster, recipe, reference, tmp_path):
    out, shared = tmp_path / "runs", tmp_path / "shared"
    args = _sweep_args(recipe, out, "--executor", "ray", "--address", ray_cluster.address, "--shared-dir", shared)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scalecalc", "calibrate", "run", *map(str, args)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_progress(shared, 60, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    with Store(out) as store:
        assert store.counts()["running"] == 2  # claimed by a dead driver
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert_same_store(out, reference)


# -- Slurm: the single-node cluster of .ci/slurm.sh ------------------------------------------


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return r.returncode == 0 and bool(r.stdout.strip())


@pytest.fixture
def slurm():
    pytest.importorskip("submitit")
    if not _slurm_up():
        if REQUIRE:
            pytest.fail(
                "SCALECALC_REQUIRE_CLUSTER is set but no Slurm controller answers; "
                "start it with `bash .ci/slurm.sh start`"
            )
        pytest.skip(
            "no Slurm controller here; `bash .ci/slurm.sh install && bash .ci/slurm.sh "
            "start` (root) starts a single-node one"
        )
    node = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True).stdout.split()[0]
    yield node
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)


def test_slurm_sweep_equals_local(slurm, recipe, reference, tmp_path):
    out = tmp_path / "runs"
    r = _cli(
        *_sweep_args(
            recipe,
            out,
            "--executor",
            "slurm",
            "--partition",
            "debug",
            "--gpus-per-run",
            "1",
            "--time",
            "10",
            "--array-parallelism",
            "2",
        )
    )
    assert r.returncode == 0, r.stderr
    assert "slurm: submitted 2 run(s)" in r.stderr
    assert_same_store(out, reference)


def test_slurm_bad_partition_and_too_many_gpus(slurm, recipe, tmp_path):
    r = _cli(recipe, "--out", tmp_path / "o", "--executor", "slurm", "--partition", "nope")
    assert r.returncode == 2
    _one_error_line(r, "--partition nope", "debug")
    r = _cli(recipe, "--out", tmp_path / "o", "--executor", "slurm", "--gpus-per-run", "64")
    assert r.returncode == 2
    _one_error_line(r, "--gpus-per-run 64", "at most")
    assert not (tmp_path / "o").exists()


def test_slurm_node_failure_requeues(slurm, recipe, reference, tmp_path):
    out, shared = tmp_path / "runs", tmp_path / "shared"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalecalc",
            "calibrate",
            "run",
            *map(str, _sweep_args(recipe, out, "--executor", "slurm", "--shared-dir", shared)),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_progress(shared, 60, proc)
        down = subprocess.run(
            ["scontrol", "update", f"nodename={slurm}", "state=down", "reason=scalecalc-test"],
            capture_output=True,
            text=True,
        )
        assert down.returncode == 0, down.stderr
        time.sleep(3)
        subprocess.run(["scontrol", "update", f"nodename={slurm}", "state=resume"], capture_output=True)
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_same_store(out, reference)


def test_slurm_driver_sigkill_then_rerun(slurm, recipe, reference, tmp_path):
    out, shared = tmp_path / "runs", tmp_path / "shared"
    args = _sweep_args(recipe, out, "--executor", "slurm", "--shared-dir", shared)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scalecalc", "calibrate", "run", *map(str, args)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_progress(shared, 60, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert_same_store(out, reference)


def test_slurm_ctrl_c_cancels_its_jobs_then_resumes(slurm, recipe, reference, tmp_path):
    out, shared = tmp_path / "runs", tmp_path / "shared"
    args = _sweep_args(recipe, out, "--executor", "slurm", "--shared-dir", shared)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scalecalc", "calibrate", "run", *map(str, args)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_progress(shared, 40, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "slurm: cancelled 2 pending or running task(s)" in err
    with Store(out) as store:
        jobs = [j for ids in store.meta()["executor"]["runs"].values() for j in ids]
        assert store.counts()["queued"] == 2
    deadline = time.monotonic() + 30  # scancel: the jobs leave the queue
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if not set(jobs) & set(queue):
            break
        time.sleep(0.5)
    assert not set(jobs) & set(queue)
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert_same_store(out, reference)


def test_points_file_keeps_the_first_row_of_a_step_like_the_store(tmp_path):
    """A run resumed at an eval step evaluates it again with no train loss to report; the store
    keeps the first point (INSERT OR IGNORE), and so must the file a remote task writes."""
    from scalecalc.calibration.executors.task import PointsFile
    from scalecalc.calibration.store import Point

    f = PointsFile(tmp_path, "r")
    f.add_points(
        [
            Point("r", 0, 0, 0, None, 5.0, 1e-3, 0.0),
            Point("r", 50, 1, 1, 3.0, 2.5, 1e-3, 1.0),
            Point("r", 60, 2, 2, 2.9, None, 1e-3, 1.2),
        ]
    )
    f.truncate_points_after("r", 50)  # resumed from the checkpoint at step 50
    f.add_points([Point("r", 50, 1, 1, None, 2.5, 1e-3, 1.0), Point("r", 60, 2, 2, 2.8, None, 1e-3, 1.3)])
    assert [r[0] for r in f.rows()] == [0, 50, 60]
    assert f.rows()[1][3] == 3.0 and f.rows()[2][3] == 2.8
