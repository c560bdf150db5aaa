"""docs/reference.md is the project's reference: every cited section exists, no citation leaves the repo.

Code, tests, benches, docs, man pages, recipes and the README cite the reference as
``docs/reference.md §N`` or ``§N.M`` (lists such as ``§1.6, §6`` and ranges such as ``§2-§7``
included). A section exists when a Markdown heading of docs/reference.md starts with its number
(``## 1. Kaplan ...`` is §1, ``### 1.6 ...`` is §1.6).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"

# What is scanned: the tracked source trees and the top-level docs. Build outputs, virtual
# environments and test data (CSV) are not citations.
SCANNED_DIRS = ("scalecalc", "tests", "bench", "docs", "calibrate", "man", ".ci")
SCANNED_TOP = ("README.md", "CHANGELOG.md", "pyproject.toml")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".toml", ".txt", ".1", ".cfg", ".ini", ""}
SKIPPED_PARTS = {"__pycache__", ".venv", "venv", "build", "dist", ".git", ".pytest_cache", ".hypothesis", "data"}

HEADING = re.compile(r"^#{1,6}[ \t]+(\d+(?:\.\d+)*)\.?[ \t]+\S", re.MULTILINE)
SECTION = re.compile(r"§[ \t]?(\d+(?:\.\d+)*)")
# "docs/reference.md §1.6", "reference.md §1.3, §1.6, §1.7", "docs/reference.md §2-§7". The
# pre-restructure form "REFERENCE(.md) §N" names the same sections: the restructure rewrites it
# to docs/reference.md mechanically, so it must resolve here too.
CITATION = re.compile(
    r"(?:\b(?:docs/)?reference\.md|\bREFERENCE(?:\.md)?)[ \t]*,?[ \t]*"
    r"((?:§[ \t]?\d+(?:\.\d+)*(?:[ \t]*(?:,|;|/|-|–|and|or)[ \t]*)?)+)"
)
# Sources outside the repository: the shared notes, their sibling documents, and issue numbers
# used as a reference. A reader of a fresh clone cannot open any of them.
OUTSIDE = {
    "REFERENCE §": re.compile(r"\bREFERENCE(?:\.md)?[ \t]*§"),
    "REFERENCE.md": re.compile(r"\bREFERENCE\.md\b"),
    "CONTRACTS.md": re.compile(r"\bCONTRACTS(?:\.md)?\b"),
    "STYLE §/STYLE.md": re.compile(r"\bSTYLE(?:\.md)?[ \t]*§|\bSTYLE\.md\b"),
    "DESIGN.md": re.compile(r"\bDESIGN\.md\b"),
    "issue N": re.compile(r"\bissue[ \t]+\d+\b", re.IGNORECASE),
    "../shared/": re.compile(r"\.\./shared/"),
}


def sections(markdown: str) -> list[str]:
    """Section numbers of the headings of ``markdown``, in document order."""
    return HEADING.findall(markdown)


def cited_sections(text: str) -> list[str]:
    """Every section number ``text`` cites in the reference (see :data:`CITATION`)."""
    text = text.replace("\\u00a7", "§")  # JSON files (builtin.json) escape the section sign
    return [num for group in CITATION.findall(text) for num in SECTION.findall(group)]


def outside_citations(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) for each citation of a source outside the repository."""
    text = text.replace("\\u00a7", "§")
    return [(kind, m.group(0)) for kind, rx in OUTSIDE.items() for m in rx.finditer(text)]


def scanned_files() -> list[Path]:
    paths = [ROOT / name for name in SCANNED_TOP if (ROOT / name).is_file()]
    for top in SCANNED_DIRS:
        base = ROOT / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_PARTS.intersection(rel.parts[:-1]):
                paths.append(path)
    return paths


