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
