"""Where a packed step spends its time, against the same runs alone: per-op ms per member-step.

Profiles (``torch.profiler``) a few steps of K packed same-shape runs
(:func:`scalecalc.calibration.packed.time_packed_steps`'s step) and of the same K runs one
after another (:func:`scalecalc.calibration.loop.train_steps`), and prints the heaviest ops
with their self time per member and optimizer step in both. Equal times mean the step is
compute-bound and packing cannot speed it up on this device; a packed time far below the solo
one means per-op overhead dominated (as on a GPU with tiny models).

Usage: python bench/pack_profile.py [--shape 16:1] [--k 4] [--threads 1] [--steps 3] [--top 12]
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch
from pack_throughput import BATCH, SEQ_LEN, _configs
from torch.profiler import profile

from scalecalc.calibration import loop, packed
from scalecalc.calibration.data import TokenData


def _self_ms(prof, steps: int, members: int) -> dict[str, float]:
    """Op name -> self CPU ms per member and step."""
    return {e.key: e.self_cpu_time_total / 1e3 / steps / members for e in prof.key_averages()}


def profile_packed(configs, steps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, configs[0].vocab_size, size=BATCH * SEQ_LEN * 8, dtype=np.int64)
    data = TokenData(tokens, tokens, configs[0].vocab_size, "random", "", len(tokens), len(tokens), ())
    members = [packed._member(c, data, None, None, "cpu", None) for c in configs]
    stack = packed._stack(members, "cpu", None)
    step = lambda: packed._packed_step(stack, members, data, configs[0], "cpu", contextlib.nullcontext())  # noqa: E731
    step()  # warm-up
    with profile() as prof:
        for _ in range(steps):
            step()
    return _self_ms(prof, steps, len(configs))


def profile_solo(configs, steps: int) -> dict[str, float]:
    total: dict[str, float] = {}
    for cfg in configs:
        model = loop.build_model(cfg, "cpu")
        opt = model.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, "cpu")
        rng = np.random.default_rng(cfg.seed)
        tokens = rng.integers(0, cfg.vocab_size, size=BATCH * SEQ_LEN * 8, dtype=np.int64)
        kw = dict(batch_size=BATCH, seq_len=SEQ_LEN, rng=rng, device="cpu", grad_clip=cfg.grad_clip)
        loop.train_steps(model, opt, tokens, steps=1, **kw)  # warm-up
        with profile() as prof:
            loop.train_steps(model, opt, tokens, steps=steps, **kw)
        for name, ms in _self_ms(prof, steps, len(configs)).items():
            total[name] = total.get(name, 0.0) + ms
    return total


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="16:1", help="d_model:n_layer (default 16:1, about 11K parameters)")
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    d_model, n_layer = (int(x) for x in args.shape.split(":"))
    configs = _configs(d_model, n_layer, args.k)
    pk, solo = profile_packed(configs, args.steps), profile_solo(configs, args.steps)
    print(f"torch {torch.__version__}, cpu, threads {args.threads}, K={args.k}, d_model {d_model}, layers {n_layer}")
    print(f"{'op':<48} {'packed ms':>10} {'solo ms':>9}   (self time per member-step)")
    for name in sorted(set(pk) | set(solo), key=lambda n: -max(pk.get(n, 0.0), solo.get(n, 0.0)))[: args.top]:
        print(f"{name[:48]:<48} {pk.get(name, 0.0):>10.3f} {solo.get(name, 0.0):>9.3f}")
    print(f"{'total':<48} {sum(pk.values()):>10.3f} {sum(solo.values()):>9.3f}")


if __name__ == "__main__":
    main()
