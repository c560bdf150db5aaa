"""Through the CLI: every plan carries shape and hyperparameters (and hardware with --gpu),
checked against published settings (DeepSeek 7B/67B, Kaplan B_crit) and against first principles."""

from __future__ import annotations

import pytest

from scalecalc import hardware
from tests.helpers import run, run_row


def test_every_plan_carries_shape_and_hyperparameters():
    row = run_row("plan", "--compute", "1e23")
    assert {"shape", "hyperparameters"} <= set(row)
    assert "hardware" not in row
    shape = row["shape"]
    assert abs(shape["params"] / row["params"] - 1) <= 0.02  # the shape has N* parameters within 2%
    assert shape["d_model"] % 64 == 0 and shape["d_model"] % shape["n_heads"] == 0
    assert shape["flops_per_token"] == pytest.approx(row["flops_per_token"], rel=0.05)


@pytest.mark.parametrize("rule", ["aspect", "llama"])
def test_shape_rules_hit_n_star(rule):
    for c in ("1e20", "1e22", "1e24"):
        row = run_row("plan", "--compute", c, "--shape-rule", rule)
        assert abs(row["shape"]["params_deviation"]) <= 0.02
        assert row["shape"]["rule"] == rule


def test_hardware_block_is_compute_over_throughput():
    row = run_row(
        "plan", "--compute", "5.76e23", "--gpu", "h100", "--gpus", "1024", "--mfu", "0.5", "--usd-per-gpu-hour", "2"
    )
    hw = row["hardware"]
    peak = hardware.get_gpu("h100").peak_flops()
    gpu_hours = 5.76e23 / (peak * 0.5) / 3600
    assert hw["train_gpu_hours"] == pytest.approx(gpu_hours, rel=1e-9)
    assert hw["train_wall_clock_days"] == pytest.approx(gpu_hours / 1024 / 24, rel=1e-9)
    assert hw["train_usd"] == pytest.approx(2 * gpu_hours, rel=1e-9)
    assert hw["price_assumed"] is False


def test_budget_from_gpu_hours_round_trips_through_hardware_block():
    row = run_row("plan", "--gpu-hours", "1e6", "--gpu", "a100", "--mfu", "0.4")
    assert row["hardware"]["train_gpu_hours"] == pytest.approx(1e6, rel=1e-9)


def test_budget_from_dollars_uses_the_given_price_else_the_catalogs_marked_assumed():
    row = run_row("plan", "--usd", "1e6", "--gpu", "h100", "--usd-per-gpu-hour", "2.5")
    assert row["hardware"]["train_usd"] == pytest.approx(1e6, rel=1e-9)
    assert row["hardware"]["price_assumed"] is False
    # the catalog's $2.99 (the price the Hardware line prints) converts the budget
    row = run_row("plan", "--usd", "1e6", "--gpu", "h100")
    assert row["hardware"]["usd_per_gpu_hour"] == 2.99 and row["hardware"]["price_assumed"] is True
    assert row["hardware"]["train_usd"] == pytest.approx(1e6, rel=1e-9)
    assert row["hardware"]["train_gpu_hours"] == pytest.approx(1e6 / 2.99, rel=1e-9)
    table = run("plan", "--usd", "1e6", "--gpu", "h100")
    assert table.exit_code == 0 and "$2.99/GPU-hour, assumed" in table.stdout
    # a clean error only when there is no price at all
    bad = run("plan", "--usd", "1e6", "--gpu", "v100-sxm2")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.startswith("Error: --usd:") and "--usd-per-gpu-hour" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.splitlines()) == 1


@pytest.mark.parametrize("tokens,batch_used,lr_used", [(2.0e12, 2304 * 4096, 4.2e-4)])
def test_deepseek_7b_settings_within_10_percent(tokens, batch_used, lr_used):
    # DeepSeek LLM 7B: 30 layers, d 4096, seq 4096 -> M = 4.228e10 FLOPs/token; C = M D (docs/reference.md §7)
    m = 72 * 30 * 4096**2 + 12 * 30 * 4096 * 4096
    row = run_row("plan", "--compute", repr(m * tokens), "--law", "deepseek2024")
    hp = row["hyperparameters"]
    assert hp["batch_tokens"] == pytest.approx(batch_used, rel=0.10)
    assert hp["peak_lr"] == pytest.approx(lr_used, rel=0.10)


