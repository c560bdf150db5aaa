"""Training throughput and MFU of the calibration step, against a minimal plain-PyTorch loop.

For tiny GPTs of about 0.1M, 1M and 5M parameters (byte vocabulary, SwiGLU/RoPE defaults) it
prints, from one run:

- tokens/s of ``scalecalc.calibration.loop.train_steps`` (the exact step ``calibrate run`` takes: numpy
  random windows from the token memmap, forward, backward, grad clip 1.0, AdamW) — or, if that
  module is missing, of a local copy of the step, and says so;
- tokens/s of a minimal plain-PyTorch loop over an identical copy of the same model in the same
  process (batches by ``torch.randint`` indexing of an in-memory tensor, same clip and AdamW);
- the ratio ours/plain (target >= 1.0: the sweep adds no overhead to the step);
- MFU = achieved training FLOP/s over a peak measured in the same run with a large ``torch.mm``
  (fp32 on CPU, bf16 on CUDA). Achieved FLOP/s = training FLOPs per token from
  ``scalecalc.flops`` ("6nd": 6N over all parameters; and "attention": Porian's N_eff, which adds
  the causal attention term) x tokens/s (PaLM App. B / nanoGPT ``estimate_mfu`` style).

The two loops are timed in alternating rounds so that load from other processes hits both alike;
the median of the rounds is reported. Runs in about two minutes on a 2-core CPU.

Usage: python bench/train_throughput.py [--threads 1] [--device cpu] [--rounds 4] [--seconds 1.5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch

from scalecalc.calibration.data import load_corpus
from scalecalc.calibration.model import GPT, GPTConfig

try:
    from scalecalc.calibration.loop import train_steps

    STEP_SOURCE = "scalecalc.calibration.loop.train_steps"
except ImportError:  # the loop is written separately; time an equivalent local step instead
    train_steps = None
    STEP_SOURCE = "local step (scalecalc.calibration.loop not importable)"

# (name, n_layer, d_model, n_head): total parameters with the byte vocabulary ~0.12M, ~1.1M, ~5.2M
SHAPES = [("0.1M", 2, 48, 2), ("1M", 4, 128, 4), ("5M", 6, 256, 4)]
SEQ_LEN, BATCH = 256, 16  # 4,096 tokens per step


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _autocast(device: str):
    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)  # fp32 on CPU, as the sweep


def matmul_peak(device: str, n: int = 2048, reps: int = 5) -> float:
    """Best FLOP/s of an n x n x n matmul (2n^3 FLOPs), fp32 on CPU, bf16 on CUDA."""
    if device.startswith("cuda"):
        n, dtype = 8192, torch.bfloat16
    else:
        dtype = torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def local_steps(model, opt, tokens, *, batch_size, seq_len, steps, rng, device, grad_clip=1.0, lr=None):
    """Stand-in for loop.train_steps when it is not importable: the same step, timed the same way."""
    from scalecalc.calibration.data import get_batch

    _sync(device)
    t0 = time.perf_counter()
    losses = []
    for _ in range(steps):
        x, y = (t.to(device) for t in get_batch(tokens, batch_size, seq_len, rng))
        with _autocast(device):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
    _sync(device)
    return [float(v) for v in losses], time.perf_counter() - t0


def plain_steps(model, opt, data: torch.Tensor, steps: int, device: str) -> float:
    """The minimal loop a user would write by hand (nanoGPT train.py without the extras)."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        ix = torch.randint(len(data) - SEQ_LEN - 1, (BATCH,))
        x = torch.stack([data[i : i + SEQ_LEN] for i in ix]).to(device)
        y = torch.stack([data[i + 1 : i + 1 + SEQ_LEN] for i in ix]).to(device)
        with _autocast(device):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - t0


def bench_shape(name, n_layer, d_model, n_head, tokens, device, rounds, seconds):
    torch.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=256, seq_len=SEQ_LEN, n_layer=n_layer, n_head=n_head, d_model=d_model)).to(device)
    plain = copy.deepcopy(ours)
    opt_ours = ours.configure_optimizer(3e-3, (0.9, 0.99), 0.1, device.split(":")[0])
    opt_plain = plain.configure_optimizer(3e-3, (0.9, 0.99), 0.1, device.split(":")[0])
    step_fn = train_steps or local_steps
    rng = np.random.default_rng(0)
    data_t = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    # warm-up (allocator, optimizer state, lazy init), then one timed step to size the rounds
    plain_steps(plain, opt_plain, data_t, 1, device)
    for _ in range(2):
        _, dt = step_fn(ours, opt_ours, tokens, batch_size=BATCH, seq_len=SEQ_LEN, steps=1, rng=rng, device=device)
    steps = max(1, round(seconds / dt))
    ours_tps, plain_tps = [], []
    for _ in range(rounds):
        _, t = step_fn(ours, opt_ours, tokens, batch_size=BATCH, seq_len=SEQ_LEN, steps=steps, rng=rng, device=device)
        ours_tps.append(steps * BATCH * SEQ_LEN / t)
        plain_tps.append(steps * BATCH * SEQ_LEN / plain_steps(plain, opt_plain, data_t, steps, device))
    return ours, statistics.median(ours_tps), statistics.median(plain_tps), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared machine)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=4, help="alternating timing rounds per model")
    parser.add_argument("--seconds", type=float, default=1.5, help="target seconds per timing round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = load_corpus(max_bytes=2_000_000)  # 2 MB of the stdlib: enough distinct windows
    peak = matmul_peak(args.device)
    print(
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s); "
        f"step: {STEP_SOURCE}; batch {BATCH} x seq_len {SEQ_LEN}"
    )
    print(f"measured matmul peak: {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'model':>6} {'N total':>10} {'steps/round':>11} {'ours tok/s':>11} {'plain tok/s':>11} "
        f"{'ours/plain':>10} {'MFU 6nd':>8} {'MFU attn':>8}"
    )
    for name, n_layer, d_model, n_head in SHAPES:
        model, ours_tps, plain_tps, steps = bench_shape(
            name, n_layer, d_model, n_head, data.train, args.device, args.rounds, args.seconds
        )
        n_total = model.param_counts()["total"]
        mfu = model.estimate_mfu(ours_tps, peak, "6nd")
        mfu_attn = model.estimate_mfu(ours_tps, peak, "attention")
        print(
            f"{name:>6} {n_total:>10,} {steps:>11} {ours_tps:>11,.0f} {plain_tps:>11,.0f} "
            f"{ours_tps / plain_tps:>10.2f} {mfu:>8.1%} {mfu_attn:>8.1%}"
        )
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
