"""--flops, --shape-rule, --hparams and --gpu are validated choices read from one source each."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalecalc.cli import app
from scalecalc.flops import CONVENTIONS, SHAPE_RULES
from scalecalc.hardware import load_catalog
from scalecalc.hparams import RULES

runner = CliRunner()


def plan(*args):
    return runner.invoke(app, ["plan", "--compute", "1e22", "--json", *args])


@pytest.mark.parametrize(
    "option,value", [("--flops", "7nd"), ("--shape-rule", "aspec"), ("--hparams", "porian"), ("--gpu", "h1000")]
)
def test_a_bad_choice_is_one_usage_error_naming_the_option(option, value):
    res = plan(option, value)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and res.stderr.startswith(f"Error: {option}: unknown ")
    assert "did you mean" in res.stderr


@pytest.mark.parametrize(
    "option,names",
    [("--flops", list(CONVENTIONS)), ("--shape-rule", list(SHAPE_RULES)), ("--hparams", [*RULES, "law"])],
)
def test_the_help_lists_exactly_the_source_names(option, names):
    from scalecalc.cli.plan import plan_command  # noqa: F401  (registers the command)

    command = next(c for c in app.registered_commands if c.name == "plan")
    import typer.main

    click_command = typer.main.get_command_from_info(command, pretty_exceptions_short=True, rich_markup_mode=None)
    param = next(p for p in click_command.params if option in p.opts)
    assert ", ".join(names) in param.help


@pytest.mark.parametrize("rule", list(SHAPE_RULES))
def test_every_shape_rule_is_accepted_in_any_case(rule):
    res = plan("--shape-rule", rule.upper())
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["rows"][0]["shape"]["rule"] == rule


def test_every_catalog_gpu_is_accepted():
    for name in load_catalog():
        res = plan("--gpu", name, "--usd-per-gpu-hour", "2")
        assert res.exit_code == 0, (name, res.stderr)
