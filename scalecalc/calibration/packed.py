"""Several same-shape runs trained together in one process: one stacked model, K optimizers.

A tiny model (0.1M-50M parameters) leaves a GPU mostly idle, and a CPU busy with per-op
overhead, when trained alone. ``train_group`` trains K runs of the same shape (seeds, learning
rates, schedules or budgets of one size and batch size) as one *stacked* model
(:class:`scalecalc.calibration.stacked.Stack`): the K members' parameters are rows of one
``(K, P)`` buffer, every matmul is one batched matmul over the members, and AdamW updates all
of them in a dozen elementwise ops. Each member keeps its own parameters, AdamW moments and
step count, learning-rate schedule, gradient clipping, data order (numpy RNG seeded by its run
seed), evaluations, divergence check and checkpoint; nothing is shared but the kernels.

Exactness: a member's losses and weights are bit-for-bit the same whatever its pack mates
(K = 1 or K = 8), because every op of the stacked step treats members independently; checked in
``tests/test_calibration_packed.py`` for fp32, bf16 autocast and fused AdamW on CPU. Against
:func:`scalecalc.calibration.loop.train_run` (plain ``nn.Module`` calls) a member agrees to
float rounding (batched and plain kernels round differently), not bit-for-bit.

Checkpoints use :func:`loop.train_run`'s format (``<run_id>.pt``), so a run interrupted in a
pack resumes alone or in another pack, without lost or duplicated points.

This is the unit an executor runs (``train_group(configs, data, store=...)``): a local worker
(:mod:`scalecalc.calibration.sweep`), a Ray task or a Slurm job alike. See docs/reference.md
§15 for the recipes' shapes.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from scalecalc.calibration import loop
from scalecalc.calibration.recipe import RunConfig
from scalecalc.calibration.stacked import Stack
from scalecalc.calibration.store import Point
from scalecalc.errors import MissingDependency, UsageError

try:  # the calibrate extra: without it, one line naming the extra rather than a traceback
    import torch
except ImportError:
    raise MissingDependency.for_extra("torch", "calibrate") from None

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on CUDA, fp32 elsewhere (as loop.py)


def pack_key(cfg: RunConfig) -> tuple:
    """What runs must share to be stacked: the model shape and the batch shape.

    Seeds, learning rates, schedules, budgets and optimizer settings may differ."""
    m = cfg.model_kwargs()
    return (tuple(sorted(m.items())), cfg.batch_size, cfg.data_key())


def autocast_for(device: str, precision: str = "auto"):
    """The autocast context of a precision: ``fp32`` none; ``bf16`` bfloat16 autocast (also on
    CPU, so the CUDA branch's numerics are exercised without a GPU); ``auto`` bf16 on CUDA."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    device_type = device.split(":")[0]
    if precision == "bf16" or (precision == "auto" and device_type == "cuda"):
        return torch.autocast(device_type=device_type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass(eq=False)
class _Member:
    """One run of the pack and everything that is its own. ``model`` and ``optimizer`` hold its
    weights and AdamW state between the stacked steps: at its evaluations, in its checkpoints."""

    cfg: RunConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer  # its hyperparameters (lr set each step) and state format
    rng: np.random.Generator
    eval_batches: list
    eval_at: set
    max_steps: int
    warmup_steps: int
    tps: int
    flops_per_step: float
    params_count: dict
    N: float
    ckpt: object
    state: dict
    step: int = 0
    val_loss: float | None = None
    loss: float | None = None
    lr: float = 0.0
    result: loop.RunResult | None = None


def train_group(
    configs: Sequence[RunConfig],
    data,
    *,
    store=None,
    checkpoint_dir=None,
    device: str = "cpu",
    precision: str = "auto",
    fused: bool | None = None,
    compile: bool = False,
    progress: Callable[[dict], None] | None = None,
    stop: Callable[[], bool] | None = None,
    checkpoint_every_s: float = loop.CHECKPOINT_EVERY_S,
    checkpoint_every_steps: int | None = None,
) -> list[loop.RunResult]:
    """Train ``configs`` (runs of one :func:`pack_key`) together; one RunResult each, in order.

    Parameters
    ----------
    configs : sequence of RunConfig
        K >= 1 runs sharing model and batch shape; different horizons are fine (a member that
        finishes leaves the pack, the others go on).
    data : TokenData
        From :func:`scalecalc.calibration.data.load_corpus`.
    store, checkpoint_dir, progress, stop, checkpoint_every_s, checkpoint_every_steps
        As :func:`scalecalc.calibration.loop.train_run`, per member.
    device : str
        ``cpu``, ``cuda[:i]`` or ``mps``.
    precision : str
        ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32`` or ``bf16``.
    fused : bool, optional
        torch's fused AdamW kernel (one call per set of members with equal settings); default: on
        CUDA only. Otherwise the stacked update: a dozen elementwise ops over all members.
    compile : bool
        ``torch.compile`` the stacked forward and loss (``calibrate run --compile``); it is
        compiled again whenever a member leaves the pack (K changes).

    A member whose loss becomes NaN/inf or explodes is marked ``diverged`` and leaves the pack;
    the others go on. ``torch.cuda.OutOfMemoryError`` propagates (the caller halves K).
    """
    if not configs:
        return []
    keys = {pack_key(c) for c in configs}
    if len(keys) != 1:
        raise UsageError("train_group: the runs of a pack must share model shape and batch size")
    members = [_member(c, data, store, checkpoint_dir, device, fused) for c in configs]
    cfg0 = configs[0]
    autocast = autocast_for(device, precision)
    pack, stack = members, _stack(members, device, fused, compile)  # pack[k] is the stack's row k
    for m in members:
        loop._report(
            progress,
            "start",
            m.cfg,
            m.step,
            m.max_steps,
            N=m.N,
            D=m.max_steps * m.tps,
            C=m.max_steps * m.flops_per_step,
            tokens_per_param=m.max_steps * m.tps / m.N,
            warmup_steps=m.warmup_steps,
            resumed=m.step,
            pack=len(members),
        )
    seg_t0 = time.perf_counter()
    last_ckpt, last_report = time.monotonic(), 0.0
    while True:
        wall = time.perf_counter() - seg_t0
        for m in _active(members):  # evaluations and the end of a member's run
            eval_t0 = time.perf_counter()
            try:
                _eval_if_due(m, stack, pack.index(m), autocast, store, m.state["wall"] + wall)
            except loop.Diverged as exc:
                _diverge(m, str(exc), None, m.state["wall"] + wall, device, progress)
            seg_t0 += time.perf_counter() - eval_t0
            if m.result is None and m.step >= m.max_steps:
                m.result = _finish(m, "done", m.state["wall"] + wall, device, None)
        active = _active(members)
        if not active:
            break
        if active != pack:  # members finished or diverged: the pack goes on without them
            stack = stack.select([pack.index(m) for m in active])
            pack = active
        if stop is not None and stop():
            for m in active:
                _save(m, stack, pack.index(m), m.state["wall"] + wall)
                m.result = loop._result(
                    m.cfg,
                    "interrupted",
                    m.params_count,
                    m.N,
                    m.step,
                    m.tps,
                    m.flops_per_step,
                    m.val_loss,
                    m.state["wall"] + wall,
                    device,
                )
            break
        due = checkpoint_every_steps and active[0].step % checkpoint_every_steps == 0
        if time.monotonic() - last_ckpt > checkpoint_every_s or (due and active[0].step):
            for m in active:
                _save(m, stack, pack.index(m), m.state["wall"] + wall)
            last_ckpt = time.monotonic()
        losses = _packed_step(stack, active, data, cfg0, device, autocast)
        for m, loss in zip(active, losses):
            m.step += 1
            m.loss = loss
            m.state["loss_sum"] += loss
            m.state["loss_n"] += 1
            try:
                loop._check_divergence(loss, m.step, m.warmup_steps, m.state["initial"], m.cfg.vocab_size)
            except loop.Diverged as exc:
                _diverge(m, str(exc), store, m.state["wall"] + time.perf_counter() - seg_t0, device, progress)
        if progress is not None and time.monotonic() - last_report > 0.5:
            last_report = time.monotonic()
            wall = time.perf_counter() - seg_t0
            for m in _active(members):  # tokens/s of one member; the pack's is K times it
                loop._report(
                    progress,
                    "step",
                    m.cfg,
                    m.step,
                    m.max_steps,
                    loss=m.loss,
                    val_loss=m.val_loss,
                    lr=m.lr,
                    pack=len(members),
                    tokens_per_s=(m.step - m.state["step"]) * m.tps / max(wall, 1e-9),
                )
    for m in members:
        if m.result.status != "interrupted" and m.ckpt is not None:
            m.ckpt.remove()
        if m.result.status == "done":
            loop._report(progress, "end", m.cfg, m.step, m.max_steps, status="done", val_loss=m.val_loss)
    return [m.result for m in members]


def _member(cfg: RunConfig, data, store, checkpoint_dir, device: str, fused) -> _Member:
    """Build one member exactly as :func:`loop.train_run` builds a run (same init, optimizer,
    data order, eval windows), resuming from its checkpoint when there is one."""
    device_type = device.split(":")[0]
    model = loop.build_model(cfg, device)
    params_count, fpt = loop.accounting(model, cfg.flops_convention)
    N = params_count["total"]
    h = cfg.horizon(N, fpt[cfg.flops_convention])
    loop.check_data(data, cfg)
    optimizer = _optimizer(model, cfg, device_type, fused)
    if store is not None:
        store.set_run_info(
            cfg.run_id,
            device=device,
            versions=loop.versions(),
            corpus_hash=getattr(data, "corpus_hash", None),
            params=params_count,
            flops_per_token=fpt,
            config=loop.resolved_config(cfg, params_count, fpt),
        )
    rng = np.random.default_rng(cfg.seed)
    ckpt = loop._Checkpoint(checkpoint_dir, cfg.run_id) if checkpoint_dir else None
    state = {"step": 0, "wall": 0.0, "loss_sum": 0.0, "loss_n": 0, "initial": None}
    if ckpt is not None and ckpt.exists():
        state = ckpt.load(model, optimizer, rng)
        if store is not None:
            store.truncate_points_after(cfg.run_id, state["step"])
    return _Member(
        cfg,
        model,
        optimizer,
        rng,
        loop._eval_batches(data, cfg, device),
        set(cfg.eval_steps(h.max_steps)),
        h.max_steps,
        h.warmup_steps,
        h.tokens_per_step,
        fpt[cfg.flops_convention] * h.tokens_per_step,
        params_count,
        N,
        ckpt,
        state,
        step=state["step"],
    )


def _optimizer(model, cfg: RunConfig, device_type: str, fused: bool | None):
    """The run's AdamW (:meth:`GPT.configure_optimizer`), with ``fused`` overridable so the
    CUDA setting (fused=True) is also tested on CPU, where torch >= 2.4 implements it."""
    opt = model.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, device_type)
    if fused is None or "fused" not in inspect.signature(torch.optim.AdamW).parameters:
        return opt
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in opt.param_groups]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=bool(fused))


