"""Law files: built-ins load, user files are validated, unsafe formulas are refused with file+line."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from scalecalc.errors import LawFileError, UnknownName
from scalecalc.laws import builtin_names, load_law
from tests.helpers import run, run_json

GOOD = """\
name: mylaw
source: my runs, 2026
loss: E + A / N**alpha + B / D**beta
constants: {E: 1.8, A: 400, B: 2000, alpha: 0.35, beta: 0.37}
flops: 6nd
"""


def _write(tmp_path, text, name="law.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_every_builtin_law_loads_and_cites_a_source():
    names = builtin_names()
    assert {
        "kaplan2020",
        "hoffmann2022-a1",
        "hoffmann2022-a2",
        "hoffmann2022-a3",
        "hoffmann2022-a3-rounded",
        "besiroglu2024",
        "llama3",
        "porian2024",
        "deepseek2024",
        "muennighoff2023",
    } <= set(names)
    for name in names:
        law = load_law(name)
        assert law.source and law.flops


def test_user_law_file_plans(tmp_path):
    path = _write(tmp_path, GOOD)
    (row,) = run_json("plan", "--compute", "1e22", "--law", str(path))["rows"]
    assert row["law"] == "mylaw"
    assert row["compute"] == pytest.approx(6 * row["params"] * row["tokens"])


def test_yaml_scientific_strings_are_numbers(tmp_path):
    path = _write(tmp_path, GOOD.replace("A: 400", "A: 4e2"))  # PyYAML reads 4e2 as a string
    assert load_law(path).constants["A"] == 400.0


UNSAFE = [
    ("loss: __import__('os').system('echo pwned')", "line 3"),
    ("loss: E.__class__", "line 3"),
    ("loss: N[0] + D", "line 3"),
    ("loss: (lambda x: x)(N)", "line 3"),
    ("loss: sum([N for N in range(3)])", "line 3"),
    ("loss: open('/etc/passwd')", "line 3"),
    ("loss: N if D else E", "line 3"),
]


@pytest.mark.parametrize("line,where", UNSAFE)
def test_unsafe_formulas_are_refused_with_file_and_line(tmp_path, line, where):
    path = _write(tmp_path, GOOD.replace("loss: E + A / N**alpha + B / D**beta", line))
    with pytest.raises(LawFileError) as err:
        load_law(path)
    assert str(path) in str(err.value) and where in str(err.value)
    result = run("plan", "--compute", "1e22", "--law", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "pwned" not in result.stdout + result.stderr.replace("echo pwned", "")


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: x\nloss: N\n", "source"),
        (GOOD.replace("flops: 6nd", "flops: 7nd"), "unknown FLOP convention"),
        (GOOD.replace("alpha: 0.35", "alpha: fast"), "not a number"),
        (GOOD + "colour: blue\n", "unknown key 'colour'"),
        (GOOD.replace("B / D**beta", "B / D**gamma"), "undefined name(s) gamma"),
        ("name: x\nsource: y\nconstants: {}\n", "needs a loss"),
        ("- just\n- a list\n", "mapping"),
        ("name: x\nsource: [unclosed\n", "line"),
    ],
)
def test_malformed_law_files(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(LawFileError, match=None) as err:
        load_law(path)
    assert message in str(err.value)


def test_unknown_builtin_suggests_close_names():
    with pytest.raises(UnknownName) as err:
        load_law("besiroglu")
    assert "besiroglu2024" in str(err.value)


def test_bootstrap_replicates_give_intervals(tmp_path):
    rng = np.random.default_rng(0)
    boot = {
        k: (v * (1 + 0.02 * rng.standard_normal(50))).tolist()
        for k, v in {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.35, "beta": 0.37}.items()
    }
    import yaml

    data = yaml.safe_load(GOOD)
    data["bootstrap"] = boot
    path = tmp_path / "boot.yaml"
    path.write_text(yaml.safe_dump(data))
    (row,) = run_json("plan", "--compute", "1e22", "--law", str(path))["rows"]
    lo, hi = row["params_ci"]
    assert lo < row["params"] < hi
    assert row["loss_ci"][0] < row["loss"] < row["loss_ci"][1]
    assert row["tokens_ci"][0] < row["tokens"] < row["tokens_ci"][1]


def test_definitions_needing_an_absent_variable_are_skipped(tmp_path):
    path = _write(tmp_path, GOOD + "define: {Cmin: C / 2}\ncritical_batch: 2e8 / L**4.76\n")
    law = load_law(path)
    assert float(law.evaluate("critical_batch", L=2.0)) == pytest.approx(2e8 / 2.0**4.76)


@pytest.mark.parametrize(
    "value,text",
    [
        (7e10, "70B"),
        (1.4e12, "1.4T"),
        (999_950, "1M"),
        (999_949, "1M"),
        (998_000, "998K"),
        (512, "512"),
        (175e6, "175M"),
        (0.5, "0.5"),
    ],
)
def test_counts_print_with_suffixes(value, text):
    from scalecalc.quantities import format_count

    assert format_count(value) == text


def test_compiled_builtins_match_their_yaml():
    """builtin.json (read by plan to skip importing yaml) must equal a fresh parse of the YAML
    files, which stay the source of truth. Fix with: python -m scalecalc.laws"""
    import json

    from scalecalc.laws import _COMPILED, compile_builtins

    # text, not dicts: key order matters (define: entries are evaluated in sequence)
    assert _COMPILED.read_text() == json.dumps(compile_builtins(), indent=1) + "\n"
    for name in builtin_names():  # and each compiled law builds the same Law as its YAML file
        from_json = load_law(name)
        from_yaml = load_law(str(from_json.path))
        assert (from_json.constants, from_json.flops, from_json.loss and from_json.loss.text) == (
            from_yaml.constants,
            from_yaml.flops,
            from_yaml.loss and from_yaml.loss.text,
        )
