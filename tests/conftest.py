"""Shared fixtures: every test gets its own SCALECALC_HOME, and rich output is made stable."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    # The data dir is overridable, and tests never touch the user's cache.
    monkeypatch.setenv("SCALECALC_HOME", str(tmp_path_factory.mktemp("scalecalc_home")))
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
