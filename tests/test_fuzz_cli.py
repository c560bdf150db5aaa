"""Fuzzing the real CLI (a subprocess per case) against the bad-input contract.

The contract (README "Errors and exit codes"): for any input, scalecalc exits 0, or prints one
``Error: ...`` line on stderr with exit 1 or 2 and nothing on stdout; it never prints a
traceback or numpy's ``RuntimeWarning`` noise, never runs past a few seconds or a memory limit,
and leaves no file behind when it fails (outputs are written whole, only on success).

Each case runs ``python -m scalecalc ...`` with ``resource.setrlimit`` in the child: an
address-space limit (RLIMIT_AS) and a CPU-time limit (RLIMIT_CPU), plus a wall-clock timeout.
Hypothesis generates numbers, ranges, law files, formulas, stdin, CSV/JSONL rows and HF configs.

The default run is bounded (``FUZZ_EXAMPLES`` examples per strategy, about a minute on two
cores); ``SCALECALC_FUZZ_EXAMPLES=500`` runs a longer local campaign.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("SCALECALC_FUZZ_EXAMPLES", "15"))
WALL_SECONDS = 20  # generous for a loaded 2-core CI machine; a healthy case takes < 2 s
CPU_SECONDS = 15
MEMORY_BYTES = 2 * 1024**3

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("SCALECALC_FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)


def _limits() -> None:  # runs in the child, before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def cli(args, *, cwd: Path, stdin: bytes | None = None, extra_limits=None) -> subprocess.CompletedProcess:
    """Run ``python -m scalecalc *args`` under the limits; a timeout fails the test as a hang."""
    env = {**os.environ, "PYTHONWARNINGS": "", "COLUMNS": "120"}

    def preexec():
        _limits()
        if extra_limits:
            extra_limits()

    try:
        argv = [str(a).replace("\x00", "") for a in args]  # a command line cannot hold NUL
        return subprocess.run(
            [sys.executable, "-m", "scalecalc", *argv],
            cwd=cwd,
            input=stdin or b"",
            capture_output=True,
            timeout=WALL_SECONDS,
            preexec_fn=preexec,
            env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: scalecalc {' '.join(map(str, args))} ran past {WALL_SECONDS} s")


def assert_contract(result: subprocess.CompletedProcess, before: set | None = None, folder: Path | None = None) -> None:
    """Exit 0, or one Error line with exit 1/2 and nothing on stdout; no traceback, no numpy
    warnings; on failure no new file in ``folder``; never a temporary file left."""
    out, err = result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    args = " ".join(map(str, result.args[3:]))
    assert "Traceback" not in err, f"traceback from {args}:\n{err[-3000:]}"
    assert "RuntimeWarning" not in err and "Warning:" not in err, f"numpy noise from {args}:\n{err}"
    assert result.returncode in (0, 1, 2), f"exit {result.returncode} from {args} (signal or crash):\n{err[-2000:]}"
    if result.returncode != 0:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), f"not one Error line from {args}:\n{err}"
        assert out == "", f"stdout on error from {args}:\n{out[:500]}"
    if folder is not None:
        after = set(os.listdir(folder))
        assert not [n for n in after if n.endswith(".tmp") or n.startswith(".scalecalc-")], (
            f"temporary file left by {args}: {after}"
        )
        if result.returncode != 0 and before is not None:
            assert after == before, f"{args} failed but left {after - before}"


# -- strategies --------------------------------------------------------------------------------

_EXTREME = st.sampled_from(
    [
        "0",
        "-1",
        "nan",
        "inf",
        "-inf",
        "1e309",
        "1e-400",
        "1e400",
        "9" * 30,
        "1e30",
        "1e40",
        "1e41",
        "1e10",
        "1e24",
        "70B",
        "1.4T",
        "",
        " ",
        "1e",
        "0x10",
        "1_000",
        "½",
        "\x00",
        "--",
        "-",
    ]
)
NUMBER_TEXT = st.one_of(
    _EXTREME,
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.text(max_size=8),
)
RANGE_TEXT = st.builds(
    lambda a, b, n: f"{a}:{b}:{n}",
    NUMBER_TEXT,
    NUMBER_TEXT,
    st.one_of(st.integers(-5, 50).map(str), st.sampled_from(["1000001", "10000000", "1e9", "2.5"]), NUMBER_TEXT),
)
BUDGET = st.one_of(NUMBER_TEXT, RANGE_TEXT)


@FUZZ
@given(budget=BUDGET, option=st.sampled_from(["--compute", "--params", "--tokens", "--loss"]))
def test_plan_budgets(tmp_path_factory, budget, option):
    cwd = tmp_path_factory.mktemp("plan")
    assert_contract(cli(["plan", option, budget, "--brief"], cwd=cwd))


PLAN_OPTIONS = {
    "--mfu": NUMBER_TEXT,
    "--aspect-ratio": NUMBER_TEXT,
    "--gpus": NUMBER_TEXT,
    "--vocab": NUMBER_TEXT,
    "--seq-len": NUMBER_TEXT,
    "--tokens-per-param": NUMBER_TEXT,
    "--unique-tokens": NUMBER_TEXT,
    "--inference-tokens": NUMBER_TEXT,
    "--usd-per-gpu-hour": NUMBER_TEXT,
    "--inference-mfu": NUMBER_TEXT,
}


# The valid range of each option (README "Input limits"): a number outside it must be refused.
VALID = {
    "--mfu": (0, 1),
    "--inference-mfu": (0, 1),
    "--aspect-ratio": (0, 1e5),
    "--gpus": (1, 1e7),
    "--vocab": (1, 1e7),
    "--seq-len": (1, 1e7),
    "--tokens-per-param": (0, 1e9),
    "--unique-tokens": (0, 1e30),
    "--inference-tokens": (0, 1e30),
    "--usd-per-gpu-hour": (0, 1e6),
}


def _as_number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


@FUZZ
@given(choice=st.sampled_from(sorted(PLAN_OPTIONS)), data=st.data())
def test_plan_options(tmp_path_factory, choice, data):
    value = data.draw(PLAN_OPTIONS[choice])
    cwd = tmp_path_factory.mktemp("opt")
    result = cli(["plan", "--compute", "1e22", "--gpu", "H100-SXM", choice, value, "--json"], cwd=cwd)
    assert_contract(result)
    x, (low, high) = _as_number(value), VALID[choice]
    if x is not None and not (low < x <= high or (low == 1 and x == 1)):
        assert result.returncode == 2, f"accepted nonsense: {choice} {value!r} planned with"
    if result.returncode == 0:
        assert json.loads(result.stdout)  # whatever was accepted planned to valid JSON


@FUZZ
@given(laws=st.text(alphabet=",; abc-_.0123456789", max_size=12), budget=BUDGET)
def test_compare(tmp_path_factory, laws, budget):
    cwd = tmp_path_factory.mktemp("cmp")
    assert_contract(cli(["compare", "--compute", budget, "--laws", laws], cwd=cwd))


@FUZZ
@given(
    option=st.sampled_from(
        [
            "--n-layer",
            "--d-model",
            "--heads",
            "--kv-heads",
            "--vocab",
            "--seq-len",
            "--ffn",
            "--experts",
            "--top-k",
            "--head-dim",
        ]
    ),
    value=st.one_of(st.integers(-10, 10), st.integers(-(10**24), 10**24), st.text(max_size=4)),
)
def test_flops_shape_options(tmp_path_factory, option, value):
    cwd = tmp_path_factory.mktemp("flops")
    args = ["flops", "--n-layer", "4", "--d-model", "256", "--heads", "4"]
    if option in args:
        i = args.index(option)
        args[i + 1] = str(value)
    else:
        args += [option, str(value)]
    assert_contract(cli(args, cwd=cwd))


# Formulas: a small grammar over the law's variables, constants, numbers of every kind.
_ATOM = st.one_of(
    st.sampled_from(["N", "D", "A", "B", "E", "alpha", "beta", "C", "U", "x"]),
    st.integers(-3, 10**6).map(str),
    st.sampled_from(["0", "0.0", "1e308", "1e-308", "2", "0.5"]),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
)


def _combine(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["log", "exp", "sqrt", "abs", "max", "min", "-", "__import__"]), children).map(
            lambda t: f"{t[0]}({t[1]})" if t[0] != "-" else f"-{t[1]}"
        ),
    )


FORMULA = st.one_of(
    st.recursive(_ATOM, _combine, max_leaves=12),
    st.just("E + A / N**alpha + B / D**beta"),
    st.builds(lambda a, b: f"E + A / N**{a} + B / D**{b}", st.integers(-3, 5), st.integers(-3, 5)),
    st.text(max_size=30),
)
CONSTANT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**30), 10**30),
    st.sampled_from(["1e400", "-1e400", "nan", "abc", "1e18", None, [], {}, True]),
)


@st.composite
def law_documents(draw) -> str:
    doc: dict = {
        "name": draw(st.sampled_from(["fuzz", "fuzz-law", "", "a b", 3])),
        "source": draw(st.sampled_from(["fuzz", "", None, 7])),
    }
    doc["loss"] = draw(st.one_of(FORMULA, st.integers(-5, 5), st.none()))
    constants = draw(st.dictionaries(st.sampled_from(["A", "B", "E", "alpha", "beta"]), CONSTANT, max_size=5))
    doc["constants"] = draw(st.sampled_from([constants, constants, constants, 5, "x", [1, 2]]))
    extra = draw(
        st.dictionaries(
            st.sampled_from(
                [
                    "warnings",
                    "form",
                    "flops",
                    "params_kind",
                    "fitted_range",
                    "shape",
                    "bootstrap",
                    "requires",
                    "provenance",
                    "define",
                    "stderr",
                ]
            ),
            st.one_of(
                st.integers(-3, 3),
                st.text(max_size=6),
                st.lists(st.integers(), max_size=3),
                st.dictionaries(
                    st.sampled_from(["A", "N", "aspect_ratio", "vocab"]),
                    st.one_of(st.floats(), st.lists(st.floats(), max_size=3)),
                    max_size=2,
                ),
            ),
            max_size=3,
        )
    )
    doc.update(extra)
    return json.dumps(doc)  # JSON is YAML: every generated value survives the round trip


@FUZZ
@given(doc=law_documents(), budget=st.sampled_from(["1e22", "1e18:1e26:5", "1e30"]))
def test_law_files_plan(tmp_path_factory, doc, budget):
    cwd = tmp_path_factory.mktemp("law")
    (cwd / "law.yaml").write_text(doc)
    assert_contract(cli(["plan", "--compute", budget, "--law", "law.yaml", "--json"], cwd=cwd))


@FUZZ
@given(doc=law_documents())
def test_law_files_formula(tmp_path_factory, doc):
    cwd = tmp_path_factory.mktemp("formula")
    (cwd / "law.yaml").write_text(doc)
    assert_contract(cli(["formula", "law.yaml"], cwd=cwd))


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=300), st.sampled_from([b"\x00\xff\xfe", b"1e22\n" * 5, b"\xff" * 50])),
    command=st.sampled_from([["plan", "--compute", "-", "--brief"], ["fit", "-"], ["compare", "--compute", "-"]]),
)
def test_stdin_garbage(tmp_path_factory, data, command):
    cwd = tmp_path_factory.mktemp("stdin")
    assert_contract(cli(command, cwd=cwd, stdin=data))


RUN_VALUE = st.one_of(
    st.floats(),
    st.integers(-(10**400), 10**400),
    st.sampled_from([1e308, -1e308, 1e-308, 0, "", "x", None]),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def run_files(draw) -> tuple[str, str]:
    rows = draw(
        st.lists(
            st.fixed_dictionaries({"params": RUN_VALUE, "tokens": RUN_VALUE, "loss": RUN_VALUE}),
            min_size=0,
            max_size=12,
        )
    )
    good = [
        {"params": 1e7 * 2**i, "tokens": 2e8 * 1.7**i, "loss": 4.0 - 0.2 * i} for i in range(draw(st.integers(0, 8)))
    ]
    rows = good + rows
    if draw(st.booleans()):
        return "runs.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n"
    lines = ["params,tokens,loss"] + [
        ",".join(json.dumps(r[k]) if not isinstance(r[k], str) else r[k] for k in ("params", "tokens", "loss"))
        for r in rows
    ]
    return "runs.csv", "\n".join(lines) + "\n"


@FUZZ
@given(run_file=run_files(), seed=st.sampled_from(["0", "-1", "1e3", "99999999999"]))
def test_fit_run_files(tmp_path_factory, run_file, seed):
    cwd = tmp_path_factory.mktemp("fit")
    name, text = run_file
    (cwd / name).write_text(text)
    before = set(os.listdir(cwd))
    result = cli(["fit", name, "--grid", "coarse", "--seed", seed, "-o", "law.yaml"], cwd=cwd)
    assert_contract(result, before, cwd)
    if result.returncode == 0:
        assert cli(["plan", "--compute", "1e22", "--law", "law.yaml", "--brief"], cwd=cwd).returncode in (0, 1, 2)


HF_VALUE = st.one_of(
    st.integers(-2, 10**20),
    st.floats(),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
    st.lists(st.integers(0, 4), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@FUZZ
@given(
    cfg=st.fixed_dictionaries(
        {
            "num_hidden_layers": HF_VALUE,
            "hidden_size": HF_VALUE,
            "num_attention_heads": HF_VALUE,
            "vocab_size": HF_VALUE,
            "max_position_embeddings": HF_VALUE,
        },
        optional={
            "num_key_value_heads": HF_VALUE,
            "intermediate_size": HF_VALUE,
            "num_local_experts": HF_VALUE,
            "num_experts_per_tok": HF_VALUE,
            "head_dim": HF_VALUE,
            "hidden_act": HF_VALUE,
            "tie_word_embeddings": HF_VALUE,
            "text_config": HF_VALUE,
        },
    )
)
def test_hf_configs(tmp_path_factory, cfg):
    cwd = tmp_path_factory.mktemp("hf")
    (cwd / "config.json").write_text(json.dumps(cfg))
    assert_contract(cli(["flops", "--hf-config", "config.json", "--json"], cwd=cwd))
