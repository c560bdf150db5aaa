"""Aggregate throughput of K packed same-shape runs against the same K runs one after another.

For tiny byte-level GPTs of about 11K, 80K, 0.3M and 1M parameters, K runs (seeds 0..K-1 of one
shape, 16 x 128 tokens per step, as quick-cpu) are trained, in the same process and the same run:

- *packed*: one :func:`scalecalc.calibration.packed.time_packed_steps` step updates all K members
  (:class:`scalecalc.calibration.stacked.Stack`: batched matmuls over the members' weights,
  one AdamW update of all of them);
- *solo*: each member's own model through :func:`scalecalc.calibration.loop.train_steps` (the
  step ``calibrate run`` takes for one run), one after another.

It prints aggregate tokens/s of both and the ratio packed/solo (the issue's goal: >= 2x at
<= 1M parameters on a 2-core CPU). The two are timed in alternating rounds so that load from other
processes hits both alike; the median of the rounds is reported.

With ``--processes P`` it also times the other way to fill a CPU: the K solo runs split over P
worker processes of ``--threads`` threads each, side by side (what ``calibrate run --devices
cpu,cpu --threads 1`` does), and prints that aggregate against the single solo process.

Usage: python bench/pack_throughput.py [--threads 1] [--device cpu] [--k 4] [--rounds 3]
       [--steps 5] [--precision auto] [--processes 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics

import numpy as np
import torch

from scalecalc.calibration.loop import build_model, train_steps
from scalecalc.calibration.packed import time_packed_steps
from scalecalc.calibration.recipe import RunConfig
from scalecalc.flops import param_counts

# (d_model, n_layer): total parameters with the byte vocabulary and GELU MLPs (quick-cpu's model)
SHAPES = [(16, 1), (48, 2), (96, 3), (128, 4)]
SEQ_LEN, BATCH = 128, 16


def _configs(d_model: int, n_layer: int, k: int) -> list[RunConfig]:
    return [
        RunConfig(
            d_model=d_model,
            n_layer=n_layer,
            n_head=max(d_model // 16, 1),
            seq_len=SEQ_LEN,
            batch_size=BATCH,
            mlp="gelu",
            lr=3e-3,
            seed=s,
            budget_kind="steps",
            budget_amount=1000.0,
        )
        for s in range(k)
    ]


def _solo_seconds_per_step(configs, device: str, steps: int) -> float:
    """Seconds per step of all K runs trained one after another (plain loop)."""
    total = 0.0
    for cfg in configs:
        model = build_model(cfg, device)
        opt = model.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, device.split(":")[0])
        rng = np.random.default_rng(cfg.seed)
        tokens = rng.integers(0, cfg.vocab_size, size=BATCH * SEQ_LEN * 8, dtype=np.int64)
        kw = dict(batch_size=BATCH, seq_len=SEQ_LEN, rng=rng, device=device, grad_clip=1.0)
        train_steps(model, opt, tokens, steps=1, **kw)  # warm-up
        total += train_steps(model, opt, tokens, steps=steps, **kw)[1] / steps
    return total


def _solo_in_process(args: tuple) -> float:
    """One worker process: its share of the solo runs, one after another (seconds per step)."""
    configs, device, steps, threads = args
    torch.set_num_threads(threads)
    return _solo_seconds_per_step(configs, device, steps)


def _solo_processes_seconds_per_step(configs, device: str, steps: int, processes: int, threads: int) -> float:
    """Seconds per step of all K runs split over ``processes`` processes running side by side:
    the slowest process's share."""
    shares = [configs[i::processes] for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return max(pool.map(_solo_in_process, [(share, device, steps, threads) for share in shares]))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--k", type=int, default=4, help="runs per pack")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--precision", default="auto")
    p.add_argument("--processes", type=int, default=1, help="also time the solo runs split over P processes")
    p.add_argument("--shapes", default=None, help="d_model:n_layer,... (default: four sizes)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(x) for x in s.split(":")) for s in args.shapes.split(",")] if args.shapes else SHAPES
    tokens_per_step = args.k * BATCH * SEQ_LEN
    print(
        f"torch {torch.__version__}, device {args.device}, threads {args.threads}, "
        f"K={args.k} runs of {BATCH}x{SEQ_LEN} tokens, precision {args.precision}, "
        f"median of {args.rounds} rounds"
    )
    procs = args.processes > 1
    extra = f" {f'{args.processes} procs tok/s':>15} {'procs/solo':>11}" if procs else ""
    print(f"{'params':>10} {'solo tok/s':>12} {'packed tok/s':>13} {'packed/solo':>12}{extra}")
    rows = []
    for d_model, n_layer in shapes:
        configs = _configs(d_model, n_layer, args.k)
        n = param_counts(configs[0].arch())["total"]
        packed, solo, split = [], [], []
        for _ in range(args.rounds):  # alternate: background load hits all alike
            packed.append(
                tokens_per_step / time_packed_steps(configs, args.device, steps=args.steps, precision=args.precision)
            )
            solo.append(tokens_per_step / _solo_seconds_per_step(configs, args.device, args.steps))
            if procs:
                sec = _solo_processes_seconds_per_step(configs, args.device, args.steps, args.processes, args.threads)
                split.append(tokens_per_step / sec)
        row = {"params": n, "solo": statistics.median(solo), "packed": statistics.median(packed)}
        row["ratio"] = row["packed"] / row["solo"]
        line = f"{n:>10,.0f} {row['solo']:>12,.0f} {row['packed']:>13,.0f} {row['ratio']:>11.2f}x"
        if procs:
            row["processes"] = statistics.median(split)
            row["processes_ratio"] = row["processes"] / row["solo"]
            line += f" {row['processes']:>15,.0f} {row['processes_ratio']:>10.2f}x"
        rows.append(row)
        print(line, flush=True)
    return rows


if __name__ == "__main__":
    main()
