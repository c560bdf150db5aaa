"""Calibration under the bad-input contract: recipes with wrong types, absurd
sizes or unknown keys; --data that is empty, binary, not UTF-8 or a folder without text; a
corrupted or truncated store; an out dir that cannot be written; a disk that fills mid-run.
Each is one ``Error:`` line, no traceback, and the store stays consistent so a rerun resumes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from scalecalc.cli import app  # noqa: E402

RECIPE = """
name: hostile
tokenizer: bytes
data_max_bytes: 1e6
seq_len: 32
mlp: gelu
head_dim: 8
lr: 1e-2
warmup_steps: 2
eval_points: 3
eval_interval: 10
eval_batches: 1
sweeps:
  - shapes: [{d_model: 16, n_layer: 1}]
    batch_size: 4
    steps: 12
"""
CORPUS = "def f(x):\n    return x * 2 + 1  # a line of python\n" * 400


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error(result, code=None, *needles):
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert result.exit_code in ((code,) if code else (1, 2)), (result.exit_code, result.output)
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def recipe(tmp_path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    return path


@pytest.fixture()
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS)
    return path


@pytest.mark.parametrize(
    "change, needle",
    [
        (
            ("d_model: 16, n_layer: 1", "d_model: 30000000, n_layer: 1000"),
            "MAX_CALIBRATION_MEMORY_BYTES",
        ),  # ~1e19 params
        (("batch_size: 4", "batch_size: four"), "batch_size"),
        (("batch_size: 4", "batch_size: -4"), "batch_size"),
        (("steps: 12", "steps: 12\n    colour: blue"), "unknown key 'colour'"),
        (("lr: 1e-2", "lr: [[1]]"), "lr"),
        (
            ("name: hostile", "name: hostile\nx: &a [1]\n" + "\n".join(f"y{i}: *a" for i in range(200))),
            "MAX_YAML_ALIASES",
        ),
    ],
)
def test_bad_recipes_are_refused_before_any_model_is_built(tmp_path, recipe, change, needle):
    recipe.write_text(RECIPE.replace(*change))
    r = _invoke("calibrate", "run", recipe, "--out", tmp_path / "o", "--device", "cpu")
    _one_error(r, 2, needle)
    assert not (tmp_path / "o").exists()


def test_a_1e15_parameter_model_is_refused_by_its_memory_estimate():
    from scalecalc.validate.calibration import training_memory_bytes

    # d_model 2.9e6, 10 layers: 12 * 10 * d^2 ~ 1e15 parameters
    assert training_memory_bytes(10, 2_900_000, 256, 8, 32) > 1e16
    # the tiny GPT the tests train fits in kilobytes-to-megabytes
    assert training_memory_bytes(1, 16, 256, 4, 32) < 1e7


def _data_cases(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e\n".encode("latin-1") * 100)
    (tmp_path / "no-text").mkdir()
    (tmp_path / "no-text" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    return ["empty.txt", "binary.txt", "latin1.txt", "no-text"]


def test_unusable_data_is_one_error_line(tmp_path, recipe):
    for name in _data_cases(tmp_path):
        r = _invoke(
            "calibrate", "run", recipe, "--out", tmp_path / f"o-{name}", "--device", "cpu", "--data", tmp_path / name
        )
        _one_error(r, None, "--data" if name != "no-text" else "")


def _train(recipe, out, corpus):
    return _invoke(
        "calibrate", "run", recipe, "--out", out, "--device", "cpu", "--threads", "1", "--data", corpus, "--json"
    )


def test_corrupted_and_truncated_stores_are_one_error_line(tmp_path, recipe, corpus):
    out = tmp_path / "o"
    assert _train(recipe, out, corpus).exit_code == 0
    store = out / "results.sqlite"
    for damage in ("garbage", "truncated"):
        bad = tmp_path / damage
        shutil.copytree(out, bad)
        data = (bad / "results.sqlite").read_bytes()
        for extra in bad.glob("results.sqlite-*"):
            extra.unlink()  # WAL/SHM files: without them the damage is what SQLite sees
        (bad / "results.sqlite").write_bytes(os.urandom(len(data)) if damage == "garbage" else data[: len(data) // 3])
        for command in (["calibrate", "status", bad], ["calibrate", "run", recipe, "--out", bad, "--device", "cpu"]):
            r = _invoke(*command)
            _one_error(r, 1, "results.sqlite")
    assert store.exists()


def test_out_dir_that_cannot_be_written_is_one_error_line(tmp_path, recipe, corpus):
    # root ignores permission bits, so the unwritable place is one under a regular file
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    r = _train(recipe, blocker / "runs", corpus)
    _one_error(r, None)
    assert blocker.read_text() == "x"


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    path.mkdir()
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_disk_full_mid_run_is_one_error_line_and_a_rerun_resumes(tmp_path, recipe, corpus):
    """A small tmpfs (as root) fills while the run writes its store and checkpoints; without
    root, RLIMIT_FSIZE makes writes past a size fail the same way (EFBIG instead of ENOSPC)."""
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "160k")
    if not mounted:
        disk.mkdir(exist_ok=True)
    out = disk / "runs"
    try:

        def small_file_limit():
            if not mounted:
                import resource

                resource.setrlimit(resource.RLIMIT_FSIZE, (160 * 1024, 160 * 1024))

        result = subprocess.run(
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
                "--data",
                str(corpus),
            ],
            capture_output=True,
            timeout=600,
            preexec_fn=small_file_limit,
        )
        err = result.stderr.decode()
        assert "Traceback" not in err, err[-3000:]
        if result.returncode != 0:
            assert result.returncode in (1, 2)
            assert sum(line.startswith("Error: ") for line in err.splitlines()) == 1, err
        # the store is consistent: it opens, and a rerun with room resumes to the end
        roomy = tmp_path / "roomy"
        if out.exists():
            shutil.copytree(out, roomy)
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], capture_output=True)
    if roomy.exists():
        with sqlite3.connect(roomy / "results.sqlite") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = _train(recipe, roomy, corpus)
    assert again.exit_code == 0, again.output
    assert '"done": 1' in again.stdout