def _lines(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return
    for number, line in enumerate(text.splitlines(), 1):
        yield f"{path.relative_to(ROOT)}:{number}", line


# -- (a) the reference's own sections ------------------------------------------------------------


def test_reference_sections_parse_unique_nested_and_in_order():
    numbers = sections(REFERENCE.read_text(encoding="utf-8"))
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    assert not duplicates, f"section numbers used twice: {duplicates}"
    known = set(numbers)
    orphans = [n for n in numbers if "." in n and n.rsplit(".", 1)[0] not in known]
    assert not orphans, f"subsections without a parent section: {orphans}"
    keys = [tuple(int(p) for p in n.split(".")) for n in numbers]
    assert keys == sorted(keys), "sections are out of numerical order"
    # the published sources and the planner's additions are all there
    assert {"1.6", "1.9", "2.2", "2.3", "3.2", "5.4", "8", "9", "10", "12", "13", "14"} <= known


def test_section_parser_reads_headings_only():
    text = "# Title\n## 1. Kaplan\n### 1.6 Batch\nsee §1.7 in the text\n#### 10.2 Deep\n##no\n"
    assert sections(text) == ["1", "1.6", "10.2"]


# -- (b) every citation resolves -----------------------------------------------------------------


def test_citation_parser_reads_lists_ranges_and_the_old_form():
    line = (
        "see docs/reference.md §1.6, §6 step 2; reference.md §2-§7 and REFERENCE §5.4, "
        "REFERENCE.md §12 item 4; \\u00a79 alone is no citation, nor is §3"
    )
    assert cited_sections(line) == ["1.6", "6", "2", "7", "5.4", "12"]
    assert cited_sections('"source": "x (REFERENCE \\u00a73.2)"') == ["3.2"]
    assert cited_sections("docs/reference.md (the project's reference)") == []


def test_every_cited_section_exists():
    known = set(sections(REFERENCE.read_text(encoding="utf-8")))
    files = scanned_files()
    assert any(p.name == "planner.py" for p in files)  # the scan reaches the package
    missing, count = [], 0
    for path in files:
        for where, line in _lines(path):
            for num in cited_sections(line):
                count += 1
                if num not in known:
                    missing.append(f"{where}: §{num}")
    assert count > 0, "no citations of the reference found: is the pattern stale?"
    assert not missing, "citations of sections docs/reference.md lacks:\n" + "\n".join(missing)


# -- (c) nothing points outside the repository ---------------------------------------------------


def test_outside_source_patterns():
    found = outside_citations(
        "x (REFERENCE §2.2); CONTRACTS.md; STYLE §9; DESIGN.md; issue 3; "
        "../shared/data; REFERENCES runs(id); huggingface issue #9"
    )
    assert [kind for kind, _ in found] == [
        "REFERENCE §",
        "CONTRACTS.md",
        "STYLE §/STYLE.md",
        "DESIGN.md",
        "issue N",
        "../shared/",
    ]


def test_no_citation_points_outside_the_repository():
    this = Path(__file__).resolve()
    found = [
        f"{where}: {kind}: {text!r}"
        for path in scanned_files()
        if path.resolve() != this
        for where, line in _lines(path)
        for kind, text in outside_citations(line)
    ]
    assert not found, (
        "citations of sources outside the repository (cite docs/reference.md "
        "or docs/architecture.md instead):\n" + "\n".join(found)
    )


# -- "Checked by" names real tests ---------------------------------------------------------------

TEST_REF = re.compile(r"`(tests/[\w/]+\.py)?::(test_\w+)`")


def named_tests(markdown: str) -> list[tuple[str, str]]:
    """(file, test) for each ``tests/f.py::test_x`` in ``markdown``; ``::test_y`` reuses the last file."""
    out, last = [], None
    for m in TEST_REF.finditer(markdown):
        last = m.group(1) or last
        out.append((last, m.group(2)))
    return out


def test_named_tests_parser_carries_the_file_forward():
    text = "`tests/a.py::test_x` and `::test_y`; `tests/b.py::test_z`"
    assert named_tests(text) == [("tests/a.py", "test_x"), ("tests/a.py", "test_y"), ("tests/b.py", "test_z")]


def test_every_test_the_reference_names_exists():
    named = named_tests(REFERENCE.read_text(encoding="utf-8"))
    assert len(named) > 100
    missing = []
    for file, name in named:
        path = ROOT / file if file else None
        if (
            path is None
            or not path.is_file()
            or not re.search(rf"^\s*def {name}\(", path.read_text(encoding="utf-8"), re.MULTILINE)
        ):
            missing.append(f"{file}::{name}")
    assert not missing, "docs/reference.md names tests that do not exist:\n" + "\n".join(missing)
