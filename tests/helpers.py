"""Shared test helpers: run the real CLI and parse its JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from scalecalc.cli import app

runner = CliRunner()

# The settings of the tiny byte-level calibration sweeps the calibration tests train (a few
# seconds per run on one CPU thread); each test file adds its name and sweeps.
TINY_SWEEP_SETTINGS = """
tokenizer: bytes
data_max_bytes: 1e6
seq_len: 32
mlp: gelu
head_dim: 8
lr: 1e-2
warmup_steps: 10
eval_points: 12
eval_interval: 50
eval_batches: 2
"""


def run(*args: str, input: str | None = None):
    """Invoke the CLI in-process; returns the click Result (exit_code, stdout, stderr)."""
    return runner.invoke(app, list(args), input=input)


def run_json(*args: str, input: str | None = None):
    result = run(*args, "--format", "json", input=input)
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def run_rows(*args: str, input: str | None = None) -> list[dict]:
    """The rows of a row command's JSON document ``{"rows": [...], "notes": [...]}``."""
    doc = run_json(*args, input=input)
    assert set(doc) >= {"rows", "notes"}, doc
    return doc["rows"]


def run_row(*args: str, input: str | None = None) -> dict:
    """The single row of a one-budget query."""
    rows = run_rows(*args, input=input)
    assert len(rows) == 1, rows
    return rows[0]
