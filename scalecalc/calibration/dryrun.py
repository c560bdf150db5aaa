"""``calibrate run --dry-run``: what a sweep would do on this device, with nothing trained.

For every run: N, D, FLOPs, steps (from :func:`scalecalc.calibration.sweep.plan_sweep`); for the
device: the runs packed per device (K) and why, the memory one run needs, the packs in the order
a worker takes them, and the estimated wall time, from a few optimizer steps measured on random
tokens at each pack size (:func:`scalecalc.calibration.packed.time_packed_steps`).

Memory per run is an estimate, not a measurement (CPU has no allocator statistics): weights,
gradients and the two AdamW moments (16 bytes per parameter in fp32) plus activations by the
per-layer count of Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
Transformer Models", arXiv 2205.05198, eq 1 (``s*b*h*(34 + 5*a*s/h)`` bytes per layer in 16-bit,
doubled for fp32), plus the fp32 logits and their gradient (``3 * b * s * vocab * 4`` bytes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from scalecalc.calibration.recipe import RunConfig

AUTO_CANDIDATES = (1, 2, 4, 8, 16, 32)  # pack sizes tried by ``--runs-per-device auto``
MIN_GAIN = 1.10  # a larger pack must raise aggregate tokens/s by 10% to be chosen
MEMORY_HEADROOM = 0.8  # use at most 80% of the free device memory


@dataclass(frozen=True)
class PackChoice:
    """K and why: ``measured`` maps each pack size tried to aggregate tokens/s."""

    k: int
    reason: str
    bytes_per_run: float
    free_bytes: float | None
    measured: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DryRun:
    """Everything ``--dry-run`` prints."""

    rows: list  # sweep.PlannedRun, one per run
    device: str
    precision: str
    choice: PackChoice
    packs: list  # lists of run ids, in the order a worker trains them
    pack_seconds: list  # estimated seconds per pack
    seconds: float  # estimated wall time of the whole sweep on its workers
    workers: int = 1  # worker processes (--devices), each training packs one after another


def bytes_per_run(cfg: RunConfig, precision: str = "fp32") -> float:
    """Estimated peak training memory of one run in bytes (see the module docstring)."""
    from scalecalc.flops import param_counts

    n = float(param_counts(cfg.arch())["total"])
    s, b, h, a = cfg.seq_len, cfg.batch_size, cfg.d_model, cfg.n_head
    act_bytes = 1.0 if precision == "bf16" else 2.0  # eq 1 counts 16-bit activations
    activations = cfg.n_layer * s * b * h * (34 + 5 * a * s / h) * act_bytes
    logits = 3 * b * s * cfg.vocab_size * 4
    return 16 * n + activations + logits


def free_bytes(device: str) -> float | None:
    """Free memory of the device: CUDA's ``mem_get_info``, else available RAM (None unknown)."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.mem_get_info(device)[0])
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def choose_runs_per_device(
    runs: Sequence[RunConfig], device: str, *, precision: str = "auto", steps: int = 2
) -> PackChoice:
    """K for ``--runs-per-device auto``: the largest pack whose measured aggregate tokens/s beats
    the next smaller one by ``MIN_GAIN`` and whose estimated memory fits, timed on the group of
    same-shape runs with the most members (the largest such shape on ties)."""
    from scalecalc.calibration.packed import pack_key, time_packed_steps

    groups: dict[tuple, list[RunConfig]] = {}
    for cfg in runs:
        groups.setdefault(pack_key(cfg), []).append(cfg)
    if not groups:
        return PackChoice(1, "no runs", 0.0, None)
    group = max(groups.values(), key=lambda g: (len(g), g[0].d_model * g[0].n_layer))
    per_run = bytes_per_run(group[0], "bf16" if precision == "bf16" else "fp32")
    free = free_bytes(device)
    by_memory = int(MEMORY_HEADROOM * free // per_run) if free else max(AUTO_CANDIDATES)
    limit = max(1, min(len(group), by_memory))
    tokens_per_step = group[0].batch_size * group[0].seq_len
    measured, best = {}, 1
    for k in AUTO_CANDIDATES:
        if k > limit:
            break
        members = [group[i % len(group)] for i in range(k)]
        measured[k] = k * tokens_per_step / time_packed_steps(members, device, steps=steps, precision=precision)
        if k > 1 and measured[k] < MIN_GAIN * measured[best]:
            break
        best = k
    reason = (
        f"{best} per device: aggregate {measured[best]:,.0f} tokens/s measured on "
        f"{group[0].label()}"
        + (f" vs {measured[1]:,.0f} alone" if best > 1 else "")
        + f"; memory allows {by_memory} ({per_run / 2**20:.0f} MiB per run est.)"
    )
    return PackChoice(best, reason, per_run, free, measured)


def pack_plan(runs: Sequence[RunConfig], k: int) -> list[list[RunConfig]]:
    """Runs in queue order cut into packs of at most ``k`` same-shape runs, as a worker claims
    them (:func:`scalecalc.calibration.packed.claim_group`)."""
    from scalecalc.calibration.packed import pack_key

    left, packs = list(runs), []
    while left:
        first = left.pop(0)
        pack = [first] + [c for c in left if pack_key(c) == pack_key(first)][: k - 1]
        left = [c for c in left if c not in pack]
        packs.append(pack)
    return packs


def dry_run(
    recipe,
    *,
    device: str = "auto",
    runs_per_device: int | str = 1,
    precision: str = "auto",
    out_dir=None,
    data=None,
    tokenizer=None,
    threads: int | None = None,
    measure_steps: int = 2,
    devices: Sequence[str] | None = None,
) -> DryRun:
    """The dry run of ``recipe`` on ``device``: rows, packing choice and plan, estimated time.

    With ``devices`` (``--devices``: one worker process each) steps are timed on the first and
    the wall time is the packs dealt, in queue order, to whichever worker is free first (the
    workers claim runs from the store that way); workers are assumed not to slow each other,
    which holds for separate GPUs and, on a CPU, for ``--threads 1`` workers up to the core
    count (``bench/pack_throughput.py --processes 2``: each ran at about 0.9x on 2 cores).
    """
    from scalecalc.calibration import sweep
    from scalecalc.calibration.packed import autocast_for, time_packed_steps

    autocast_for("cpu", precision)  # an unknown precision fails before anything is measured
    devs = [sweep.resolve_device(d) for d in devices or [device]]  # each checked, as the real run does
    dev = devs[0]
    rows = sweep.plan_sweep(
        recipe, device=dev, out_dir=out_dir, data=data, tokenizer=tokenizer, threads=threads, measure=False
    )
    if data is not None or tokenizer is not None:
        recipe = recipe.with_overrides(data=list(data) if data else None, tokenizer=tokenizer)
    runs = recipe.runs()
    if runs_per_device == "auto":
        choice = choose_runs_per_device(runs, dev, precision=precision, steps=measure_steps)
    else:
        k = int(runs_per_device)
        per_run = bytes_per_run(runs[0], precision) if runs else 0.0
        choice = PackChoice(k, f"{k} per device (as given)", per_run, free_bytes(dev))
    steps_by_id = {r.run_id: r.steps for r in rows}
    timed: dict[tuple, float] = {}
    packs, pack_seconds = [], []
    for pack in pack_plan(runs, choice.k):
        key = (tuple(sorted(pack[0].model_kwargs().items())), pack[0].batch_size, len(pack))
        if key not in timed:
            timed[key] = time_packed_steps(pack, dev, steps=measure_steps, precision=precision)
        packs.append([c.run_id for c in pack])
        pack_seconds.append(timed[key] * max(steps_by_id[c.run_id] for c in pack))
    seconds_by_id = {}
    for ids, secs in zip(packs, pack_seconds):
        for i in ids:
            seconds_by_id[i] = secs / len(ids)  # each member's share of its pack's time
    from dataclasses import replace

    rows = [replace(r, seconds=seconds_by_id.get(r.run_id)) for r in rows]
    return DryRun(rows, dev, precision, choice, packs, pack_seconds, makespan(pack_seconds, len(devs)), len(devs))


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of jobs taken in order by ``workers`` workers, each job going to the worker
    that is free first (how workers claim runs from the store)."""
    free_at = [0.0] * max(workers, 1)
    for s in seconds:
        free_at[free_at.index(min(free_at))] += s
    return max(free_at)
