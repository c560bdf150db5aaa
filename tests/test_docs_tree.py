"""The folder trees in the README ("File tree") and docs/architecture.md ("The tree") match the code:
every path they name exists, and every module and package of scalecalc/ is named in both."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = {"README.md": "## File tree", "docs/architecture.md": "## The tree"}


def _tree_paths(doc: str, heading: str) -> set[str]:
    """Paths named in the first code block under ``heading`` (indentation = nesting)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    block = text[text.index(heading) :].split("```", 2)[1]
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        names = re.match(r"\s*([^\s,]+(?:, [^\s,]+)*)", line).group(1)
        if not re.search(r"[./]", names.split(",")[0]):
            continue  # a continuation line of a description
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        first = None
        for name in (n.strip() for n in names.split(",")):
            if name.startswith("."):  # "hardware.py, .yaml": the same stem
                name = Path(first).stem + name if first else name
            first = first or name
            paths.add(parent + name.rstrip("/") + ("/" if name.endswith("/") else ""))
        if names.endswith("/"):
            stack.append((indent, parent + names))
    return paths


@pytest.mark.parametrize("doc", TREES)
def test_every_named_path_exists(doc):
    missing = sorted(p for p in _tree_paths(doc, TREES[doc]) if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"{doc} names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", TREES)
def test_every_module_is_named(doc):
    named = {p.rstrip("/") for p in _tree_paths(doc, TREES[doc])}
    code = {
        str(p.relative_to(ROOT))
        for folder in ("scalecalc", "scalecalc/calibration", "scalecalc/cli")
        for p in (ROOT / folder).iterdir()
        if (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py"))
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    if doc == "README.md":  # the README's tree names the packages, not every CLI module
        code = {p for p in code if not p.startswith("scalecalc/cli/")}
    assert not sorted(code - named), f"{doc} does not name: {sorted(code - named)}"
