"""One training run, top to bottom in the manner of nanoGPT's ``train.py``.

``train_run(cfg, data)`` builds the model from a :class:`~scalecalc.calibration.recipe.RunConfig`, derives
the horizon from the budget, trains with AdamW and the configured schedule, evaluates on fixed
validation batches at log-spaced and regular steps, streams each point into the results store
as it happens, and returns a :class:`RunResult`. Nothing downstream parses logs.

Numerics: fp32 on CPU and MPS; bf16 autocast, fused AdamW and SDPA attention on CUDA.
Crash safety: a checkpoint (model, optimizer, RNG states, step, running sums) is written by
atomic rename every few minutes; a resumed run truncates the store's points after the
checkpoint step and replays from there, so its curve equals an uninterrupted run's.

References: Karpathy, nanoGPT ``train.py`` (loop, get_lr, grad clip, autocast); Porian et al. 2024
(beta2 rule and warmup = N tokens, docs/reference.md §5.4); Hägele et al. 2024, "Scaling Laws and
Compute-Optimal Training Beyond Fixed Training Durations", arXiv 2405.18392 (warmup-stable-decay
with a ~20% cooldown matches cosine).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalecalc.calibration import data as data_mod
from scalecalc.calibration.model import GPT, GPTConfig
from scalecalc.calibration.recipe import RunConfig
from scalecalc.calibration.store import Point
from scalecalc.errors import MissingDependency

try:  # the calibrate extra: without it, one line naming the extra rather than a traceback
    import torch
except ImportError:
    raise MissingDependency.for_extra("torch", "calibrate") from None

CONVENTIONS = ("6nd", "kaplan", "head", "attention", "deepseek")  # recorded per run if known
EVAL_SEQS = 16  # sequences per validation batch, the same for every run (comparable losses)
EVAL_SEED = 1234  # the validation windows are fixed across runs and seeds
CHECKPOINT_EVERY_S = 180.0  # seconds between checkpoints ("every few minutes")


@dataclass(frozen=True)
class RunResult:
    """What one run produced.

    Attributes
    ----------
    run_id : str
    status : str
        ``done``, ``diverged`` or ``interrupted`` (checkpointed, to be resumed).
    params : dict
        Parameters by group (embedding, non_embedding, head, total, ...).
    N : float
        Total parameters.
    D : float
        Training tokens processed, ``steps * batch_size * seq_len``.
    C : float
        Training FLOPs, ``flops_per_token[cfg.flops_convention] * D``.
    final_loss : float or None
        Validation loss (nats/token) at the last step; None if it diverged before an eval.
    steps : int
        Optimizer steps taken.
    wall_time : float
        Seconds of training (evaluations excluded), over all resumed segments.
    device : str
    error : str or None
        Why a run diverged.
    """

    run_id: str
    status: str
    params: dict
    N: float
    D: float
    C: float
    final_loss: float | None
    steps: int
    wall_time: float
    device: str
    error: str | None = None


class Diverged(Exception):
    """The loss became NaN/inf or exploded."""


def autodetect_device() -> str:
    """cuda -> mps -> cpu (nanochat ``autodetect_device_type``)."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def versions() -> dict:
    from scalecalc import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scalecalc": __version__,
    }


def get_lr(step: int, cfg: RunConfig, warmup_steps: int, max_steps: int) -> float:
    """Learning rate at ``step`` (0-based optimizer step).

    1. warmup: linear from lr/warmup to lr over ``warmup_steps`` (N tokens by default);
    2. constant: lr;
    3. cosine: from lr down to ``min_lr_frac * lr`` at the last step (nanoGPT, Chinchilla: 10x);
    4. wsd: lr until the last ``cooldown_frac`` of the run, then linear to ``min_lr_frac * lr``
       (Hägele et al. 2024 §3: a ~20% cooldown matches cosine).
    """
    lr, min_lr = cfg.lr, cfg.lr * cfg.min_lr_frac
    if step < warmup_steps:  # 1
        return lr * (step + 1) / warmup_steps
    if cfg.schedule == "constant":  # 2
        return lr
    if cfg.schedule == "cosine":  # 3
        progress = (step - warmup_steps) / max(max_steps - warmup_steps, 1)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))) * (lr - min_lr)
    cooldown = max(int(round(cfg.cooldown_frac * max_steps)), 1)  # 4
    start = max(max_steps - cooldown, warmup_steps)
    if step < start:
        return lr
    return lr + (min_lr - lr) * (step - start + 1) / max(max_steps - start, 1)


