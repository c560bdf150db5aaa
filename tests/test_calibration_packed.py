"""Packed training (scalecalc.calibration.packed): K same-shape runs as one stacked model.

A member of a pack must train exactly as it would alone: the same losses bit for bit whatever its
pack mates, in fp32, bf16 autocast and with fused AdamW (the CUDA settings, run here on CPU);
within float rounding of the plain loop (loop.train_run); a diverging member leaves the pack and
the others go on; an interrupted pack resumes every member to the uninterrupted result.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scalecalc.calibration import data as data_mod  # noqa: E402
from scalecalc.calibration import loop, packed  # noqa: E402
from scalecalc.calibration.recipe import parse_recipe  # noqa: E402
from scalecalc.calibration.store import Store  # noqa: E402
from scalecalc.errors import UsageError  # noqa: E402

pytestmark = pytest.mark.torch

RECIPE = """
name: pack
tokenizer: bytes
data_max_bytes: 2e5
seq_len: 16
mlp: gelu
head_dim: 8
lr: 1e-2
warmup_steps: 5
eval_points: 5
eval_interval: 20
eval_batches: 1
sweeps:
  - shapes: [{d_model: 16, n_layer: 1}]
    batch_size: 4
    lr: [1e-2, 3e-3]
    seed: [0, 1]
    steps: 30
