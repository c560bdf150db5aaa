"""The library examples run: every doctest in the package and the README's "Library use" section."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import scalecalc

README = Path(__file__).resolve().parents[1] / "README.md"
_SKIP = ("scalecalc.calibration", "scalecalc.cli", "scalecalc.plot")  # need extras or a terminal


def _modules() -> list[str]:
    names = ["scalecalc"]
    for info in pkgutil.walk_packages(scalecalc.__path__, "scalecalc."):
        if not info.name.startswith(_SKIP) and not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def _with_examples() -> list[str]:
    return [
        name
        for name in _modules()
        if doctest.DocTestFinder().find(importlib.import_module(name))
        and any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name)))
    ]


def test_the_package_docstring_and_plan_have_examples():
    assert {"scalecalc", "scalecalc.planner"} <= set(_with_examples())


@pytest.mark.parametrize("name", _with_examples())
def test_module_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_readme_library_section():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Library use") :]
    section = section[: section.index("\n## ", 3)]
    code = "\n".join(re.findall(r"```pycon\n(.*?)```", section, flags=re.S))
    test = doctest.DocTestParser().get_doctest(code, {}, "README: Library use", str(README), 0)
    assert len(test.examples) >= 5
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