def train_step(model, optimizer, x, y, *, grad_clip: float, autocast) -> torch.Tensor:
    """One AdamW step on batch (x, y): forward, backward, clip, update. Returns the loss tensor
    (detached; the caller decides when to synchronise with ``.item()``)."""
    with autocast:
        _, loss = model(x, y)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def train_steps(
    model,
    optimizer,
    tokens,
    *,
    batch_size: int,
    seq_len: int,
    steps: int,
    rng: np.random.Generator,
    device: str = "cpu",
    grad_clip: float = 1.0,
    lr: float | None = None,
) -> tuple[list[float], float]:
    """``steps`` plain training steps on random windows of ``tokens``; returns (losses, seconds).

    The throughput benchmark (``bench/train_throughput.py``) and ``calibrate run --dry-run`` use
    this to time the exact step the sweep runs.
    """
    autocast = _autocast(device)
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr
    losses = []
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = _batch(tokens, batch_size, seq_len, rng, device)
        losses.append(train_step(model, optimizer, x, y, grad_clip=grad_clip, autocast=autocast))
    _sync(device)
    seconds = time.perf_counter() - t0
    return [float(l) for l in losses], seconds


def check_data(data, cfg: RunConfig) -> None:
    """One ``DataError`` line when the corpus cannot feed the run (too short, ids beyond vocab)."""
    from scalecalc.errors import DataError

    if len(data.train) <= cfg.seq_len + 1:
        raise DataError(
            f"--data: the corpus has {len(data.train)} training tokens, fewer than "
            f"one sequence of {cfg.seq_len}; give more text or a shorter seq_len"
        )
    if data.vocab_size > cfg.vocab_size:
        raise DataError(
            f"--tokenizer: the corpus uses {data.vocab_size} token ids but the run's "
            f"vocab_size is {cfg.vocab_size}; set vocab_size or the tokenizer to match"
        )


