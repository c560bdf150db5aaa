"""bench/gpu_check.py in its --reduced CPU mode: the GPU script itself runs and its checks pass
(fused AdamW, bf16 autocast, the OOM message with a simulated error; torch.compile on CPU in the
opt-in slow test), so whoever has a GPU can trust it to run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def _run(tmp_path, *extra):
    out = tmp_path / "gpu_check.json"
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--reduced", "--seconds", "0.1", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(out.read_text()), r.stdout


def test_reduced_gpu_check_runs_every_path_on_cpu(tmp_path):
    report, stdout = _run(tmp_path, "--no-compile")
    assert report["reduced"] is True and report["device"] == "cpu"
    for name in ("fused_adamw", "bf16_autocast", "oom_message"):
        assert report["checks"][name]["passed"], report["checks"][name]
    assert "smaller batch_size" in report["checks"]["oom_message"]["detail"]
    assert all(r["tokens_per_s"] > 0 and 0 < r["mfu"] < 1 for r in report["runs"].values())
    assert set(report["packing"]) == {"1", "2"}
    assert "PASS fused_adamw" in stdout


@pytest.mark.skipif(
    not os.environ.get("SCALECALC_SLOW_TESTS"), reason="torch.compile on CPU takes 1-2 minutes; SCALECALC_SLOW_TESTS=1"
)
def test_reduced_gpu_check_compiles_on_cpu(tmp_path):
    report, _ = _run(tmp_path)
    assert report["checks"]["compile"]["passed"], report["checks"]["compile"]
