"""The SQLite results store: atomic claims across processes, resume, no duplicate points."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys

import pytest

from scalecalc.calibration.store import Point, RunRecord, Store
from scalecalc.errors import MissingInput, StoreError


def _queue(path, n):
    with Store(path, create=True) as s:
        assert s.add_runs([(f"run{i:03d}", {"i": i}) for i in range(n)]) == n
        assert s.add_runs([("run000", {"i": 0})]) == 0  # already there: left alone


_CLAIMER = """
import json, sys, time
from scalecalc.calibration.store import Store
got = []
with Store(sys.argv[1]) as s:
    while (r := s.claim_next(sys.argv[2])) is not None:
        got.append(r.id)
        time.sleep(0.001)  # let the other process interleave
print(json.dumps(got))
"""


def test_two_processes_never_claim_the_same_run(tmp_path):
    _queue(tmp_path, 60)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, str(tmp_path), f"{socket.gethostname()}:w{k}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    try:
        got = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    finally:
        for p in procs:  # never leave a claimer running if the test fails
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs)
    all_ids = got[0] + got[1]
    assert sorted(all_ids) == [f"run{i:03d}" for i in range(60)]  # each exactly once
    assert not set(got[0]) & set(got[1])
    with Store(tmp_path) as s:
        assert s.counts()["running"] == 60


def test_a_run_of_a_dead_worker_is_reclaimed(tmp_path):
    _queue(tmp_path, 1)
    with Store(tmp_path) as s:
        # a worker on this host whose process is gone (pid 2**22 + 1 is beyond pid_max defaults)
        dead = f"{socket.gethostname()}:{2**22 + 1}"
        assert s.claim_next(dead).id == "run000"
        assert s.claim_next(f"{socket.gethostname()}:{os.getpid()}").id == "run000"
        # a live worker's run is not taken
        assert s.claim_next("someone-else") is None


def test_points_are_never_duplicated_and_truncate_resumes(tmp_path):
    _queue(tmp_path, 1)
    with Store(tmp_path) as s:
        pts = [
            Point("run000", k, 100.0 * k, 1e6 * k, None if k == 0 else 3.0 / k, 5.0 - k, 1e-3, 0.5 * k)
            for k in range(5)
        ]
        assert s.add_points(pts) == 5
        assert s.add_points(pts[2:]) == 0
        assert s.truncate_points_after("run000", 2) == 2
        assert [p.step for p in s.points("run000")] == [0, 1, 2]
        assert s.add_points(pts) == 2
        got = s.points("run000")
        assert got == pts and isinstance(got[0], Point)


def test_run_records_follow_the_contract(tmp_path):
    _queue(tmp_path, 2)
    with Store(tmp_path) as s:
        r = s.claim_next("me")
        s.set_run_info(
            r.id,
            device="cpu",
            params={"total": 10.0, "non_embedding": 6.0},
            flops_per_token={"6nd": 60.0},
            corpus_hash="abc",
            versions={"python": "3"},
        )
        s.finish(r.id, "done")
        s.set_meta(recipe="quick", recipe_text="name: quick")
        rec = s.runs("done")[0]
        assert isinstance(rec, RunRecord) and rec.status == "done" and rec.device == "cpu"
        assert rec.params["non_embedding"] == 6.0 and rec.flops_per_token == {"6nd": 60.0}
        assert rec.config == {"i": 0} and rec.finished >= rec.started >= rec.created
        assert [x.status for x in s.runs()] == ["done", "queued"]
        meta = s.meta()
        assert meta["recipe"] == "quick" and meta["schema_version"] == 1
        s.finish("run001", "failed", "boom")
        assert s.requeue() == 1 and s.run("run001").status == "queued"


def test_missing_and_foreign_stores_are_refused(tmp_path):
    with pytest.raises(MissingInput, match="nothing: no such folder"):  # exit 2
        Store(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no results store here"):
        Store(tmp_path / "empty")
    _queue(tmp_path, 1)
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (json.dumps(99),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99"):
        Store(tmp_path)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "results.sqlite").write_text("not a database" * 100)
    with pytest.raises(StoreError, match="not a scalecalc results store"):
        Store(tmp_path / "junk")
