"""Bad input never crashes: one `Error: ...` line on stderr naming the option, exit 2 or 1."""

from __future__ import annotations

import pytest

from tests.helpers import run

# (arguments, exit code, text the single error line must contain)
CASES = [
    (["plan"], 2, "give a budget"),
    (["plan", "-c", "-1e24"], 2, "--compute: '-1e24' must be greater than zero"),
    (["plan", "-c", "0"], 2, "--compute: '0' must be greater than zero"),
    (["plan", "-c", "nan"], 2, "--compute: cannot read 'nan'"),
    (["plan", "-c", "inf"], 2, "--compute: cannot read 'inf'"),
    (["plan", "-c", "1e999"], 2, "not finite"),
    (["plan", "-c", "abc"], 2, "--compute: cannot read 'abc'"),
    (["plan", "-c", "12Q"], 2, "--compute: cannot read '12Q'"),
    (["plan", "-c", "1e24", "--law", "nope"], 2, "--law: unknown law 'nope'"),
    (["plan", "-c", "1e24", "--law", "besiroglu"], 2, "did you mean besiroglu2024"),
    (["plan", "-c", "1e24", "--flops", "7nd"], 2, "--flops: unknown FLOP convention '7nd'; did you mean 6nd?"),
    (["plan", "-c", "1e24", "--params", "7B"], 2, "use just one budget option, not --compute and --params"),
    (["plan", "--tokens-per-param", "20", "--params", "7B"], 2, "--tokens-per-param fixes D/N"),
    (["plan", "-c", "1e24", "--tokens-per-param", "0"], 2, "--tokens-per-param must be a positive number"),
    (["plan", "-c", "1e24", "--tokens-per-param", "-3"], 2, "--tokens-per-param must be a positive number"),
    (["plan", "--gpu-hours", "1000"], 2, "--gpu-hours needs --gpu"),
    (["plan", "-c", "1e24", "--mfu", "2"], 2, "'--mfu'"),
    (["plan", "-c", "1e20:1e10:5"], 2, "must have START <= STOP"),
    (["plan", "-c", "1e20:1e26"], 2, "must be START:STOP:COUNT"),
    (["plan", "-c", "1e20:1e26:2.5"], 2, "must be a whole number"),
    (["plan", "--loss", "1.5"], 1, "at or below the floor of law besiroglu2024 (1.817"),
    (["plan", "--loss", "-2"], 2, "--loss: '-2' must be greater than zero"),
    (["plan", "-c", "1e24", "--law", "muennighoff2023"], 2, "needs --unique-tokens"),
    (["plan", "--comute", "1e24"], 2, "No such option: --comute"),
    (["plan", "-c", "1e24", "--format", "xml"], 2, "'--format'"),
    (["plan", "--loss", "2", "--law", "llama3"], 2, "law llama3 defines no loss"),
    (["plan", "--params", "1e50"], 1, "--params: value outside what law besiroglu2024 can reach"),
    (["plan", "-c", "1e24", "--law", "/nonexistent/law.yaml"], 2, "does not exist"),
    (["plan", "-c", "1e24", "--vocab", "0"], 2, "'--vocab'"),
    (["plan", "-c", "1e24", "--aspect-ratio", "-3", "--flops", "head"], 2, "--aspect-ratio must be a positive number"),
    (["plan", "-c", "1e24", "--unique-tokens", "-5"], 2, "--unique-tokens: '-5' must be greater than zero"),
    (["plan", "-c", "1e24", "--loss", "2"], 2, "use just one budget option"),
    (["plan", "-c", "-"], 2, "no numbers on stdin"),
    (["compare"], 2, "Missing option '--compute'"),
    (["compare", "-c", "1e24", "--laws", "foo"], 2, "--laws: unknown law 'foo'"),
    (["compare", "-c", "1e24", "--path", "kaplan"], 2, "--path: unknown correction path 'kaplan'"),
    (["nosuchcmd"], 2, "No such command 'nosuchcmd'"),
    (["formula", "nope"], 2, "unknown law 'nope'"),
    # issue 8: one exit rule (a missing file or folder named on the command line is a usage error)
    (["fit", "/nonexistent/runs.csv"], 2, "/nonexistent/runs.csv: no such file"),
    (["calibrate", "status", "/nonexistent/out"], 2, "/nonexistent/out: no such folder"),
    (["flops", "--hf-config", "/nonexistent/config.json"], 2, "'--hf-config'"),
    (["plan", "--usd", "1e6", "--gpu", "v100-sxm2"], 2, "--usd: the catalog has no price for"),
    (["formula", "besiroglu2024", "--format", "csv"], 2, "--format csv: formula prints text or JSON"),
    (["plan", "-c", "1e22", "--plot", "/nonexistent/dir/x.png"], 2, "--plot: directory"),
]


@pytest.mark.parametrize("args,code,text", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_gives_one_error_line(args, code, text):
    result = run(*args, input="")
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.stderr


def test_stdin_budgets_with_a_bad_line_name_the_line():
    result = run("plan", "-c", "-", input="1e22\nbanana\n")
    assert result.exit_code == 2
    assert "stdin line 2" in result.stderr


def test_at_least_thirty_cases():
    assert len(CASES) >= 30
