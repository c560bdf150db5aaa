"""Overhead per run of the Ray and Slurm executors against local, on the same tiny recipe.

    python bench/executor_overhead.py [--runs 4] [--no-ray] [--no-slurm]

Trains ``--runs`` tiny runs (one CPU thread each) three ways and prints the wall time of each
sweep, its ratio to local, and (wall - local) / runs: the cost an executor adds per run
(submission, worker start-up with its torch import, result transfer, polling). Ray runs on a
one-node local cluster this script starts (its start-up is printed apart); Slurm needs a running
controller (``bash .ci/slurm.sh start``). ``--array-parallelism 1`` and one Ray CPU keep the runs
one after another, as the local executor trains them, so the ratio is overhead, not parallelism.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """
name: bench-executors
tokenizer: bytes
data_max_bytes: 1e6
seq_len: 32
mlp: gelu
head_dim: 8
lr: 1e-2
warmup_steps: 10
eval_points: 6
eval_batches: 2
sweeps:
  - shapes: [{{d_model: 16, n_layer: 1}}]
    batch_size: 8
    steps: 200
    seed: [{seeds}]
"""
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}


def sweep(recipe: Path, out: Path, *extra) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalecalc",
            "calibrate",
            "run",
            str(recipe),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--threads",
            "1",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-slurm", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scb", dir="/tmp"))
    recipe = work / "r.yaml"
    recipe.write_text(RECIPE.format(seeds=", ".join(str(i) for i in range(args.runs))))
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from scalecalc.calibration.data import load_corpus; load_corpus(None, max_bytes=1000000)",
        ],
        check=True,
    )
    times = {"local": sweep(recipe, work / "local")}
    if not args.no_slurm:
        times["slurm"] = sweep(recipe, work / "slurm", "--executor", "slurm", "--array-parallelism", "1")
    if not args.no_ray:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        t0 = time.perf_counter()
        head = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "ray"),
                "start",
                "--head",
                "--block",
                f"--port={port}",
                "--num-cpus=1",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={work / 'ray'}",
                "--node-ip-address=127.0.0.1",
            ],
            env=ENV,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while (
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR')",
                        f"127.0.0.1:{port}",
                    ],
                    capture_output=True,
                    env=ENV,
                ).returncode
                != 0
            ):
                time.sleep(0.5)
            print(f"ray: one-node cluster up in {time.perf_counter() - t0:.1f} s")
            times["ray"] = sweep(recipe, work / "ray-out", "--executor", "ray", "--address", f"127.0.0.1:{port}")
        finally:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
    base = times["local"]
    print(f"{'executor':8} {'wall s':>8} {'ratio':>6} {'overhead s/run':>15}  ({args.runs} runs)")
    for name, t in times.items():
        print(f"{name:8} {t:8.1f} {t / base:6.2f} {(t - base) / args.runs:15.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