def test_deepseek_67b_settings_within_10_percent():
    m = 72 * 95 * 8192**2 + 12 * 95 * 8192 * 4096
    row = run_row("plan", "--compute", repr(m * 2.0e12), "--law", "deepseek2024")
    assert row["hyperparameters"]["batch_tokens"] == pytest.approx(4608 * 4096, rel=0.10)
    assert row["hyperparameters"]["peak_lr"] == pytest.approx(3.2e-4, rel=0.10)


def test_porian_rules_through_the_plan():
    # lr*(N) = 3.7 N^-0.36, B*(N) = 0.00037 N^0.703 sequences of 2048 (docs/reference.md §5.4, §10)
    row = run_row("plan", "--params", "1e10", "--law", "porian2024", "--hparams", "porian2024")
    assert row["hyperparameters"]["peak_lr"] == pytest.approx(9.29e-4, rel=2e-3)
    assert row["hyperparameters"]["batch_sequences"] == pytest.approx(3965, rel=2e-3)


def test_kaplan_trains_at_the_critical_batch_of_its_loss():
    row = run_row("plan", "--compute", "1e20", "--law", "kaplan2020")
    hp = row["hyperparameters"]
    bcrit = 2.1e8 / row["loss"] ** (1 / 0.21)  # eq. 1.4, Table 5 B*
    assert hp["batch_tokens"] == pytest.approx(bcrit, rel=1e-9)
    assert hp["steps_ratio"] == pytest.approx(2.0) and hp["compute_ratio"] == pytest.approx(2.0)  # §5.1


def test_inference_tokens_shrink_the_model_and_save_cost():
    base = run_row("plan", "--compute", "1e23")
    row = run_row("plan", "--compute", "1e23", "--inference-tokens", "1e13", "--gpu", "h100")
    inf = row["inference"]
    aware, optimal = inf["inference_aware"], inf["compute_optimal"]
    assert aware["params"] < base["params"] and aware["train_tokens"] > base["tokens"]
    assert optimal["params"] == pytest.approx(base["params"], rel=1e-6)
    assert 0 < inf["cost_saving"] < 1
    assert aware["inference_flops"] == pytest.approx(2 * aware["params"] * 1e13)
    assert optimal["inference_flops"] == pytest.approx(2 * optimal["params"] * 1e13)
    assert row["hardware"]["inference_flops"] == pytest.approx(2 * row["params"] * 1e13)


def test_unique_tokens_add_a_data_block_with_epochs():
    row = run_row("plan", "--compute", "1e23", "--unique-tokens", "100B")
    data = row["data_constrained"]
    assert data["epochs"] == pytest.approx(row["tokens"] / 100e9)
    assert data["effective_tokens"] < row["tokens"]
    assert any("epochs" in w for w in row["warnings"])


def test_brief_skips_blocks_and_bulk_queries_say_why():
    assert "shape" not in run_row("plan", "--compute", "1e23", "--brief")
    result = run("plan", "--compute", "1e20:1e26:1500")
    assert result.exit_code == 0
    assert "blocks are omitted for more than 1000 budgets" in result.stderr


def test_table_output_names_law_convention_and_blocks():
    result = run("plan", "--compute", "1e23", "--gpu", "h100", "--gpus", "64")
    assert result.exit_code == 0
    out = result.stdout
    assert "besiroglu2024" in out and "FLOP convention: 6nd" in out
    assert "Shape (aspect rule)" in out and "Hyperparameters (porian2024)" in out and "Hardware: 64 x" in out


def test_plots_are_written_whole(tmp_path):
    pytest.importorskip("matplotlib")
    for args in (["plan", "--compute", "1e22"], ["compare", "--compute", "1e22", "--laws", "besiroglu2024,kaplan2020"]):
        target = tmp_path / f"{args[0]}.png"
        result = run(*args, "--plot", str(target))
        assert result.exit_code == 0, result.stderr
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scalecalc-")]
    bad = run("plan", "--compute", "1e22", "--plot", str(tmp_path / "nodir" / "x.png"))
    assert bad.exit_code == 2 and "does not exist" in bad.stderr
