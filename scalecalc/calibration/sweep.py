"""Run a calibration recipe: queue its runs in the store, train them on the available devices.

``run_sweep(recipe, out_dir)`` is what ``scalecalc calibrate run`` calls. It is resumable by
construction: runs are keyed by the hash of their configuration, done runs are skipped, an
interrupted run continues from its checkpoint (``out_dir/checkpoints/<run_id>.pt``), and with
``devices=["cuda:0", "cuda:1"]`` one worker process per device claims runs from the store, which
hands each run to exactly one worker (:meth:`scalecalc.calibration.store.Store.claim_next`).

Nothing here prints: progress goes to an optional callback (the CLI draws it with rich on
stderr), and the result is a :class:`SweepSummary`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalecalc.calibration import data as data_mod
from scalecalc.calibration.loop import (
    RunResult,
    autodetect_device,
    build_model,
    resolved_config,
    train_run,
    train_steps,
    versions,
)
from scalecalc.calibration.recipe import RunConfig, SweepRecipe
from scalecalc.calibration.store import STATUSES, Store, worker_id
from scalecalc.errors import MissingDependency, ScalecalcError, UsageError

try:  # the calibrate extra: without it, one line naming the extra rather than a traceback
    import torch
except ImportError:
    raise MissingDependency.for_extra("torch", "calibrate") from None

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class SweepSummary:
    """Where a sweep stands after ``run_sweep`` returns.

    ``counts`` maps every status (queued, running, done, diverged, failed) to its number of runs
    of this recipe; ``results`` are the runs trained by this call (in-process worker only);
    ``interrupted`` is True after Ctrl-C (the caller exits 130).
    """

    out_dir: str
    recipe: str
    devices: tuple[str, ...]
    total: int
    counts: dict
    results: tuple[RunResult, ...] = field(default=())
    wall_time: float = 0.0
    interrupted: bool = False


@dataclass(frozen=True)
class PlannedRun:
    """One row of ``calibrate run --dry-run``: N (total and non-embedding params), D (tokens),
    C (FLOPs, the run's convention), steps and an estimated time from a measured step."""

    run_id: str
    sweep: str
    label: str
    n_layer: int
    d_model: int
    batch_size: int
    lr: float
    N: float
    N_non_embedding: float
    D: float
    C: float
    steps: int
    warmup_steps: int
    tokens_per_param: float
    seconds: float | None
    status: str | None = None


def set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads {threads}: give 1 or more CPU threads")
        torch.set_num_threads(int(threads))


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> cuda, mps or cpu; otherwise check the named device exists."""
    if device in (None, "", "auto"):
        return autodetect_device()
    kind = device.split(":")[0]
    if kind == "cpu":
        return "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available here; use --device cpu or auto")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA "
                f"device(s) here (cuda:0 ... cuda:{torch.cuda.device_count() - 1})"
            )
        return device
    if kind == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError("--device mps: Apple MPS is not available here; use cpu or auto")
        return "mps"
    raise UsageError(f"--device {device}: unknown device; use auto, cpu, cuda, cuda:N or mps")


def queue_runs(recipe: SweepRecipe, store: Store) -> list[RunConfig]:
    """Add the recipe's runs to the store (existing ids untouched); return them in order.

    The stored config carries the resolved horizon (max_steps, warmup_steps) and the params,
    counted by :mod:`scalecalc.flops` exactly as the model will report them.
    """
    from scalecalc.flops import param_counts, training_flops_per_token

    runs = recipe.runs()
    rows = []
    for cfg in runs:
        arch = cfg.arch()
        params = {k: float(v) for k, v in param_counts(arch).items()}
        fpt = {cfg.flops_convention: training_flops_per_token(arch, cfg.flops_convention)}
        rows.append((cfg.run_id, resolved_config(cfg, params, fpt)))
    store.add_runs(rows)
    store.set_meta(recipe=recipe.name, recipe_path=recipe.path, recipe_text=recipe.text)
    return runs


def run_sweep(
    recipe: SweepRecipe,
    out_dir: str | Path,
    *,
    device: str = "auto",
    devices: list[str] | None = None,
    data: list[str] | None = None,
    tokenizer: str | None = None,
    compile: bool = False,
    progress: Progress | None = None,
    checkpoint_every_s: float | None = None,
    checkpoint_every_steps: int | None = None,
    threads: int | None = None,
    runs_per_device: int | str = 1,
    precision: str = "auto",
    executor=None,
) -> SweepSummary:
    """Train every run of ``recipe`` not yet done, writing curves to ``out_dir/results.sqlite``.

    Parameters
    ----------
    device : str
        ``auto`` (cuda -> mps -> cpu), ``cpu``, ``cuda[:i]`` or ``mps``; announced through
        ``progress`` as a ``{"event": "device"}`` message.
    devices : list of str, optional
        Several devices: one worker process each, claiming runs from the store.
    data, tokenizer : optional
        Override the recipe's corpus and tokenizer (this changes the run ids).
    progress : callable, optional
        Receives dict events: ``sweep`` (totals), ``device``, ``start``/``step``/``end`` of each run
        (from :func:`train_run`), ``run`` (final status of a run).
    threads : int, optional
        CPU threads for torch (``torch.set_num_threads``); on a shared or busy machine 1 thread
        avoids OpenMP contention, which can slow tiny models tenfold.
    runs_per_device : int or "auto"
        K > 1 trains up to K same-shape runs together as one stacked model
        (:func:`scalecalc.calibration.packed.train_group`); ``auto`` picks K from measured
        memory and step time (:func:`scalecalc.calibration.dryrun.choose_runs_per_device`),
        announced as a ``{"event": "packing"}`` message.
    precision : str
        ``auto`` (bf16 autocast on CUDA, fp32 elsewhere), ``fp32`` or ``bf16``.
    executor : ExecutorOptions, optional
        Where runs train (:mod:`scalecalc.calibration.executors`): local (default), ray or
        slurm. Options are checked, and the cluster reached, before the store is created.
    """
    from scalecalc.calibration.executors import ExecutorOptions, make_executor
    from scalecalc.calibration.executors.local import LocalExecutor

    t0 = time.perf_counter()
    set_threads(threads)
    if data is not None or tokenizer is not None:
        recipe = recipe.with_overrides(data=list(data) if data else None, tokenizer=tokenizer)
    options = executor or ExecutorOptions()
    engine = make_executor(options)  # bad options: one error, nothing written, no cluster
    remote = not isinstance(engine, LocalExecutor)
    if remote and runs_per_device != 1:
        raise UsageError(
            f"--runs-per-device: packing runs on the local executor only; with "
            f"--executor {options.name} each task trains one run (give it a GPU "
            "fraction with --gpus-per-run)"
        )
    if remote:  # the device is chosen on each worker; this machine may have none
        devs = (options.name,)
    else:
        devs = tuple(resolve_device(d) for d in devices) if devices else (resolve_device(device),)
        engine.devices = devs
    for spec in {c.data for c in recipe.runs()}:  # missing files fail before anything is written
        data_mod.resolve_sources(list(spec) if spec else None)
    if remote:
        engine.connect()  # no cluster, no partition, too many GPUs: fail before the store
    try:
        store = Store(out_dir, create=True)
    except BaseException:
        engine.close()
        raise
    try:
        runs = queue_runs(recipe, store)
        ids = [c.run_id for c in runs]
        store.requeue(("failed",))  # a failed run (e.g. out of memory) gets another try
        _emit(progress, event="device", devices=list(devs), requested=devices or device)
        counts = _counts(store, ids)
        _emit(progress, event="sweep", recipe=recipe.name, total=len(ids), counts=counts)
        kwargs = dict(
            compile=compile,
            checkpoint_every_s=checkpoint_every_s,
            checkpoint_every_steps=checkpoint_every_steps,
            threads=threads,
        )
        if remote:
            kwargs["device"] = device
        else:
            kwargs.update(
                device=devs[0],
                precision=precision,
                runs_per_device=_runs_per_device(recipe, devs[0], runs_per_device, precision, progress),
            )
        results, interrupted = engine.run(store, Path(out_dir), ids, progress, _SigintFlag(), **kwargs)
        return SweepSummary(
            str(out_dir),
            recipe.name,
            devs,
            len(ids),
            _counts(store, ids),
            tuple(results),
            time.perf_counter() - t0,
            interrupted,
        )
    finally:
        store.close()
        engine.close()


def _runs_per_device(recipe, device, runs_per_device, precision, progress) -> int:
    """K, the runs packed per device: as given, or measured (``auto``) and announced."""
    if runs_per_device != "auto":
        return int(runs_per_device)
    from scalecalc.calibration.dryrun import choose_runs_per_device

    choice = choose_runs_per_device(recipe.runs(), device, precision=precision)
    _emit(progress, event="packing", runs_per_device=choice.k, reason=choice.reason)
    return choice.k


def _counts(store: Store, ids: list[str]) -> dict:
    wanted = set(ids)
    out = dict.fromkeys(STATUSES, 0)
    for r in store.runs():
        if r.id in wanted:
            out[r.status] += 1
    return out


def _emit(progress: Progress | None, **event) -> None:
    if progress is not None:
        progress(event)


class _SigintFlag:
    """First Ctrl-C: set a flag (the run checkpoints at the next step boundary and the sweep
    stops); a second Ctrl-C raises KeyboardInterrupt at once."""

    def __init__(self):
        self.set = False
        self._old = None

    def __call__(self) -> bool:
        return self.set

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _worker_loop(
    store: Store,
    out_dir: Path,
    ids: list[str],
    device: str,
    progress: Progress | None,
    stop: _SigintFlag,
    *,
    compile: bool = False,
    threads: int | None = None,
    checkpoint_every_s: float | None = None,
    checkpoint_every_steps: int | None = None,
    runs_per_device: int = 1,
    precision: str = "auto",
) -> tuple[list[RunResult], bool]:
    """Claim and train runs until none is left or Ctrl-C; returns (results, interrupted).

    With ``runs_per_device`` K > 1 (or a precision other than ``auto``) each claim takes a
    pack of up to K same-shape runs (:func:`scalecalc.calibration.packed.claim_group`)."""
    me = f"{worker_id()}:{device}"
    if runs_per_device > 1 or precision != "auto":
        from scalecalc.calibration.packed import pack_loop

        return pack_loop(
            store,
            out_dir,
            ids,
            device,
            progress,
            stop,
            me,
            runs_per_device,
            precision,
            compile=compile,
            checkpoint_every_s=checkpoint_every_s,
            checkpoint_every_steps=checkpoint_every_steps,
        )
    corpora: dict[tuple, object] = {}
    results = []
    with stop:
        while not stop():
            record = store.claim_next(me, only=ids)
            if record is None:
                return results, False
            cfg = RunConfig.from_dict(record.config)
            if cfg.run_id != record.id:  # the stored config must hash to its id
                store.finish(record.id, "failed", "stored config does not match its run id")
                continue
            result = _train_one(
                store,
                out_dir,
                cfg,
                device,
                corpora,
                progress,
                stop,
                compile=compile,
                checkpoint_every_s=checkpoint_every_s,
                checkpoint_every_steps=checkpoint_every_steps,
            )
            if result is None:
                continue
            results.append(result)
            if result.status == "interrupted":
                return results, True
    return results, True


def _train_one(store, out_dir, cfg, device, corpora, progress, stop, **kw) -> RunResult | None:
    key = cfg.data_key()
    try:
        if key not in corpora:
            corpora[key] = data_mod.load_corpus(
                list(cfg.data) if cfg.data else None, cfg.tokenizer, max_bytes=cfg.data_max_bytes
            )
            store.set_meta(corpus_hash=corpora[key].corpus_hash, versions=versions())
        kw = {k: v for k, v in kw.items() if v is not None}
        result = train_run(
            cfg,
            corpora[key],
            store=store,
            checkpoint_dir=out_dir / "checkpoints",
            device=device,
            progress=progress,
            stop=stop,
            **kw,
        )
    except torch.cuda.OutOfMemoryError:
        msg = _oom_message(cfg, device)
        store.finish(cfg.run_id, "failed", msg)
        _emit(progress, event="run", run_id=cfg.run_id, label=cfg.label(), status="failed", error=msg)
        _free(device)
        return None
    except ScalecalcError as exc:  # bad data etc.: the whole sweep would fail the same way
        store.finish(cfg.run_id, "queued", None)
        raise exc
    except KeyboardInterrupt:  # second Ctrl-C: leave the run to be resumed
        store.finish(cfg.run_id, "queued", None)
        raise
    except Exception as exc:  # a bug: record it on the run, then show the traceback
        if not (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()):
            store.finish(cfg.run_id, "failed", f"{type(exc).__name__}: {exc}")
            raise
        msg = _oom_message(cfg, device)
        store.finish(cfg.run_id, "failed", msg)
        _emit(progress, event="run", run_id=cfg.run_id, label=cfg.label(), status="failed", error=msg)
        return None
    if result.status == "interrupted":
        store.finish(cfg.run_id, "queued", None)  # resumes from its checkpoint next time
    else:
        store.finish(cfg.run_id, result.status, result.error)
    _emit(
        progress,
        event="run",
        run_id=cfg.run_id,
        label=cfg.label(),
        status=result.status,
        error=result.error,
        final_loss=result.final_loss,
        wall_time=result.wall_time,
    )
    return result


def _oom_message(cfg: RunConfig, device: str) -> str:
    return (
        f"run {cfg.run_id} ({cfg.label()}) ran out of memory on {device}; use a smaller "
        f"batch_size than {cfg.batch_size} sequences (or a shorter seq_len) in the recipe"
    )


def _free(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# -- several devices: one process each -----------------------------------------------------


def _spawn_workers(out_dir: Path, ids, devices, store: Store, progress, kwargs) -> bool:
    """One ``python -c`` worker process per device (not multiprocessing: a child must not
    re-import the parent's ``__main__``, which may be ``python -m scalecalc``)."""
    import json
    import subprocess
    import sys

    spec = json.dumps({"out": str(out_dir), "ids": list(ids), "kwargs": kwargs})
    code = "import sys; from scalecalc.calibration.sweep import _worker_main; _worker_main(sys.argv[1], sys.argv[2])"
    procs = [subprocess.Popen([sys.executable, "-c", code, spec, dev]) for dev in devices]
    interrupted = False
    try:
        while any(p.poll() is None for p in procs):
            _emit(progress, event="sweep", total=len(ids), counts=_counts(store, ids))
            time.sleep(1.0)
    except KeyboardInterrupt:  # the workers got the same SIGINT and checkpoint themselves
        interrupted = True
    codes = [p.wait() for p in procs]
    if any(c not in (0, 130) for c in codes):
        raise ScalecalcError(
            f"--devices: a worker process failed (exit codes {codes}); see its error above, then rerun to resume"
        )
    return interrupted or 130 in codes


def _worker_main(spec: str, device: str) -> None:
    """Entry point of one worker process: claim and train runs on ``device`` until none is left."""
    import json
    import sys

    spec = json.loads(spec)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    set_threads(spec["kwargs"].get("threads"))
    store = Store(spec["out"])
    try:
        _, interrupted = _worker_loop(
            store, Path(spec["out"]), spec["ids"], device, None, _SigintFlag(), **spec["kwargs"]
        )
    except ScalecalcError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(int(exc.exit_code))
    finally:
        store.close()
    sys.exit(130 if interrupted else 0)


# -- dry run ------------------------------------------------------------------------------


def plan_sweep(
    recipe: SweepRecipe,
    *,
    device: str = "auto",
    measure: bool = True,
    out_dir: str | Path | None = None,
    data: list[str] | None = None,
    tokenizer: str | None = None,
    measure_steps: int = 3,
    threads: int | None = None,
) -> list[PlannedRun]:
    """The runs of a recipe with N, D, C, steps and (``measure``) an estimated time.

    The time per step is measured: a few optimizer steps of each distinct (shape, batch) on the
    device, on random tokens (timing does not depend on the text), times the run's steps.
    Statuses come from ``out_dir``'s store when it exists.
    """
    if data is not None or tokenizer is not None:
        recipe = recipe.with_overrides(data=list(data) if data else None, tokenizer=tokenizer)
    dev = resolve_device(device) if measure else "cpu"
    set_threads(threads)
    groups = recipe.groups()
    statuses = {}
    if out_dir is not None and (Path(out_dir) / "results.sqlite").exists():
        with Store(out_dir) as store:
            statuses = {r.id: r.status for r in store.runs()}
    timed: dict[tuple, float] = {}
    rows = []
    for cfg in recipe.runs():
        from scalecalc.flops import param_counts, training_flops_per_token

        arch = cfg.arch()
        counts = param_counts(arch)
        h = cfg.horizon(counts["total"], training_flops_per_token(arch, cfg.flops_convention))
        seconds = None
        if measure:
            key = (
                cfg.model_kwargs()["n_layer"],
                cfg.d_model,
                cfg.n_head,
                cfg.d_ff,
                cfg.mlp,
                cfg.pos,
                cfg.seq_len,
                cfg.batch_size,
                cfg.vocab_size,
            )
            if key not in timed:
                timed[key] = _seconds_per_step(cfg, dev, measure_steps)
            seconds = timed[key] * h.max_steps
        rows.append(
            PlannedRun(
                cfg.run_id,
                groups.get(cfg.run_id, ""),
                cfg.label(),
                cfg.n_layer,
                cfg.d_model,
                cfg.batch_size,
                cfg.lr,
                float(counts["total"]),
                float(counts["non_embedding"]),
                h.tokens,
                h.flops,
                h.max_steps,
                h.warmup_steps,
                h.tokens_per_param,
                seconds,
                statuses.get(cfg.run_id),
            )
        )
    return rows


def _seconds_per_step(cfg: RunConfig, device: str, steps: int) -> float:
    model = build_model(cfg, device)
    opt = model.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, device.split(":")[0])
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, size=cfg.batch_size * cfg.seq_len * 4, dtype=np.int64)
    kw = dict(batch_size=cfg.batch_size, seq_len=cfg.seq_len, rng=rng, device=device, grad_clip=cfg.grad_clip)
    train_steps(model, opt, tokens, steps=1, **kw)  # warm up allocators and kernels
    _, seconds = train_steps(model, opt, tokens, steps=steps, **kw)
    return seconds / steps