def _active(members: list[_Member]) -> list[_Member]:
    return [m for m in members if m.result is None]


def _stack(members: list[_Member], device: str, fused: bool | None, compile: bool = False) -> Stack:
    """The members as one :class:`Stack`; fused AdamW by default on CUDA only (as loop.py)."""
    use_fused = device.split(":")[0] == "cuda" if fused is None else bool(fused)
    models, optimizers = [m.model for m in members], [m.optimizer for m in members]
    return Stack.from_members(models, optimizers, [m.step for m in members], fused=use_fused, compile=compile)


def _packed_step(stack: Stack, pack: list[_Member], data, cfg0, device, autocast):
    """One optimizer step of every member of ``pack`` (row k = ``pack[k]``); returns their
    training losses (floats)."""
    xs, ys = [], []
    for m in pack:
        m.lr = loop.get_lr(m.step, m.cfg, m.warmup_steps, m.max_steps)
        for group in m.optimizer.param_groups:
            group["lr"] = m.lr
        x, y = loop._batch(data.train, cfg0.batch_size, cfg0.seq_len, m.rng, device)
        xs.append(x)
        ys.append(y)
    with autocast:
        losses = stack.losses(torch.stack(xs), torch.stack(ys))
    stack.backward(losses)
    stack.step([m.optimizer.param_groups for m in pack], [m.cfg.grad_clip for m in pack])
    return [float(v) for v in losses.detach().float().cpu()]