"""


@pytest.fixture(scope="module")
def runs_and_data():
    torch.set_num_threads(1)
    runs = parse_recipe(__import__("yaml").safe_load(RECIPE)).runs()
    return runs, data_mod.load_corpus(None, "bytes", max_bytes=2e5)


def _curves(store: Store, ids):
    return {i: [(p.step, p.train_loss, p.val_loss) for p in store.points(i)] for i in ids}


@pytest.mark.parametrize("precision,fused", [("fp32", None), ("bf16", None), ("fp32", True)])
def test_a_member_trains_the_same_whatever_its_pack_mates(tmp_path, runs_and_data, precision, fused):
    runs, data = runs_and_data
    with Store(tmp_path / "pack", create=True) as s:
        s.add_runs([(c.run_id, c.to_dict()) for c in runs])
        together = packed.train_group(runs, data, store=s, precision=precision, fused=fused)
        pack_curves = _curves(s, [c.run_id for c in runs])
    for cfg, res in zip(runs, together):
        with Store(tmp_path / cfg.run_id, create=True) as s:
            s.add_runs([(cfg.run_id, cfg.to_dict())])
            (alone,) = packed.train_group([cfg], data, store=s, precision=precision, fused=fused)
            assert _curves(s, [cfg.run_id]) == {cfg.run_id: pack_curves[cfg.run_id]}
        assert res.status == alone.status == "done"
        assert res.final_loss == alone.final_loss  # bit for bit
        assert res.steps == 30
    # the members really differ (seeds, learning rates)
    assert len({r.final_loss for r in together}) == len(runs)


def test_a_member_matches_the_plain_loop_to_float_rounding(runs_and_data):
    runs, data = runs_and_data
    together = packed.train_group(runs, data, precision="fp32")
    for cfg, res in zip(runs, together):
        alone = loop.train_run(cfg, data)
        assert res.final_loss == pytest.approx(alone.final_loss, rel=1e-5)


def test_a_compiled_pack_trains_as_the_eager_one(runs_and_data):
    """--compile with packing (a CUDA setting, run on CPU): torch.compile of the stacked forward
    and loss. The first member to finish leaves, and the pack is compiled again for K = 1."""
    import dataclasses

    runs, data = runs_and_data
    pair = [dataclasses.replace(runs[0], budget_amount=6.0), dataclasses.replace(runs[3], budget_amount=10.0)]
    eager = packed.train_group(pair, data, precision="fp32")
    compiled = packed.train_group(pair, data, precision="fp32", compile=True)
    for e, c in zip(eager, compiled):
        assert c.status == e.status == "done" and c.steps == e.steps
        assert c.final_loss == pytest.approx(e.final_loss, rel=1e-4)
    assert [c.steps for c in compiled] == [6, 10]


def test_a_diverging_member_leaves_the_pack_and_the_others_go_on(tmp_path, runs_and_data):
    runs, data = runs_and_data
    from dataclasses import replace

    bad = replace(runs[0], lr=1e3)
    with Store(tmp_path, create=True) as s:
        s.add_runs([(c.run_id, c.to_dict()) for c in (bad, *runs[1:])])
        results = packed.train_group([bad, *runs[1:]], data, store=s)
    assert results[0].status == "diverged" and results[0].error
    assert [r.status for r in results[1:]] == ["done"] * (len(runs) - 1)
    alone = packed.train_group(runs[1:], data)
    assert [r.final_loss for r in results[1:]] == [r.final_loss for r in alone]


def test_an_interrupted_pack_resumes_every_member_exactly(tmp_path, runs_and_data):
    runs, data = runs_and_data
    ids = [c.run_id for c in runs]
    calls = {"n": 0}

    def stop_after_12_steps():
        calls["n"] += 1
        return calls["n"] > 12

    with Store(tmp_path / "a", create=True) as s:
        s.add_runs([(c.run_id, c.to_dict()) for c in runs])
        first = packed.train_group(runs, data, store=s, checkpoint_dir=tmp_path / "ck", stop=stop_after_12_steps)
        assert {r.status for r in first} == {"interrupted"}
        assert all(r.steps == 12 for r in first)
        # the second part runs members in a different pack: two alone, two together
        second = packed.train_group(runs[:1], data, store=s, checkpoint_dir=tmp_path / "ck") + packed.train_group(
            runs[1:], data, store=s, checkpoint_dir=tmp_path / "ck"
        )
        resumed = _curves(s, ids)
    with Store(tmp_path / "b", create=True) as s:
        s.add_runs([(c.run_id, c.to_dict()) for c in runs])
        clean = packed.train_group(runs, data, store=s)
        assert _curves(s, ids) == resumed  # no lost or duplicated point
    assert [r.final_loss for r in second] == [r.final_loss for r in clean]
    assert not list((tmp_path / "ck").glob("*.pt"))


def test_runs_of_different_shapes_cannot_be_packed(runs_and_data):
    runs, data = runs_and_data
    from dataclasses import replace

    with pytest.raises(UsageError, match="share model shape"):
        packed.train_group([runs[0], replace(runs[1], d_model=32)], data)


def test_unknown_precision_is_a_usage_error():
    with pytest.raises(UsageError, match="--precision"):
        packed.autocast_for("cpu", "fp8")


SWEEP = RECIPE.replace("seed: [0, 1]", "seeds: 2")


def test_a_packed_sweep_through_the_cli_equals_the_solo_packed_sweep(tmp_path):
    from typer.testing import CliRunner

    from scalecalc.cli import app

    recipe = tmp_path / "pack.yaml"
    recipe.write_text(SWEEP)
    results = {}
    for k in ("1", "4"):
        out = tmp_path / f"k{k}"
        r = CliRunner().invoke(
            app,
            [
                "calibrate",
                "run",
                str(recipe),
                "--out",
                str(out),
                "--runs-per-device",
                k,
                "--precision",
                "fp32",
                "--threads",
                "1",
                "--json",
            ],
        )
        assert r.exit_code == 0, r.output
        with Store(out) as s:
            assert s.counts().get("done") == 4
            results[k] = {run.id: [(p.step, p.val_loss) for p in s.points(run.id)] for run in s.runs()}
    assert results["1"] == results["4"]  # packing changes nothing but the speed
    assert len(results["4"]) == 4  # 2 learning rates x 2 seeds; the ids do not name K


def test_out_of_memory_while_packing_halves_k_and_retries(tmp_path, monkeypatch):
    """The OOM handler with a simulated error: packs of more than 2 runs raise CUDA's
    OutOfMemoryError (as a GPU would), so a K=4 sweep must fall back to K=2 and finish."""
    from scalecalc.calibration import sweep
    from scalecalc.calibration.recipe import parse_recipe as parse

    real_step = packed._packed_step

    def step_that_runs_out_of_memory(stack, pack, *args):
        if len(pack) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_step(stack, pack, *args)

    monkeypatch.setattr(packed, "_packed_step", step_that_runs_out_of_memory)
    events = []
    summary = sweep.run_sweep(
        parse(__import__("yaml").safe_load(SWEEP)),
        tmp_path,
        device="cpu",
        runs_per_device=4,
        precision="fp32",
        progress=events.append,
        threads=1,
    )
    assert summary.counts["done"] == 4 and summary.counts["failed"] == 0
    halved = [e for e in events if e.get("event") == "packing"]
    assert halved and halved[0]["runs_per_device"] == 2
    assert "out of memory with 4 runs" in halved[0]["reason"]


def test_a_single_run_out_of_memory_fails_with_the_batch_size_advice(tmp_path, monkeypatch):
    from scalecalc.calibration import sweep
    from scalecalc.calibration.recipe import parse_recipe as parse

    def always_out_of_memory(active, *args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(packed, "_packed_step", always_out_of_memory)
    one = SWEEP.replace("seeds: 2", "seeds: 1").replace("lr: [1e-2, 3e-3]", "lr: 1e-2")
    summary = sweep.run_sweep(
        parse(__import__("yaml").safe_load(one)), tmp_path, device="cpu", runs_per_device=2, precision="fp32", threads=1
    )
    assert summary.counts["failed"] == 1
    with Store(tmp_path) as s:
        (run,) = s.runs()
        assert "ran out of memory on cpu; use a smaller batch_size than 4" in run.error


def test_dry_run_prints_the_packing_plan_and_trains_nothing(tmp_path):
    import json

    from typer.testing import CliRunner

    from scalecalc.cli import app

    recipe = tmp_path / "pack.yaml"
    recipe.write_text(SWEEP)
    r = CliRunner().invoke(
        app,
        [
            "calibrate",
            "run",
            str(recipe),
            "--out",
            str(tmp_path / "o"),
            "--dry-run",
            "--runs-per-device",
            "auto",
            "--threads",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "packing:" in r.output and "Memory per run (est.)" in r.output
    assert "estimated" in r.output and "per device" in r.output
    one = CliRunner().invoke(app, ["calibrate", "run", str(recipe), "--out", str(tmp_path / "o"), "--dry-run"])
    if (os.cpu_count() or 1) > 1:  # one run per pack on a multi-core CPU: the faster setup is named
        assert "--devices cpu,cpu" in one.output and "--threads 1" in one.output
    r = CliRunner().invoke(
        app,
        [
            "calibrate",
            "run",
            str(recipe),
            "--out",
            str(tmp_path / "o"),
            "--dry-run",
            "--runs-per-device",
            "2",
            "--json",
        ],
    )
    rows = json.loads(r.stdout)["rows"]
    assert sorted(row["pack"] for row in rows) == [0, 0, 1, 1]
    assert all(row["runs_per_device"] == 2 and row["seconds"] > 0 for row in rows)
    assert not (tmp_path / "o" / "results.sqlite").exists()


def test_dry_run_with_two_workers_deals_the_packs_to_both(tmp_path):
    """--devices cpu,cpu: the estimate is the packs dealt to two workers, not their sum."""
    from scalecalc.calibration.dryrun import dry_run

    recipe = parse_recipe(__import__("yaml").safe_load(SWEEP))
    one = dry_run(recipe, device="cpu", runs_per_device=1, threads=1)
    two = dry_run(recipe, device="cpu", runs_per_device=1, threads=1, devices=["cpu", "cpu"])
    assert (one.workers, two.workers) == (1, 2)
    assert one.seconds == pytest.approx(sum(one.pack_seconds))
    assert max(two.pack_seconds) <= two.seconds < sum(two.pack_seconds)


@given(st.lists(st.floats(0.0, 1e4), max_size=30), st.integers(1, 8))
def test_the_makespan_of_greedy_workers_is_bounded_as_list_scheduling_promises(seconds, workers):
    """Graham's bound for list scheduling: max(job, total/W) <= makespan <= total/W + max(job)."""
    from scalecalc.calibration.dryrun import makespan

    span, total, longest = makespan(seconds, workers), sum(seconds), max(seconds, default=0.0)
    assert max(longest, total / workers) - 1e-6 <= span <= total / workers + longest + 1e-6
    assert makespan(seconds, 1) == pytest.approx(total)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--runs-per-device", "0"], "--runs-per-device 0: give a whole number >= 1 or auto"),
        (["--runs-per-device", "many"], "--runs-per-device many"),
        (["--precision", "fp8"], "--precision fp8: use auto, fp32 or bf16"),
    ],
)
def test_bad_packing_options_are_one_line(tmp_path, args, message):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "scalecalc", "calibrate", "run", "quick-cpu", "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"Error: {message}"] or r.stderr.startswith(f"Error: {message}")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("devices", ["cpu,bogus", "bogus,cpu"])
def test_the_dry_run_checks_every_device_of_devices(tmp_path, devices):
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "scalecalc", "calibrate", "run", "quick-cpu", "--out", str(tmp_path / "o")]
        + ["--devices", devices, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "Error: --device bogus: unknown device; use auto, cpu, cuda, cuda:N or mps"
    ]
    assert not (tmp_path / "o").exists()


def test_seeds_count_in_a_recipe_makes_replicates_with_distinct_ids():
    import yaml

    from scalecalc.errors import RecipeError

    runs = parse_recipe(yaml.safe_load(SWEEP)).runs()
    assert sorted(c.seed for c in runs) == [0, 0, 1, 1]
    assert len({c.run_id for c in runs}) == 4
    single = parse_recipe(yaml.safe_load(SWEEP.replace("seeds: 2", "seeds: 1"))).runs()
    assert {c.run_id for c in single} < {c.run_id for c in runs}  # seed 0 keeps its id
    with pytest.raises(RecipeError, match="either 'seeds'"):
        parse_recipe(yaml.safe_load(SWEEP.replace("seeds: 2", "seeds: 2\n    seed: [0, 1]")))
