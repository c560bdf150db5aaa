"""Shared test helpers: run the real CLI and parse its JSON."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from scalecalc.cli import app

runner = CliRunner()


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
