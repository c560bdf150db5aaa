"""Every number, warning and byte scalecalc prints is right, through the real CLI.

Each test names the issue's numbered defect it covers.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from scalecalc.hardware import load_catalog
from scalecalc.laws import builtin_names, load_law
from tests.helpers import run, run_json, run_row
from tests.schema_check import validate

# -- defect 1: extrapolation warnings only outside the fitted range ----------------------------

_OPTION = {"compute": "--compute", "params": "--params", "tokens": "--tokens"}
_CASES = [
    (name, key)
    for name in builtin_names()
    for key in ("compute", "params", "tokens")
    if key in load_law(name).fitted_range
]


def _range_warnings(name: str, key: str, value: float) -> list[str]:
    extra = ["--unique-tokens", "1e15"] if "U" in load_law(name).requires else []
    row = run_row("plan", _OPTION[key], repr(value), "--law", name, "--brief", *extra)
    return [w for w in row["warnings"] if f"fitted {key} range" in w]


def test_every_builtin_law_has_a_range_case():
    assert {n for n, _ in _CASES} >= set(builtin_names()) - {"muennighoff2023"}


@pytest.mark.parametrize("name,key", _CASES)
def test_no_warning_inside_or_at_the_bounds(name, key):
    lo, hi = load_law(name).fitted_range[key]
    for value in (lo, (lo * hi) ** 0.5, hi):
        assert _range_warnings(name, key, value) == [], (name, key, value)


@pytest.mark.parametrize("name,key", _CASES)
def test_warning_outside_by_decades_to_the_nearest_bound(name, key):
    lo, hi = load_law(name).fitted_range[key]
    below = _range_warnings(name, key, lo / 10**0.5)
    above = _range_warnings(name, key, hi * 10)
    assert len(below) == 1 and "0.5 decades below" in below[0], below
    assert len(above) == 1 and "1.0 decades beyond" in above[0], above


def test_the_issues_examples_are_silent():
    r = run("plan", "--compute", "1e20", "--brief")
    assert r.exit_code == 0 and "extrapolating" not in r.stderr
    r = run("plan", "--compute", "1e19", "--law", "kaplan2020", "--brief")
    assert "8.1 decades" not in r.stderr


# -- defects 2, 3: GPUs without a catalog price, --usd at the catalog price ---------------------


@pytest.mark.parametrize("gpu", sorted(load_catalog()))
def test_every_catalog_gpu_plans(gpu):
    entry = load_catalog()[gpu]
    table = run("plan", "--compute", "1e22", "--gpu", gpu)
    assert table.exit_code == 0 and "Traceback" not in table.stderr, table.stderr
    hw = run_row("plan", "--compute", "1e22", "--gpu", gpu)["hardware"]
    assert hw["train_gpu_hours"] > 0 and hw["train_wall_clock_days"] > 0
    if entry.usd_per_gpu_hour is None:
        assert hw["train_usd"] is None and "cost unknown" in table.stdout
        priced = run_row("plan", "--compute", "1e22", "--gpu", gpu, "--usd-per-gpu-hour", "2")["hardware"]
        assert priced["train_usd"] == pytest.approx(2 * priced["train_gpu_hours"])
    else:
        assert hw["train_usd"] == pytest.approx(entry.usd_per_gpu_hour * hw["train_gpu_hours"])
        assert hw["price_assumed"] is True and "assumed" in table.stdout


# -- defect 4: help renders as written ---------------------------------------------------------


def _commands():
    from typer.main import get_command

    from scalecalc.cli import app

    root = get_command(app)
    stack = [((), root)]
    while stack:
        path, cmd = stack.pop()
        yield path, cmd
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                stack.append(((*path, name), sub))


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_every_option_help_renders_as_written():
    checked = 0
    for path, cmd in _commands():
        r = run(*path, "--help")
        assert r.exit_code == 0, (path, r.output)
        shown = _norm(r.stdout)
        for param in cmd.params:
            text = getattr(param, "help", None)
            if text:
                assert _norm(text) in shown, (path, param.name, text)
                checked += 1
    assert checked > 50
    fit_help = _norm(run("fit", "--help").stdout)
    assert "a:b:n" in fit_help or "a🅱" not in fit_help


# -- defect 5: the JSON contract ---------------------------------------------------------------


def test_plan_is_one_object_whatever_the_number_of_budgets():
    one = run_json("plan", "--compute", "1e22")
    many = run_json("plan", "--compute", "1e20:1e24:3")
    assert set(one) == set(many) == {"rows", "notes"}
    assert len(one["rows"]) == 1 and len(many["rows"]) == 3


def test_outputs_follow_the_shipped_schemas(tmp_path):
    doc = validate(
        run(
            "plan",
            "--compute",
            "1e24",
            "--gpu",
            "h100",
            "--inference-tokens",
            "1e13",
            "--unique-tokens",
            "1T",
            "--json",
        ).stdout,
        "plan",
    )
    assert "inference_flops" not in doc["rows"][0]["inference"]  # one meaning: per model block
    validate(run("plan", "--compute", "1e18:1e26:5", "--brief", "--json").stdout, "plan")
    validate(run("plan", "--compute", "1e22", "--gpu", "v100-sxm2", "--json").stdout, "plan")
    validate(run("compare", "--compute", "1e24", "--json").stdout, "compare")
    validate(run("laws", "--json").stdout, "laws")
    validate(run("flops", "--n-layer", "12", "--d-model", "768", "--json").stdout, "flops")


def test_whole_number_floats_stay_floats():
    out = run("plan", "--compute", "2e24", "--tokens-per-param", "20", "--json").stdout
    assert '"compute": 2e+24' in out
    text = run("plan", "--compute", "1e24", "--gpu", "h100", "--inference-tokens", "1e13", "--json").stdout
    assert re.search(r'"train_flops": \d{10,}[,\n]', text) is None  # no huge integers


@pytest.mark.parametrize("cmd", [("formula", "besiroglu2024")])
def test_format_csv_is_refused_where_it_cannot_be_honoured(cmd):
    r = run(*cmd, "--format", "csv")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.startswith("Error: --format csv")


# -- defect 6: one exit rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("fit", "missing.csv"),
        ("calibrate", "status", "missing-dir/"),
        ("plan", "--compute", "1e22", "--law", "missing.yaml"),
        ("flops", "--hf-config", "missing.json"),
        ("plan", "--compute", "abc"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args):
    r = run(*args)
    assert r.exit_code == 2 and r.stdout == "", (args, r.output)
    assert r.stderr.startswith("Error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.strip() != "Error:"


def test_no_arguments_print_help_and_no_empty_error():
    r = subprocess.run([sys.executable, "-m", "scalecalc"], capture_output=True, text=True)
    assert r.returncode == 2 and "Usage:" in r.stderr and "Error:" not in r.stderr


def test_failures_exit_1():
    r = run("plan", "--loss", "1.0")  # below the floor: a valid request that cannot be met
    assert r.exit_code == 1 and r.stderr.startswith("Error: --loss")


# -- defect 7: warnings tagged, skipped blocks said, --quiet -----------------------------------


def test_many_budgets_tag_each_warning_and_say_blocks_are_skipped():
    r = run("plan", "--compute", "1e18:1e26:25")
    assert r.exit_code == 0
    lines = r.stderr.splitlines()
    skipped = [l for l in lines if "first 20 of 25 budgets" in l]
    assert len(skipped) == 1
    tagged = [l for l in lines if l not in skipped]
    assert tagged and all(re.match(r"warning: \[(law |[0-9])", l) for l in tagged), lines


def test_quiet_silences_stderr_but_json_keeps_the_warnings():
    r = run("plan", "--compute", "1e26", "--quiet")
    assert r.exit_code == 0 and r.stderr == ""
    r = run("plan", "--compute", "1e26", "--quiet", "--json")
    assert r.stderr == "" and json.loads(r.stdout)["rows"][0]["warnings"]
    assert run("compare", "--compute", "1e24", "--quiet").stderr == ""


def test_warnings_go_to_stderr_in_every_format():
    for fmt in ("table", "json", "csv"):
        r = run("plan", "--compute", "1e26", "--brief", "--format", fmt)
        assert "warning: [1.00e26 FLOPs] extrapolating" in r.stderr, fmt


# -- defect 8: files get the umask and a 'wrote PATH' line; all budgets drawn ------------------


@pytest.mark.parametrize(
    "cmd",
    [
        ["plan", "--compute", "1e22", "--compute", "1e24"],
        ["compare", "--compute", "1e24", "--laws", "besiroglu2024,kaplan2020"],
    ],
)
def test_plots_respect_umask_and_are_announced(tmp_path, cmd):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    r = subprocess.run(
        [
            "sh",
            "-c",
            'umask 022 && exec "$@"',
            "sh",
            sys.executable,
            "-m",
            "scalecalc",
            *cmd,
            "--plot",
            str(out),
            "--brief" if cmd[0] == "plan" else "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert f"wrote {out}" in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# -- defect 11: lists in CSV, one way -----------------------------------------------------------


def test_csv_lists_are_joined_one_way():
    out = run("laws", "--format", "csv").stdout
    assert "[" not in out and "nan" not in out.lower()
    assert "1.4e+18;1.3e+22" in out
    out = run("plan", "--compute", "1e22", "--law", "besiroglu2024", "--format", "csv", "--brief").stdout
    assert "[" not in out


# -- defect 13: data_constrained under muennighoff2023 ------------------------------------------


def test_muennighoff_plan_has_a_data_constrained_block():
    row = run_row("plan", "--compute", "1e23", "--law", "muennighoff2023", "--unique-tokens", "25B")
    block = row["data_constrained"]
    assert block["unique_tokens"] == 25e9 and block["epochs"] == pytest.approx(row["tokens"] / 25e9)
    assert "loss" not in block and "optimal_loss" in block


# -- defect 10: everything reads well at 80 and 100 columns -------------------------------------

_WIDE_COMMANDS = [
    ("plan", "--compute", "1e24", "--gpu", "h100", "--gpus", "2048", "--inference-tokens", "1e13"),
    ("plan", "--compute", "1e20:1e26:4", "--gpu", "v100-sxm2"),
    ("compare", "--compute", "1e24"),
    ("compare", "--compute", "5.88e23", "--path", "porian"),
    ("laws",),
    ("laws", "kaplan2020", "besiroglu2024"),
    ("gpus",),
    ("gpus", "h100"),
    ("flops", "--n-layer", "32", "--d-model", "4096", "--heads", "32", "--kv-heads", "8", "--mlp", "swiglu"),
]


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("args", _WIDE_COMMANDS, ids=lambda a: " ".join(a))
def test_output_fits_the_terminal_and_never_cuts_a_number(args, width):
    r = subprocess.run(
        [sys.executable, "-m", "scalecalc", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(width)},
    )
    assert r.returncode == 0, r.stderr
    too_long = [l for l in r.stdout.splitlines() if len(l) > width]
    assert not too_long, too_long
    assert "…" not in r.stdout
    if args[0] == "laws" and len(args) == 1:
        names = [
            l.split()[0] for l in r.stdout.splitlines() if l.strip().startswith(("besiroglu", "hoffmann", "kaplan"))
        ]
        assert "besiroglu2024" in names and "hoffmann2022-a3-rounded" in names
        assert len(r.stdout.splitlines()) < 25  # one line per law


def test_dry_run_reads_well_at_80_columns_in_plain_minutes(tmp_path):
    pytest.importorskip("torch")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "tokenizer: bytes\ndata_max_bytes: 1e6\nseq_len: 32\nmlp: gelu\nhead_dim: 8\n"
        "lr: 1e-2\nname: tiny\nsweeps:\n  - shapes: [{d_model: 16, n_layer: 1}, {d_model: 32, n_layer: 1}]\n"
        "    batch_size: 8\n    steps: 40\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalecalc",
            "calibrate",
            "run",
            str(recipe),
            "--out",
            str(tmp_path / "o"),
            "--dry-run",
            "--device",
            "cpu",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    # a line may pass 80 columns only where an unbreakable path of the test's tmp dir is on it
    assert all(len(l) <= 80 for l in lines if str(tmp_path) not in l), lines
    assert "…" not in r.stdout
    assert re.search(r"estimated \d+\.\d minutes in all", lines[0])
    assert re.search(r"\d+\.\d min", r.stdout) and not re.search(r"\b\d+:\d\d\b", r.stdout)
    assert "Data: " in r.stdout and "tokenizer bytes" in r.stdout and "context 32" in r.stdout
    assert "threads: 1" in r.stdout and "calibrate status" in r.stdout and "calibrate fit" in r.stdout
    assert not (tmp_path / "o").exists()


# -- defect 13: flops --tokens totals and --recompute ------------------------------------------


def test_flops_tokens_print_totals_and_recompute_is_an_extra_forward_pass():
    shape = ("flops", "--n-layer", "12", "--d-model", "768", "--vocab", "50257", "--tied")
    plain = validate(run(*shape, "--json").stdout, "flops")
    both = validate(run(*shape, "--tokens", "300B", "--recompute", "--json").stdout, "flops")
    n = plain["params"]["total"]
    assert plain["flops_per_token"]["6nd"] == pytest.approx(6 * n) and plain["recompute"] is False
    # EleutherAI's transformer-math convention: 8·N·D with full recomputation (4 passes, not 3)
    assert both["flops_per_token"]["6nd"] == pytest.approx(8 * n) and both["recompute"] is True
    assert both["tokens"] == 300e9
    for name, per_token in both["flops_per_token"].items():
        assert both["training_flops"][name] == pytest.approx(per_token * 300e9)
        assert per_token == pytest.approx(plain["flops_per_token"][name] * 4 / 3)
    table = run(*shape, "--tokens", "300B")
    assert table.exit_code == 0 and "Total at 300B tokens" in table.stdout
    bad = run(*shape, "--tokens", "lots")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: --tokens")


# -- defect 12: Hugging Face configs read exactly, or refused by name ---------------------------

HF_DIR = os.path.join(os.path.dirname(__file__), "data", "hf_configs")
# model -> (published total parameters, relative tolerance): exact Hub counts where the tests can
# be exact; the model card's rounded figure (half a unit of its last digit) otherwise; Qwen2 and
# OLMo 2 carry small terms the reader notes instead of counting (< 1e-4).
HF_PUBLISHED = {
    "llama-2-7b": (6_738_415_616, 1e-12),
    "mistral-7b-v0.1": (7_241_732_096, 1e-12),
    "mixtral-8x7b-v0.1": (46_702_792_704, 1e-12),
    "gpt2": (124_439_808, 1e-12),
    "phi-3-mini-4k": (3_821_079_552, 1e-12),
    "qwen2-7b": (7_615_616_512, 1e-4),
    "gemma-7b": (8.54e9, 0.005 / 8.54),
    "gemma-2-9b": (9.24e9, 0.005 / 9.24),
    "olmo-2-1124-7b": (7.30e9, 0.005 / 7.30),
}


@pytest.mark.parametrize("model", sorted(HF_PUBLISHED))
def test_hf_config_counts_match_the_published_parameters(model):
    r = run("flops", "--hf-config", os.path.join(HF_DIR, f"{model}.json"), "--json")
    assert r.exit_code == 0, r.stderr
    total = validate(r.stdout, "flops")["params"]["total"]
    published, tol = HF_PUBLISHED[model]
    assert total == pytest.approx(published, rel=tol)
    if model in ("qwen2-7b", "olmo-2-1124-7b"):  # the small terms are said, not silent
        assert "not counted (< 1e-4 of N)" in r.stderr


def test_gemma_mlp_is_gated_and_tied_by_default():
    arch = json.loads(run("flops", "--hf-config", os.path.join(HF_DIR, "gemma-7b.json"), "--json").stdout)["arch"]
    assert arch["mlp"] == "swiglu" and arch["tied"] is True


def test_deepseek_v2_keys_are_refused_by_name():
    r = run("flops", "--hf-config", os.path.join(HF_DIR, "deepseek-v2-lite.json"))
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("Error: --hf-config") and len(r.stderr.splitlines()) == 1
    for key in (
        "n_routed_experts",
        "n_shared_experts",
        "first_k_dense_replace",
        "kv_lora_rank",
        "qk_nope_head_dim",
        "qk_rope_head_dim",
        "v_head_dim",
    ):
        assert key in r.stderr


# -- defect 9: man pages are found the way the README says -------------------------------------


def test_man_pages_are_found_with_the_readme_manpath():
    import shutil

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    readme = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    assert 'export MANPATH="$PWD/man:"' in readme and "torch's CPU-only build" in readme
    assert os.path.exists(os.path.join(root, "man", "man1", "scalecalc-plan.1"))
    if shutil.which("man") is None:
        pytest.skip("no man(1) on this machine")
    r = subprocess.run(
        ["man", "-w", "scalecalc-plan"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "MANPATH": os.path.join(root, "man") + ":"},
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("man/man1/scalecalc-plan.1"), r.stderr
