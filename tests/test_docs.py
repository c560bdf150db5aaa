"""Docs follow the code: README examples are real output, every command is documented and has
help, the man pages are current, CI runs the README's test command, and the layering holds."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from scalecalc.cli import app
from tests.helpers import run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
sys.path.insert(0, str(ROOT / "docs"))
import update_readme  # noqa: E402


def _commands():
    root = typer.main.get_command(app)
    for name, cmd in sorted(root.commands.items()):
        yield (name,), cmd
        for sub, subcmd in sorted(getattr(cmd, "commands", {}).items()):
            yield (name, sub), subcmd


@pytest.mark.parametrize(
    "command,expected", update_readme.blocks(README), ids=lambda v: v if v.startswith("scalecalc") else ""
)
def test_readme_examples_are_real_output(command, expected):
    actual = update_readme.run(command)
    assert update_readme.same_output(actual, expected), "stale README example: run python docs/update_readme.py"


def test_readme_comparison_tolerates_only_float_noise_and_counters():
    same = update_readme.same_output
    assert same("a 0.45652591432553524 b", "a 0.4565259143255463 b")
    assert same("nfev 69345; converged", "nfev 69335; converged")
    assert not same("loss 1.9114", "loss 1.9115")  # printed digits are the answer: exact
    assert not same("a 0.45652591432553524 b", "a 0.45652591432 b")
    assert not same("a 0.456525914325535 b", "a 0.456525924325535 b")
    assert not same("N* 95.9B", "N* 95.8B")


@pytest.mark.parametrize("path,cmd", list(_commands()), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help_and_is_in_the_readme(path, cmd):
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    assert f"scalecalc {' '.join(path)}" in README
    result = run(*path, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_man_pages_are_current():
    from scalecalc.cli.manpage import MAN_DIR, pages

    wanted = pages()
    present = {p.name for p in MAN_DIR.glob("*.1")}
    assert present == set(wanted), "run python -m scalecalc.cli.manpage"
    for name, text in wanted.items():
        assert (MAN_DIR / name).read_text() == text, f"{name} is stale: run python -m scalecalc.cli.manpage"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"# BEGIN README TEST COMMAND\n(.*?)\n# END README TEST COMMAND", ci, re.S).group(1).strip()
    assert f"```bash\n{block}\n```" in README


def test_core_modules_never_import_typer_or_rich():
    for path in (ROOT / "scalecalc").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "scalecalc").parts:
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(typer|rich)\b", text, re.M), path


def test_a_plain_plan_imports_no_heavy_module():
    code = (
        "import sys, runpy; sys.argv = ['scalecalc', 'plan', '--compute', '1e24', '--format', 'json']\n"
        "try:\n    runpy.run_module('scalecalc', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = [m for m in ('sympy', 'scipy', 'torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_console_entry_point_registers_what_it_runs():
    """`python -m scalecalc` goes through main(), which registers command modules lazily."""

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "scalecalc", *args], capture_output=True, text=True, cwd=ROOT)

    help_text = cli("--help").stdout
    for name in ("plan", "compare", "laws", "formula", "flops", "fit", "calibrate"):
        assert name in help_text
    assert cli("plan", "--compute", "1e22", "--brief", "--json").returncode == 0
    assert cli("flops", "--n-layer", "2", "--d-model", "128", "--json").returncode == 0
    bad = cli("nosuchcmd")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: No such command")


def test_no_eval_and_only_safe_yaml_loaders():
    """Law files and recipes come from users: nothing evaluates text, and YAML is loaded safely."""
    for path in (ROOT / "scalecalc").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"(?<![\w.])(eval|exec)\(", text), f"{path}: eval/exec"
        assert not re.search(r"sympify\(|unsafe_load|FullLoader|Loader=yaml\.Loader\b", text), path
        for line in (ln for ln in text.splitlines() if "yaml.load(" in ln):
            assert re.search(r"Loader=(loader|yaml\.SafeLoader|yaml\.CSafeLoader)\b", line), f"{path}: {line}"
            assert "yaml.SafeLoader" in line or 'getattr(yaml, "CSafeLoader", yaml.SafeLoader)' in text, path