def build_model(cfg: RunConfig, device: str = "cpu") -> GPT:
    """The model of a run, initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return GPT(GPTConfig(**cfg.model_kwargs())).to(device)


def accounting(model: GPT, convention: str = "6nd") -> tuple[dict, dict]:
    """(params by group, training FLOPs per token by convention) from ``scalecalc.flops``;
    ``convention`` (the run's) is always among them."""
    params = {k: float(v) for k, v in model.param_counts().items()}
    fpt = {convention: float(model.flops_per_token(convention))}
    for name in CONVENTIONS:
        try:
            fpt[name] = float(model.flops_per_token(name))
        except Exception:  # a convention this model cannot be counted under; skip it
            continue
    return params, fpt


def resolved_config(cfg: RunConfig, params: dict, fpt: dict) -> dict:
    """The stored config: the RunConfig plus its resolved horizon (docs/architecture.md, "One
    calibration, end to end")."""
    h = cfg.horizon(params["total"], fpt[cfg.flops_convention])
    return {
        **cfg.to_dict(),
        "max_steps": h.max_steps,
        "warmup_steps": h.warmup_steps,
        "tokens_budget": h.tokens,
        "flops_budget": cfg.budget_amount if cfg.budget_kind == "flops" else None,
        "n_params": params["total"],
    }


def train_run(
    cfg: RunConfig,
    data,
    *,
    store=None,
    checkpoint_dir: str | Path | None = None,
    device: str = "cpu",
    progress: Callable[[dict], None] | None = None,
    compile: bool = False,
    stop: Callable[[], bool] | None = None,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    checkpoint_every_steps: int | None = None,
) -> RunResult:
    """Train one run of a sweep and return its record.

    Parameters
    ----------
    cfg : RunConfig
        The run (shape, optimiser, schedule, budget, seed).
    data : TokenData
        From :func:`scalecalc.calibration.data.load_corpus`; ``train`` and ``val`` token arrays.
    store : Store, optional
        Points are written to it as they happen (``INSERT OR IGNORE``: never duplicated).
    checkpoint_dir : path, optional
        Where ``<run_id>.pt`` (+ ``.json`` sidecar) is kept; a run finding one there resumes.
    device : str
        ``cpu``, ``cuda[:i]`` or ``mps``.
    progress : callable, optional
        Called with a dict (``run_id, step, max_steps, tokens_per_s, loss, ...``) a few times a
        second; the CLI renders it.
    stop : callable, optional
        Polled every step; when it returns True the run checkpoints and returns ``interrupted``.
    """
    # -- init: seeds, model, accounting, horizon ---------------------------------------------
    device_type = device.split(":")[0]
    model = build_model(cfg, device)
    params, fpt = accounting(model, cfg.flops_convention)
    N = params["total"]
    # horizon from the budget (RunConfig.horizon): for a FLOP budget
    #   num_steps = round(target_flops / (flops_per_token * tokens_per_step)),
    # for a token budget round(tokens / tokens_per_step); warmup = N tokens unless set.
    # The tokens:params ratio D/N goes out with the "start" event (the CLI prints it).
    h = cfg.horizon(N, fpt[cfg.flops_convention])
    max_steps, warmup_steps, tps = h.max_steps, h.warmup_steps, h.tokens_per_step
    flops_per_step = fpt[cfg.flops_convention] * tps  # FLOPs, one optimizer step
    check_data(data, cfg)
    optimizer = model.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, device_type)
    rng = np.random.default_rng(cfg.seed)  # training windows
    eval_batches = _eval_batches(data, cfg, device)
    eval_at = set(cfg.eval_steps(max_steps))
    autocast = _autocast(device)
    step_model = torch.compile(model) if compile else model
    if store is not None:
        store.set_run_info(
            cfg.run_id,
            device=device,
            versions=versions(),
            corpus_hash=getattr(data, "corpus_hash", None),
            params=params,
            flops_per_token=fpt,
            config=resolved_config(cfg, params, fpt),
        )
    ckpt = _Checkpoint(checkpoint_dir, cfg.run_id) if checkpoint_dir else None
    state = {"step": 0, "wall": 0.0, "loss_sum": 0.0, "loss_n": 0, "initial": None}
    if ckpt is not None and ckpt.exists():
        state = ckpt.load(model, optimizer, rng)
        if store is not None:
            store.truncate_points_after(cfg.run_id, state["step"])
    _report(
        progress,
        "start",
        cfg,
        state["step"],
        max_steps,
        N=N,
        D=h.tokens,
        C=h.flops,
        tokens_per_param=h.tokens_per_param,
        warmup_steps=warmup_steps,
        resumed=state["step"],
    )

    # -- loop ---------------------------------------------------------------------------------
    last_ckpt, last_report, val_loss, error = time.monotonic(), 0.0, None, None
    loss, lr = None, get_lr(state["step"], cfg, warmup_steps, max_steps)
    step = state["step"]
    seg_t0, seg_wall = time.perf_counter(), state["wall"]
    try:
        while True:
            wall = seg_wall + time.perf_counter() - seg_t0
            if step in eval_at:  # evaluate the model after `step` updates
                eval_t0 = time.perf_counter()
                val_loss = _evaluate(model, eval_batches, autocast)
                seg_t0 += time.perf_counter() - eval_t0  # evals do not count as training time
                train_loss = state["loss_sum"] / state["loss_n"] if state["loss_n"] else None
                state["loss_sum"], state["loss_n"] = 0.0, 0
                if state["initial"] is None:
                    state["initial"] = val_loss
                if store is not None:
                    store.add_points(
                        [
                            Point(
                                cfg.run_id,
                                step,
                                step * tps,
                                step * flops_per_step,
                                train_loss,
                                val_loss,
                                get_lr(max(step - 1, 0), cfg, warmup_steps, max_steps),
                                wall,
                            )
                        ]
                    )
                _check_divergence(val_loss, step, warmup_steps, state["initial"], cfg.vocab_size)
            if step >= max_steps:
                break
            if stop is not None and stop():
                if ckpt is not None:
                    ckpt.save(model, optimizer, rng, {**state, "step": step, "wall": wall})
                return _result(cfg, "interrupted", params, N, step, tps, flops_per_step, val_loss, wall, device)
            if ckpt is not None and (
                time.monotonic() - last_ckpt > checkpoint_every_s
                or (checkpoint_every_steps and step % checkpoint_every_steps == 0 and step)
            ):
                ckpt.save(model, optimizer, rng, {**state, "step": step, "wall": wall})
                last_ckpt = time.monotonic()
            lr = get_lr(step, cfg, warmup_steps, max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = _batch(data.train, cfg.batch_size, cfg.seq_len, rng, device)
            loss = float(train_step(step_model, optimizer, x, y, grad_clip=cfg.grad_clip, autocast=autocast))
            step += 1
            state["loss_sum"] += loss
            state["loss_n"] += 1
            _check_divergence(loss, step, warmup_steps, state["initial"], cfg.vocab_size)
            if progress is not None and time.monotonic() - last_report > 0.5:
                last_report = time.monotonic()
                wall = seg_wall + time.perf_counter() - seg_t0
                done_tokens = (step - state["step"]) * tps
                _report(
                    progress,
                    "step",
                    cfg,
                    step,
                    max_steps,
                    loss=loss,
                    val_loss=val_loss,
                    lr=lr,
                    tokens_per_s=done_tokens / max(wall - state["wall"], 1e-9),
                )
    except Diverged as exc:
        error = str(exc)
        wall = seg_wall + time.perf_counter() - seg_t0
        if store is not None and step not in eval_at:  # keep the exploding point on the curve
            store.add_points(
                [Point(cfg.run_id, step, step * tps, step * flops_per_step, _finite_or_none(loss), None, lr, wall)]
            )
        if ckpt is not None:
            ckpt.remove()
        _report(progress, "end", cfg, step, max_steps, status="diverged", error=error)
        return _result(cfg, "diverged", params, N, step, tps, flops_per_step, None, wall, device, error)

    # -- final eval done at step == max_steps above; clean up ---------------------------------
    if ckpt is not None:
        ckpt.remove()
    _report(progress, "end", cfg, step, max_steps, status="done", val_loss=val_loss)
    return _result(cfg, "done", params, N, step, tps, flops_per_step, val_loss, wall, device)


# ---------------------------------------------------------------------------------------------
# helpers


def _result(cfg, status, params, N, step, tps, flops_per_step, final_loss, wall, device, error=None) -> RunResult:
    return RunResult(
        cfg.run_id,
        status,
        params,
        N,
        float(step * tps),
        float(step * flops_per_step),
        final_loss,
        step,
        wall,
        device,
        error,
    )


def _finite_or_none(x):
    return x if x is not None and math.isfinite(x) else None


def _check_divergence(loss: float, step: int, warmup_steps: int, initial: float | None, vocab_size: int) -> None:
    """NaN/inf at any step; after warmup, a loss above 1.5x the initial loss or above
    ln(vocab) + 3 nats (far worse than a uniform guess) means the run blew up."""
    if not math.isfinite(loss):
        raise Diverged(f"loss became {loss} at step {step}")
    if step <= warmup_steps:
        return
    ceiling = math.log(vocab_size) + 3.0
    if initial is not None:
        ceiling = min(ceiling, 1.5 * initial)
    if loss > ceiling:
        raise Diverged(
            f"loss {loss:.3g} exceeded {ceiling:.3g} nats at step {step} (after warmup); lower the learning rate"
        )


def _autocast(device: str):
    if device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()  # fp32 on CPU and MPS


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def _batch(tokens, batch_size: int, seq_len: int, rng, device: str):
    x, y = data_mod.get_batch(tokens, batch_size, seq_len, rng)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if device.startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def _eval_batches(data, cfg: RunConfig, device: str) -> list:
    """The same validation windows for every run (seeded by EVAL_SEED, not the run seed)."""
    batches = data_mod.fixed_eval_batches(data.val, EVAL_SEQS, cfg.seq_len, cfg.eval_batches, seed=EVAL_SEED)
    return [(torch.as_tensor(x).to(device), torch.as_tensor(y).to(device)) for x, y in batches]


@torch.no_grad()
def _evaluate(model, batches, autocast) -> float:
    model.eval()
    total = 0.0
    for x, y in batches:
        with autocast:
            _, loss = model(x, y)
        total += float(loss)
    model.train()
    return total / len(batches)


def _report(progress, event: str, cfg: RunConfig, step: int, max_steps: int, **fields) -> None:
    if progress is not None:
        progress(
            {"event": event, "run_id": cfg.run_id, "label": cfg.label(), "step": step, "max_steps": max_steps, **fields}
        )


def _atomic_write(path, mode: str, write) -> None:
    """Write ``path`` whole or not at all: a temp file beside it, fsync, then os.replace."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, mode) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Checkpoint:
    """``<dir>/<run_id>.pt`` (model, optimizer, RNG states, step, running sums) and a JSON
    sidecar, both written to a temporary file, fsynced and renamed (atomic on POSIX)."""

    def __init__(self, folder, run_id: str):
        self.dir = Path(folder)
        self.path = self.dir / f"{run_id}.pt"
        self.sidecar = self.dir / f"{run_id}.json"

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, model, optimizer, rng: np.random.Generator, state: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        blob = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "state": state,
        }
        _atomic_write(self.path, "wb", lambda f: torch.save(blob, f))
        meta = {"step": state["step"], "wall_time": state["wall"], "saved": time.time()}
        _atomic_write(self.sidecar, "w", lambda f: json.dump(meta, f))

    def load(self, model, optimizer, rng: np.random.Generator) -> dict:
        blob = torch.load(self.path, map_location="cpu", weights_only=False)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        rng.bit_generator.state = blob["numpy_rng"]
        torch.set_rng_state(blob["torch_rng"])
        if blob.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(blob["cuda_rng"])
        return dict(blob["state"])

    def remove(self) -> None:
        for p in (self.path, self.sidecar):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
