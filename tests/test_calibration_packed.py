"""Packed training (scalecalc.calibration.packed): K same-shape runs as one stacked model.

A member of a pack must train exactly as it would alone: the same losses bit for bit whatever its
pack mates, in fp32, bf16 autocast and with fused AdamW (the CUDA settings, run here on CPU);
within float rounding of the plain loop (loop.train_run); a diverging member leaves the pack and
the others go on; an interrupted pack resumes every member to the uninterrupted result.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

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
def test_a_member_trains_the_same_whatever_its_pack_mates(tmp_path, runs_and_data, precision,
                                                          fused):
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
        first = packed.train_group(runs, data, store=s, checkpoint_dir=tmp_path / "ck",
                                   stop=stop_after_12_steps)
        assert {r.status for r in first} == {"interrupted"}
        assert all(r.steps == 12 for r in first)
        # the second part runs members in a different pack: two alone, two together
        second = (packed.train_group(runs[:1], data, store=s, checkpoint_dir=tmp_path / "ck")
                  + packed.train_group(runs[1:], data, store=s, checkpoint_dir=tmp_path / "ck"))
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
