"""Latency of a plain `scalecalc plan` query, and throughput of one call over many budgets.

Prints, from one run:
1. the median wall time of `scalecalc plan --compute 1e24 --format json` as a subprocess against
   `python -c "import numpy"` (runs interleaved so machine noise hits both alike); target ratio <= 1.5;
2. the median wall time of a plan with every block on (shape, hyperparameters, hardware);
   target ratio <= 1.7;
3. the time to plan 100,000 budgets in one library call, rows included (target <= 0.5 s), and
   through the CLI (`--compute -` from stdin, CSV out; target <= 2 s).

Usage: python bench/plan_latency.py [--repeat 21]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

EXE = shutil.which("scalecalc") or sys.executable
PLAIN = (
    [EXE, "plan", "--compute", "1e24", "--format", "json"]
    if EXE != sys.executable
    else [sys.executable, "-m", "scalecalc", "plan", "--compute", "1e24", "--format", "json"]
)
FULL = PLAIN + ["--gpu", "h100", "--gpus", "1024", "--hparams", "porian2024", "--inference-tokens", "1e13"]
BASELINE = [sys.executable, "-c", "import numpy"]


def _time(cmd: list[str], stdin: bytes | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _interleaved(commands: dict[str, list[str]], repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median and minimum wall time per command; the minimum is the least noise-sensitive
    estimate of start-up cost on a shared machine, the median the typical experience."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the page cache and .pyc files
        _time(cmd)
    for _ in range(repeat):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    return ({name: statistics.median(t) for name, t in times.items()}, {name: min(t) for name, t in times.items()})


def _compile_package() -> None:
    """Byte-compile scalecalc like `pip install` does: an editable checkout under
    PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every module on every start."""
    import compileall
    import pathlib

    import scalecalc

    compileall.compile_dir(pathlib.Path(scalecalc.__file__).parent, quiet=1)


def main() -> None:
    _compile_package()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()

    commands = {"numpy": BASELINE, "plan": PLAIN}
    try:
        subprocess.run(FULL, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        commands["plan+blocks"] = FULL
    except subprocess.CalledProcessError:
        print("(plan with all blocks not available in this build; skipped)")
    med, low = _interleaved(commands, args.repeat)
    labels = {
        "numpy": "python -c 'import numpy'",
        "plan": "scalecalc plan --compute 1e24 --json",
        "plan+blocks": "plan with shape/hparams/hardware",
    }
    for name in commands:
        target = {"plan": 1.5, "plan+blocks": 1.7}.get(name)
        ratio = (
            ""
            if name == "numpy"
            else (
                f"   ratio median {med[name] / med['numpy']:.2f}, "
                f"min {low[name] / low['numpy']:.2f} (target <= {target})"
            )
        )
        print(f"{labels[name]:38s} median {med[name] * 1e3:6.1f} ms, min {low[name] * 1e3:6.1f} ms{ratio}")

    from scalecalc.laws import load_law
    from scalecalc.planner import Query, plan

    budgets = np.geomspace(1e18, 1e27, 100_000)
    law = load_law("besiroglu2024")
    start = time.perf_counter()
    result = plan(law, Query("compute", budgets))
    lib = time.perf_counter() - start
    start = time.perf_counter()
    result.rows()
    rows = time.perf_counter() - start
    stdin = "\n".join(f"{c:.6e}" for c in budgets).encode()
    cli = _time(PLAIN[:-4] + ["--compute", "-", "--format", "csv"], stdin=stdin)
    numeric = load_law("besiroglu2024")
    start = time.perf_counter()
    plan(numeric, Query("compute", budgets, flops="attention"))
    attn = time.perf_counter() - start
    print(
        f"100,000 budgets, library plan():       {lib:6.3f} s + {rows:.3f} s for the rows = "
        f"{lib + rows:.3f} s (target <= 0.5 s)"
    )
    print(f"100,000 budgets, numeric (attention):  {attn:6.3f} s")
    print(f"100,000 budgets, CLI stdin -> CSV:     {cli:6.3f} s (target <= 2 s)")


if __name__ == "__main__":
    main()