def _eval_if_due(m: _Member, stack: Stack, row: int, autocast, store, wall: float) -> None:
    """Evaluate a member after ``m.step`` updates when that step is an eval step (the same
    windows and rule as :func:`loop.train_run`, on its own model with the stack's row ``row``
    copied in), and stream the point into the store; raises :class:`loop.Diverged` as the solo
    loop does."""
    if m.step not in m.eval_at or m.state.get("evaluated") == m.step:
        return
    m.state["evaluated"] = m.step
    stack.store_weights(row, m.model)
    m.val_loss = loop._evaluate(m.model, m.eval_batches, autocast)
    train_loss = m.state["loss_sum"] / m.state["loss_n"] if m.state["loss_n"] else None
    m.state["loss_sum"], m.state["loss_n"] = 0.0, 0
    if m.state["initial"] is None:
        m.state["initial"] = m.val_loss
    if store is not None:
        store.add_points(
            [
                Point(
                    m.cfg.run_id,
                    m.step,
                    m.step * m.tps,
                    m.step * m.flops_per_step,
                    train_loss,
                    m.val_loss,
                    loop.get_lr(max(m.step - 1, 0), m.cfg, m.warmup_steps, m.max_steps),
                    wall,
                )
            ]
        )
    loop._check_divergence(m.val_loss, m.step, m.warmup_steps, m.state["initial"], m.cfg.vocab_size)


