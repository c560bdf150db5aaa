"""The validation layer (scalecalc/validate) and every hostile-input example found in review as a regression test,
each through the real CLI (typer's runner on the real app, or a subprocess where the process
itself matters: stdin bytes, resource limits, exit codes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import run

from scalecalc.errors import LawFileError
from scalecalc.validate import limits

ROOT = Path(__file__).resolve().parents[1]


def one_error(result, code: int, *needles: str) -> str:
    """The result is exactly one ``Error:`` line with exit ``code``, nothing on stdout."""
    err = result.stderr
    assert result.exit_code == code, (result.exit_code, result.stdout, err)
    assert result.stdout == "", result.stdout
    assert err.count("\n") == 1 and err.startswith("Error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# -- the limits table ---------------------------------------------------------------------------


def test_readme_limits_table_is_generated_from_limits_py():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- limits:start -->\n(.*?)\n<!-- limits:end -->", readme, re.S)
    assert table, "README lost its Input limits table"
    assert table.group(1) == limits.markdown_table(), (
        "README limits table is stale: regenerate it from limits.markdown_table()"
    )


def test_every_max_constant_is_in_the_table_and_used_by_expr():
    from scalecalc import expr

    names = {n for n in dir(limits) if n.startswith("MAX_")}
    assert names == {lim.name for lim in limits.LIMITS}
    assert all(getattr(limits, lim.name) == lim.value for lim in limits.LIMITS)
    assert (expr.MAX_LENGTH, expr.MAX_DEPTH) == (limits.MAX_FORMULA_CHARS, limits.MAX_FORMULA_DEPTH)


# -- resource exhaustion ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["plan", "compare"])
def test_ten_million_budgets_are_refused_by_the_budget_limit(command):
    start = time.perf_counter()
    one_error(run(command, "--compute", "1e10:1e30:10000000"), 2, "MAX_BUDGETS", "1,000,000")
    assert time.perf_counter() - start < 5  # refused before any value is built


def test_budgets_on_stdin_are_counted_too():
    text = "1e20\n" * (limits.MAX_BUDGETS + 1)
    one_error(run("plan", "--compute", "-", "--brief", input=text), 2, "MAX_BUDGETS")


def _billion_laughs(levels: int = 9) -> str:
    lines = [
        "name: laughs",
        "source: s",
        'loss: "E + A / N**alpha + B / D**beta"',
        "constants: {E: 1.7, A: 400, B: 400, alpha: 0.3, beta: 0.3}",
        "provenance:",
        "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    ]
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", [["plan", "--compute", "1e22", "--law"], ["formula"]])
def test_billion_laughs_law_file_is_refused(tmp_path, command):
    path = tmp_path / "laughs.yaml"
    path.write_text(_billion_laughs())
    one_error(run(*command, str(path)), 2, "laughs.yaml", "MAX_YAML_NODES")


def test_many_aliases_are_refused(tmp_path):
    path = tmp_path / "aliases.yaml"
    path.write_text(
        'name: x\nsource: s\nloss: "E + A/N**alpha + B/D**beta"\nnotes: &n x\nprovenance: ['
        + ", ".join(["*n"] * 200)
        + "]\n"
    )
    one_error(run("plan", "--compute", "1e22", "--law", str(path)), 2, "MAX_YAML_ALIASES")


def test_huge_law_file_and_bootstrap_block_are_refused_fast(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: x\nsource: s\nnotes: '" + "x" * (limits.MAX_LAW_FILE_BYTES + 10) + "'\n")
    one_error(run("plan", "--compute", "1e22", "--law", str(big)), 2, "MAX_LAW_FILE_BYTES")
    boot = tmp_path / "boot.yaml"
    values = ", ".join(["400.5"] * (limits.MAX_BOOTSTRAP_REPLICATES + 1))
    boot.write_text(
        'name: b\nsource: s\nloss: "E + A/N**alpha + B/D**beta"\n'
        "constants: {E: 1.7, A: 400, B: 400, alpha: 0.3, beta: 0.3}\n"
        f"bootstrap: {{A: [{values}]}}\n"
    )
    start = time.perf_counter()
    one_error(run("plan", "--compute", "1e22", "--law", str(boot)), 2, "MAX_BOOTSTRAP_REPLICATES")
    assert time.perf_counter() - start < 10  # generous: CI machines are shared


def test_symbolic_time_limit_interrupts_a_step():
    from scalecalc.validate.timeout import TimeLimitExceeded, time_limit

    start = time.perf_counter()
    with pytest.raises(TimeLimitExceeded, match="MAX_SYMBOLIC_SECONDS"):
        with time_limit(0.2, "the derivation", "MAX_SYMBOLIC_SECONDS"):
            while True:  # a step that never ends, like sympy on some formulas
                pass
    assert time.perf_counter() - start < 2


# -- tracebacks ---------------------------------------------------------------------------------

LAW_HEAD = "name: bad\nsource: s\n"


@pytest.mark.parametrize(
    "body, needle",
    [
        ('loss: "2.0"\n', "constant"),
        ('loss: "-1 - N**0.3 - D**0.3"\n', "negative"),
        ('loss: "1 + N**0.3 + D**0.3"\n', "increases"),
        ("loss: 2\n", "constant"),
        (
            'loss: "E + A/N**alpha + B/D**beta"\nconstants: {E: 1.7, A: 1e400, B: 400, alpha: 0.3, beta: 0.3}\n',
            "finite",
        ),
        (
            'loss: "E + A/N**alpha + B/D**beta"\nconstants: {E: 1.7, A: 400, B: 400, alpha: 0.3, beta: 0.3}\nwarnings: 5\n',
            "warnings must be a list",
        ),
        ('loss: "1 + A/N**0.3"\nconstants: {A: 400}\nform: chinchilla\n', "form chinchilla needs"),
    ],
)
@pytest.mark.parametrize("command", ["plan", "formula"])
def test_broken_laws_are_one_error_line(tmp_path, body, needle, command):
    path = tmp_path / "bad.yaml"
    path.write_text(LAW_HEAD + body)
    args = ["plan", "--compute", "1e22", "--law", str(path)] if command == "plan" else ["formula", str(path)]
    one_error(run(*args), 2, "bad.yaml", needle)


def test_integer_powers_and_custom_losses_plan_and_print(tmp_path):
    path = tmp_path / "ints.yaml"
    path.write_text(LAW_HEAD + 'loss: "1 + 400/N**2 + 400/D**2"\n')  # YAML ints, no chinchilla constants
    plan = run("plan", "--compute", "1e22", "--law", str(path), "--json", "--brief")
    assert plan.exit_code == 0, plan.stderr
    formula = run("formula", str(path))
    assert formula.exit_code == 0 and "Traceback" not in formula.stderr, formula.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--aspect-ratio", "1e300"], "--aspect-ratio"),
        (["--aspect-ratio", "0"], "--aspect-ratio"),
        (["--mfu", "nan"], "--mfu"),
        (["--gpus", "1" * 23], "--gpus"),
        (["--vocab", "1" * 23], "--vocab"),
        (["--tokens-per-param", "nan"], "--tokens-per-param"),
    ],
)
def test_nonsense_plan_options_are_refused_with_the_range(args, needle):
    err = one_error(run("plan", "--compute", "1e22", *args), 2, needle)
    assert re.search(r"in [\[(]", err)  # names the valid range


def test_compare_with_no_law_names_is_refused():
    one_error(run("compare", "--compute", "1e22", "--laws", ",,,"), 2, "--laws")


@pytest.mark.parametrize("option", ["--heads", "--n-layer", "--kv-heads"])
def test_zero_heads_or_layers_are_refused(option):
    args = {"--n-layer": "4", "--d-model": "256", "--heads": "4"}
    args[option] = "0"
    one_error(run("flops", *[x for kv in args.items() for x in kv]), 2, option)


@pytest.mark.parametrize(
    "config, needle",
    [
        (
            '{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 0, "vocab_size": 100, "max_position_embeddings": 128}',
            "num_attention_heads",
        ),
        (
            '{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 128, "text_config": [1]}',
            "text_config",
        ),
        (
            '{"num_hidden_layers": [2], "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 128}',
            "num_hidden_layers",
        ),
        ('{"text_config": {"num_hidden_layers": 2, "hidden_size": {"x": 1}}, "num_attention_heads": 4}', "hidden_size"),
        ("[" * 100000, "config"),
        ("\x00\x01binary", "binary"),
    ],
)
def test_hf_configs_with_unexpected_nesting_or_zero_heads(tmp_path, config, needle):
    path = tmp_path / "config.json"
    path.write_text(config)
    one_error(run("flops", "--hf-config", str(path)), 1 if needle == "binary" else 2, needle)  # unreadable: 1


def _subprocess(args, stdin: bytes = b"", cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scalecalc", *args], input=stdin, capture_output=True, timeout=60, cwd=cwd
    )


@pytest.mark.parametrize("args", [["plan", "--compute", "-"], ["fit", "-"]])
def test_binary_on_stdin_is_one_error_line(args):
    result = _subprocess(args, bytes(range(256)) * 4)
    err = result.stderr.decode()
    assert result.returncode in (1, 2) and result.stdout == b""
    assert err.count("\n") == 1 and err.startswith("Error: ") and "Traceback" not in err, err


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"params": 1' + "0" * 5000 + ', "tokens": 2e9, "loss": 3}\n', "unreadable JSON"),
        ('{"params": {"a": 1}, "tokens": 2e9, "loss": 3}\n', "non-numeric"),
        ("[" * 100000, "JSON"),
    ],
)
def test_jsonl_huge_integers_and_nested_objects(tmp_path, text, needle):
    path = tmp_path / "runs.jsonl"
    path.write_text(text)
    one_error(run("fit", str(path)), 1, needle)


def test_fit_seed_minus_one_and_output_directory(tmp_path):
    runs = ROOT / "tests" / "data"
    csv = next(runs.glob("*.csv"))
    one_error(run("fit", str(csv), "--seed", "-1"), 2, "--seed")
    one_error(run("fit", str(csv), "-o", str(tmp_path)), 2, "--output", "is a directory")
    one_error(run("fit", str(csv), "-o", str(tmp_path / "missing" / "law.yaml")), 2, "does not exist")
    one_error(run("plan", "--compute", "1e22", "--plot", str(tmp_path)), 2, "--plot", "is a directory")


# -- left-behind files and the disk ------------------------------------------------------------


def _fit_csv() -> Path:
    return (
        ROOT / "tests" / "data" / "chinchilla_fig4_epoch_extracted.csv"
        if (ROOT / "tests" / "data" / "chinchilla_fig4_epoch_extracted.csv").exists()
        else next((ROOT / "tests" / "data").glob("*.csv"))
    )


def test_failing_plot_leaves_no_law_file(tmp_path):
    law = tmp_path / "law.yaml"
    r = run("fit", str(_fit_csv()), "--grid", "coarse", "-o", str(law), "--plot", str(tmp_path / "fig.txt"))
    one_error(r, 2, "--plot")
    assert os.listdir(tmp_path) == []


def test_disk_full_while_writing_the_law_leaves_nothing(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) makes every write past 1 kB fail with EFBIG, as a full
    disk fails with ENOSPC, without root; the tmpfs version is in test_calibration_hostile."""
    import resource

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    law = tmp_path / "law.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalecalc",
            "fit",
            str(_fit_csv()),
            "--grid",
            "coarse",
            "--bootstrap",
            "20",
            "-o",
            str(law),
        ],
        capture_output=True,
        timeout=300,
        preexec_fn=small_disk,
    )
    err = result.stderr.decode()
    assert result.returncode == 1 and result.stdout == b"", err
    assert err.count("\n") == 1 and err.startswith("Error: --output: cannot write") and "Traceback" not in err, err
    assert os.listdir(tmp_path) == []


