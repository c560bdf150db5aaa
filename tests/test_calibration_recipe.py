"""Calibration recipes: validation (every problem at once), coercion, expansion, run ids, horizon."""

from __future__ import annotations

import math

import pytest
import yaml

from scalecalc.calibration.recipe import (
    RunConfig,
    beta2_rule,
    builtin_recipes,
    load_recipe,
    parse_recipe,
    tiny_shape,
)
from scalecalc.errors import RecipeError

BASE = {
    "name": "t",
    "seq_len": 64,
    "mlp": "gelu",
    "sweeps": [{"shapes": [{"d_model": 32, "n_layer": 2}], "batch_size": 8, "lr": 3e-3, "tokens": 1e5}],
}


def _write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_every_problem_is_reported_at_once_with_the_file_name(tmp_path):
    path = _write(
        tmp_path,
        """
nam: typo
seq_len: -5
schedule: linear
sweeps:
  - shapes: [{d_model: 32}]
    batch_size: abc
    lr: 1e-3
    learning_rate: 1e-3
""",
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    for part in (
        "unknown key 'nam' (did you mean 'name'?)",
        "missing key 'name'",
        "seq_len must be > 0",
        "'linear' must be one of constant, cosine, wsd",
        "needs d_model and n_layer",
        "batch_size: 'abc' is not a number",
        "unknown key 'learning_rate'",
        "give exactly one budget",
    ):
        assert part in msg, part
    assert "\n" not in msg  # one line for the CLI


def test_yaml_1e18_strings_are_numbers(tmp_path):
    path = _write(
        tmp_path,
        """
name: iso
sweeps:
  - params: [1e5, 3e5]
    batch_size: 16
    lr: 3e-3
    flops: 1e13
""",
    )
    raw = yaml.safe_load(path.read_text())
    assert raw["sweeps"][0]["flops"] == "1e13"  # PyYAML 1.1 reads it as a string...
    runs = load_recipe(path).runs()
    assert {r.budget_amount for r in runs} == {1e13}  # ...the loader coerces it
    assert {r.lr for r in runs} == {3e-3} and all(r.budget_kind == "flops" for r in runs)


def test_count_suffixes_are_accepted():
    r = parse_recipe({**BASE, "sweeps": [{**BASE["sweeps"][0], "tokens": "1.5M"}]})
    assert r.runs()[0].budget_amount == 1.5e6


def test_grid_expansion_and_stable_unique_ids():
    raw = {
        **BASE,
        "sweeps": [
            {
                "widths": [32, 64],
                "depths": [1, 2],
                "batch_size": [8, 16],
                "lr": ["1e-3", "3e-3"],
                "tokens": 1e5,
                "seed": [0, 1],
            }
        ],
    }
    runs = parse_recipe(raw).runs()
    assert len(runs) == 2 * 2 * 2 * 2 * 2
    ids = [r.run_id for r in runs]
    assert len(set(ids)) == len(ids) and all(len(i) == 16 for i in ids)
    assert ids == [r.run_id for r in parse_recipe(raw).runs()]  # deterministic
    again = RunConfig.from_dict(runs[3].to_dict())
    assert again == runs[3] and again.run_id == runs[3].run_id


def test_identical_runs_in_two_sweeps_are_one_run():
    s = BASE["sweeps"][0]
    r = parse_recipe({**BASE, "sweeps": [s, {**s, "name": "again", "batch_size": [8, 16]}]})
    assert len(r.runs()) == 2
    assert sorted(r.groups().values()) == ["again", "sweep0"]


def test_beta2_rule_porian():
    # docs/reference.md §5.4: beta2 = 0.95 is suboptimal at <= 128 sequences; 0.99 there
    assert beta2_rule(128) == 0.99 and beta2_rule(129) == 0.95
    runs = parse_recipe({**BASE, "sweeps": [{**BASE["sweeps"][0], "batch_size": [64, 256]}]}).runs()
    assert [r.beta2 for r in runs] == [0.99, 0.95]
    forced = parse_recipe({**BASE, "beta2": 0.999}).runs()[0]
    assert forced.beta2 == 0.999


def test_horizon_from_flop_budget_and_warmup_of_n_tokens():
    cfg = RunConfig(n_layer=2, n_head=2, d_model=32, seq_len=64, batch_size=8, budget_kind="flops", budget_amount=1e12)
    N, fpt = 41120.0, 6 * 41120.0
    h = cfg.horizon(N, fpt)
    assert h.max_steps == round(1e12 / (fpt * 8 * 64))
    assert h.warmup_steps == round(N / (8 * 64))  # Porian et al.: warmup = N tokens
    assert h.tokens == h.max_steps * 512 and math.isclose(h.flops, fpt * h.tokens)
    steps = cfg.eval_steps(h.max_steps)
    assert steps[0] == 0 and steps[-1] == h.max_steps and steps == sorted(set(steps))


def test_tiny_shape_hits_the_target():
    from scalecalc.flops import Arch, param_counts

    for N in (3e4, 2e5, 1e6):
        s = tiny_shape(N, 32, 16, mlp="gelu")
        arch = Arch(
            n_layer=s["n_layer"], d_model=s["d_model"], n_heads=s["d_model"] // 16, mlp="gelu", vocab=256, seq_len=128
        )
        assert abs(param_counts(arch)["non_embedding"] / N - 1) < 0.1


@pytest.mark.parametrize("name", ["quick-cpu", "workstation", "isoflop", "batch-size"])
def test_builtin_recipes_load(name):
    assert name in builtin_recipes()
    recipe = load_recipe(name)
    runs = recipe.runs()
    assert recipe.name == name and len(runs) >= 4
    assert len({r.run_id for r in runs}) == len(runs)
    for r in runs:
        h = r.planned_horizon()
        assert h.max_steps > h.warmup_steps >= 0


def test_unknown_recipe_name_lists_the_builtins():
    with pytest.raises(RecipeError, match="quick-cpu"):
        load_recipe("no-such-recipe")


def test_size_rules_scale_lr_and_batch_with_non_embedding_params(tmp_path):
    from scalecalc.flops import param_counts

    path = _write(
        tmp_path,
        """
name: rules
mlp: gelu
head_dim: 16
lr: {value: 5e-3, at_params: 147904, exponent: -0.18}
sweeps:
  - shapes: [{d_model: 32, n_layer: 2}, {d_model: 64, n_layer: 3}, {d_model: 128, n_layer: 4}]
    batch_size: {value: 16, at_params: 147904, exponent: 0.5}
    tokens: 1e6
""",
    )
    runs = load_recipe(path).runs()
    for r in runs:
        n = param_counts(r.arch())["non_embedding"]
        assert r.lr == pytest.approx(5e-3 * (n / 147904) ** -0.18, rel=1e-12)
        assert r.batch_size == max(1, round(16 * (n / 147904) ** 0.5))
        assert r.beta2 == beta2_rule(r.batch_size)  # beta2 follows the resolved batch size
    mid = next(r for r in runs if r.d_model == 64)
    assert (mid.lr, mid.batch_size) == (5e-3, 16)  # the reference size gets the reference values
    assert runs[0].lr > mid.lr > runs[-1].lr and runs[0].batch_size < 16 < runs[-1].batch_size


def test_size_rule_gives_the_same_run_as_the_number_it_resolves_to(tmp_path):
    rule = {"value": 3e-3, "at_params": 1.0, "exponent": 0.0}  # the sweep's own lr, 3e-3
    ruled = parse_recipe({**BASE, "sweeps": [{**BASE["sweeps"][0], "lr": rule}]})
    plain = parse_recipe(BASE)
    assert [r.run_id for r in ruled.runs()] == [r.run_id for r in plain.runs()]
    steeper = parse_recipe({**BASE, "sweeps": [{**BASE["sweeps"][0], "lr": {**rule, "exponent": -0.1}}]})
    assert [r.run_id for r in steeper.runs()] != [r.run_id for r in plain.runs()]


@pytest.mark.parametrize(
    "rule,message",
    [
        ({"value": 5e-3, "at_params": 1e5}, "needs exactly the keys value, at_params, exponent"),
        ({"value": 5e-3, "at_params": 1e5, "exponent": -0.2, "floor": 1}, "needs exactly the keys"),
        ({"value": -1, "at_params": 1e5, "exponent": -0.2}, "value and at_params must be > 0"),
        ({"value": 5e-3, "at_params": "big", "exponent": -0.2}, "is not a number"),
    ],
)
def test_bad_size_rules_are_refused_with_the_key(rule, message):
    with pytest.raises(RecipeError, match=message) as info:
        parse_recipe({**BASE, "sweeps": [{**BASE["sweeps"][0], "lr": rule}]})
    assert "lr" in str(info.value)