def _diverge(m: _Member, error: str, store, wall: float, device: str, progress) -> None:
    """Mark one member diverged (it leaves the pack) and keep its exploding point."""
    if store is not None and m.step not in m.eval_at:
        store.add_points(
            [
                Point(
                    m.cfg.run_id,
                    m.step,
                    m.step * m.tps,
                    m.step * m.flops_per_step,
                    loop._finite_or_none(m.loss),
                    None,
                    m.lr,
                    wall,
                )
            ]
        )
    m.result = _finish(m, "diverged", wall, device, error)
    loop._report(progress, "end", m.cfg, m.step, m.max_steps, status="diverged", error=error)


def _finish(m: _Member, status: str, wall: float, device: str, error) -> loop.RunResult:
    final = m.val_loss if status == "done" else None
    return loop._result(m.cfg, status, m.params_count, m.N, m.step, m.tps, m.flops_per_step, final, wall, device, error)


def _save(m: _Member, stack: Stack, row: int, wall: float) -> None:
    """Checkpoint a member in :func:`loop.train_run`'s format (it resumes alone or packed)."""
    if m.ckpt is not None:
        stack.store_member(row, m.model, m.optimizer)
        m.ckpt.save(m.model, m.optimizer, m.rng, {**m.state, "step": m.step, "wall": wall})


# -- what an executor needs around train_group ----------------------------------------------


def claim_group(store, worker: str, first, ids: Sequence[str], k: int) -> list:
    """``first`` (a claimed RunRecord) plus up to ``k - 1`` pack mates claimed for ``worker``.

    Mates are runs among ``ids`` with the same :func:`pack_key`; each is taken with the store's
    atomic :meth:`~scalecalc.calibration.store.Store.claim_next`, so two workers never share a
    run. Returns the claimed records, ``first`` first.
    """
    key = pack_key(RunConfig.from_dict(first.config))
    wanted = set(ids) - {first.id}
    mates = [
        r.id
        for r in store.runs()
        if r.id in wanted and r.status in ("queued", "running") and pack_key(RunConfig.from_dict(r.config)) == key
    ]
    group = [first]
    while len(group) < k and mates:
        record = store.claim_next(worker, only=mates)
        if record is None:
            break
        group.append(record)
        mates.remove(record.id)
    return group


def time_packed_steps(
    configs: Sequence[RunConfig],
    device: str = "cpu",
    *,
    steps: int = 3,
    precision: str = "auto",
    fused: bool | None = None,
) -> float:
    """Seconds per packed optimizer step of ``configs`` on random tokens (timing does not
    depend on the text), after one warm-up step. ``calibrate run --dry-run`` and
    ``bench/pack_throughput.py`` use it to time exactly the step the sweep runs."""
    from scalecalc.calibration.data import TokenData

    cfg0 = configs[0]
    rng = np.random.default_rng(0)
    tokens = rng.integers(
        0, cfg0.vocab_size, dtype=np.int64, size=max(cfg0.batch_size, loop.EVAL_SEQS) * cfg0.seq_len * 8
    )
    data = TokenData(tokens, tokens, cfg0.vocab_size, "random", "", len(tokens), len(tokens), ())
    members = [_member(c, data, None, None, device, fused) for c in configs]
    stack = _stack(members, device, fused)
    autocast = autocast_for(device, precision)
    _packed_step(stack, members, data, cfg0, device, autocast)  # warm-up
    loop._sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _packed_step(stack, members, data, cfg0, device, autocast)
    loop._sync(device)
    return (time.perf_counter() - t0) / steps