def test_atomic_write_removes_its_temporary_file_on_failure(tmp_path):
    from scalecalc.errors import ScalecalcError
    from scalecalc.validate.paths import atomic_write

    def fail(f):
        f.write("partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(ScalecalcError, match="No space left"):
        atomic_write(tmp_path / "out.yaml", fail, option="-o")
    assert os.listdir(tmp_path) == []


# -- noise on stderr ----------------------------------------------------------------------------


def test_extreme_csv_values_print_no_numpy_warnings(tmp_path):
    path = tmp_path / "runs.csv"
    rows = ["params,tokens,loss", "1e308,1e308,1e-308"] + [
        f"{1e7 * 2**i},{2e8 * 1.7**i},{4 - 0.2 * i}" for i in range(8)
    ]
    path.write_text("\n".join(rows) + "\n")
    result = _subprocess(["fit", str(path), "--grid", "coarse"])
    err = result.stderr.decode()
    assert "RuntimeWarning" not in err and "Traceback" not in err, err


# -- unit level: loaders refuse what the CLI refuses ---------------------------------------------


def test_yaml_loader_refuses_alias_bombs_before_constructing():
    from scalecalc.validate.yamlfile import load

    start = time.perf_counter()
    with pytest.raises(LawFileError, match="MAX_YAML_NODES"):
        load(_billion_laughs(10), "x.yaml", error=LawFileError)
    assert time.perf_counter() - start < 2
    assert load("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}