def pack_loop(
    store,
    out_dir,
    ids: Sequence[str],
    device: str,
    progress,
    stop,
    worker: str,
    runs_per_device: int,
    precision: str = "auto",
    **train_kw,
) -> tuple[list[loop.RunResult], bool]:
    """A local worker that trains packs: claim up to K mates, :func:`train_group` them, record
    each member's status; until no run is left or ``stop`` (Ctrl-C). Returns (results,
    interrupted).

    Out of memory with K > 1 members: the members go back to the queue and K halves (announced
    as a ``packing`` event); with K = 1 the run fails with the batch-size advice of the solo path.
    """
    from pathlib import Path

    from scalecalc.calibration import data as data_mod
    from scalecalc.calibration import sweep
    from scalecalc.errors import ScalecalcError

    k = max(int(runs_per_device), 1)
    train_kw = {key: v for key, v in train_kw.items() if v is not None}
    corpora: dict[tuple, object] = {}
    results: list[loop.RunResult] = []
    with stop:
        while not stop():
            first = store.claim_next(worker, only=ids)
            if first is None:
                return results, False
            cfgs = []
            for record in claim_group(store, worker, first, ids, k):
                cfg = RunConfig.from_dict(record.config)
                if cfg.run_id != record.id:  # the stored config must hash to its id
                    store.finish(record.id, "failed", "stored config does not match its run id")
                else:
                    cfgs.append(cfg)
            if not cfgs:
                continue
            try:
                key = cfgs[0].data_key()
                if key not in corpora:
                    corpora[key] = data_mod.load_corpus(
                        list(cfgs[0].data) if cfgs[0].data else None,
                        cfgs[0].tokenizer,
                        max_bytes=cfgs[0].data_max_bytes,
                    )
                    store.set_meta(corpus_hash=corpora[key].corpus_hash, versions=loop.versions())
                group = train_group(
                    cfgs,
                    corpora[key],
                    store=store,
                    checkpoint_dir=Path(out_dir) / "checkpoints",
                    device=device,
                    precision=precision,
                    progress=progress,
                    stop=stop,
                    **train_kw,
                )
            except (ScalecalcError, KeyboardInterrupt):
                for cfg in cfgs:
                    store.finish(cfg.run_id, "queued", None)
                raise
            except Exception as exc:
                if not _is_oom(exc):
                    for cfg in cfgs:
                        store.finish(cfg.run_id, "failed", f"{type(exc).__name__}: {exc}")
                    raise
                sweep._free(device)
                if len(cfgs) > 1:
                    k = max(len(cfgs) // 2, 1)
                    for cfg in cfgs:
                        store.finish(cfg.run_id, "queued", None)
                    sweep._emit(
                        progress,
                        event="packing",
                        runs_per_device=k,
                        reason=f"out of memory with {len(cfgs)} runs packed on {device}; retrying with {k} per pack",
                    )
                    continue
                msg = sweep._oom_message(cfgs[0], device)
                store.finish(cfgs[0].run_id, "failed", msg)
                sweep._emit(
                    progress, event="run", run_id=cfgs[0].run_id, label=cfgs[0].label(), status="failed", error=msg
                )
                continue
            for cfg, result in zip(cfgs, group):
                results.append(result)
                if result.status == "interrupted":
                    store.finish(cfg.run_id, "queued", None)  # resumes from its checkpoint
                    continue
                store.finish(cfg.run_id, result.status, result.error)
                sweep._emit(
                    progress,
                    event="run",
                    run_id=cfg.run_id,
                    label=cfg.label(),
                    status=result.status,
                    error=result.error,
                    final_loss=result.final_loss,
                    wall_time=result.wall_time,
                )
            if any(r.status == "interrupted" for r in group):
                return results, True
    return results, True


def _is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the RuntimeError other backends raise for it."""
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )
