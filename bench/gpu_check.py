"""One prepared GPU check for calibration: throughput, MFU, packing and the CUDA-only paths.

On a machine with an NVIDIA GPU (about 5 minutes on an H100/H200), in bf16 autocast:

1. tokens/s and MFU of one run at about 1M, 10M and 50M non-embedding parameters (GPT-2 BPE
   vocabulary, 512-token context, as workstation.yaml) through
   :func:`scalecalc.calibration.loop.train_steps` (the step ``calibrate run`` takes), against a
   minimal plain-PyTorch loop over an identical model in the same process; MFU = 6N FLOPs per
   token x tokens/s over the device's dense bf16 peak (``scalecalc/hardware.yaml`` when the
   device is in the catalog, else a measured large bf16 matmul);
2. aggregate tokens/s of K packed runs of the 1M model (K = 1, 2, 4, 8, 16;
   :func:`scalecalc.calibration.packed.time_packed_steps`) against one run alone;
3. the CUDA-only paths as checks that pass or fail: fused AdamW (a packed group with
   ``fused=True`` equals the unfused one to bf16 rounding), bf16 autocast (finite losses, bf16
   matmuls), ``torch.compile`` (a compiled step's loss equals the eager one's to rounding), and
   the out-of-memory message (a real allocation far beyond the device's memory).

Goals (the calibration issue's): >= 40% MFU at >= 10M parameters, >= 1.0x the plain loop, and
packing >= 3x aggregate at 1M. ``--reduced`` runs every step on CPU with tiny models and a few
steps (the OOM is simulated there) so the script itself is tested without a GPU
(tests/test_calibration_gpu_check.py). Prints a table and writes ``--out`` JSON; exits 1 if a
check fails.

Usage: python bench/gpu_check.py [--device cuda] [--out gpu_check.json] [--seconds 3]
       python bench/gpu_check.py --reduced
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import numpy as np
import torch

from scalecalc.calibration import loop, packed, sweep
from scalecalc.calibration.recipe import RunConfig
from scalecalc.flops import param_counts

# (label, d_model, n_layer): non-embedding ~1M, ~10M, ~50M with head_dim 64 and SwiGLU
FULL = dict(
    vocab=50304,
    seq_len=512,
    batch=32,
    shapes=[("1M", 128, 4), ("10M", 384, 6), ("50M", 512, 16)],
    packs=(1, 2, 4, 8, 16),
)
REDUCED = dict(vocab=256, seq_len=32, batch=4, shapes=[("tiny", 32, 1), ("small", 64, 2)], packs=(1, 2))


def _config(d_model: int, n_layer: int, spec: dict, seed: int = 0) -> RunConfig:
    return RunConfig(
        d_model=d_model,
        n_layer=n_layer,
        n_head=max(d_model // 64, 1),
        vocab_size=spec["vocab"],
        seq_len=spec["seq_len"],
        batch_size=spec["batch"],
        lr=3e-3,
        seed=seed,
        budget_kind="steps",
        budget_amount=1000.0,
    )


def peak_flops(device: str) -> tuple[float, str]:
    """Dense bf16 peak FLOP/s of the device: the hardware catalog, else a measured matmul."""
    if device.startswith("cuda"):
        from scalecalc.hardware import load_catalog

        name = torch.cuda.get_device_name(device).lower()
        for key, gpu in load_catalog().items():
            if key in name.replace(" ", "").replace("-", "") and "bf16" in gpu.tflops:
                return gpu.tflops["bf16"] * 1e12, f"catalog {key}"
    n, dtype = (8192, torch.bfloat16) if device.startswith("cuda") else (512, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    loop._sync(device)
    t0 = time.perf_counter()
    for _ in range(5):
        a @ a
    loop._sync(device)
    return 5 * 2 * n**3 / (time.perf_counter() - t0), "measured matmul"


def plain_steps(model, opt, data: torch.Tensor, batch: int, seq_len: int, steps: int, device: str) -> float:
    """The loop a user would write by hand (nanoGPT train.py without the extras), in bf16."""
    loop._sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        ix = torch.randint(len(data) - seq_len - 1, (batch,))
        x = torch.stack([data[i : i + seq_len] for i in ix]).to(device)
        y = torch.stack([data[i + 1 : i + 1 + seq_len] for i in ix]).to(device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    loop._sync(device)
    return time.perf_counter() - t0


def throughput(cfg: RunConfig, device: str, seconds: float, peak: float) -> dict:
    """tokens/s and MFU of our step and of the plain loop, same model, same process."""
    ours = loop.build_model(cfg, device)
    plain = copy.deepcopy(ours)
    kind = device.split(":")[0]
    opt_o = ours.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, kind)
    opt_p = plain.configure_optimizer(cfg.lr, (cfg.beta1, cfg.beta2), cfg.weight_decay, kind)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, cfg.vocab_size, size=cfg.batch_size * cfg.seq_len * 16, dtype=np.int64)
    data_t = torch.from_numpy(tokens)
    kw = dict(batch_size=cfg.batch_size, seq_len=cfg.seq_len, rng=rng, device=device)
    _, dt = loop.train_steps(ours, opt_o, tokens, steps=2, **kw)
    plain_steps(plain, opt_p, data_t, cfg.batch_size, cfg.seq_len, 2, device)
    steps = max(2, int(seconds / max(dt / 2, 1e-6)))
    _, t_ours = loop.train_steps(ours, opt_o, tokens, steps=steps, **kw)
    t_plain = plain_steps(plain, opt_p, data_t, cfg.batch_size, cfg.seq_len, steps, device)
    tps_o = steps * cfg.batch_size * cfg.seq_len / t_ours
    tps_p = steps * cfg.batch_size * cfg.seq_len / t_plain
    return {
        "params_total": float(param_counts(cfg.arch())["total"]),
        "params_non_embedding": float(param_counts(cfg.arch())["non_embedding"]),
        "tokens_per_s": tps_o,
        "plain_tokens_per_s": tps_p,
        "vs_plain": tps_o / tps_p,
        "mfu": ours.estimate_mfu(tps_o, peak, "6nd"),
        "plain_mfu": plain.estimate_mfu(tps_p, peak, "6nd"),
        "steps": steps,
    }


def packing(cfg: RunConfig, device: str, ks, steps: int) -> dict:
    """Aggregate tokens/s of K packed runs (seeds 0..K-1) and the ratio to K = 1."""
    out = {}
    for k in ks:
        configs = [RunConfig(**{**cfg.to_dict(), "seed": s}) for s in range(k)]
        try:
            sec = packed.time_packed_steps(configs, device, steps=steps, precision="bf16")
        except Exception as exc:  # an OOM at large K is a result, not a crash of the check
            if not packed._is_oom(exc):
                raise
            out[k] = None
            break
        out[k] = k * cfg.batch_size * cfg.seq_len / sec
    base = out.get(1)
    return {str(k): {"tokens_per_s": v, "vs_one": v / base if v and base else None} for k, v in out.items()}


def checks(cfg: RunConfig, device: str, reduced: bool, compile: bool = True) -> dict:
    """The CUDA-only paths; each returns (passed, detail)."""
    from scalecalc.calibration.data import TokenData

    results = {}
    rng = np.random.default_rng(0)
    tokens = rng.integers(
        0, cfg.vocab_size, size=max(cfg.batch_size, loop.EVAL_SEQS) * cfg.seq_len * 64, dtype=np.int64
    )
    data = TokenData(tokens, tokens, cfg.vocab_size, "random", "", len(tokens), len(tokens), ())
    run = RunConfig(
        **{**cfg.to_dict(), "budget_amount": 20.0, "eval_batches": 1, "eval_points": 3, "fixed_warmup_steps": 5}
    )
    pair = [run, RunConfig(**{**run.to_dict(), "seed": 1})]
    # fused AdamW vs the foreach implementation, both in bf16 autocast
    fused = packed.train_group(pair, data, device=device, precision="bf16", fused=True)
    plain = packed.train_group(pair, data, device=device, precision="bf16", fused=False)
    diff = max(abs(a.final_loss - b.final_loss) for a, b in zip(fused, plain))
    results["fused_adamw"] = (diff < 0.05, f"final losses differ by {diff:.2e} nats")
    # bf16 autocast: finite losses and matmuls really in bf16
    with packed.autocast_for(device, "bf16"):
        dtype = (torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)).dtype
    finite = all(r.final_loss is not None and np.isfinite(r.final_loss) for r in fused)
    results["bf16_autocast"] = (finite and dtype == torch.bfloat16, f"matmul dtype {dtype}, finite losses {finite}")
    # torch.compile: the compiled model's loss equals the eager one's to rounding
    model = loop.build_model(run, device)
    x = torch.as_tensor(tokens[: cfg.batch_size * cfg.seq_len].reshape(cfg.batch_size, -1), device=device)
    try:
        if not compile:
            raise RuntimeError("skipped (--no-compile)")
        with packed.autocast_for(device, "bf16"):
            eager = float(model(x, x)[1].detach())
            compiled = float(torch.compile(model)(x, x)[1].detach())
        results["compile"] = (abs(eager - compiled) < 0.02, f"eager {eager:.4f}, compiled {compiled:.4f}")
    except Exception as exc:  # no compiler toolchain: a failed check with the reason
        results["compile"] = (False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    # out of memory: a real allocation beyond the device (simulated on CPU)
    try:
        if reduced or not device.startswith("cuda"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        total = torch.cuda.get_device_properties(device).total_memory
        torch.empty(int(total * 2), dtype=torch.uint8, device=device)
        results["oom_message"] = (False, "allocating twice the device memory succeeded")
    except Exception as exc:
        msg = sweep._oom_message(run, device)
        results["oom_message"] = (packed._is_oom(exc) and "smaller batch_size" in msg, msg)
        sweep._free(device)
    return {k: {"passed": bool(v[0]), "detail": v[1]} for k, v in results.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--reduced", action="store_true", help="tiny models on CPU (tests)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile check (it takes ~1-2 min on a busy CPU)"
    )
    args = p.parse_args(argv)
    spec = REDUCED if args.reduced else FULL
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.reduced else "cpu")
    seconds = min(args.seconds, 0.3) if args.reduced else args.seconds
    torch.manual_seed(0)
    if args.reduced:
        torch.set_num_threads(1)  # steadiest on a shared machine
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    peak, peak_source = peak_flops(device)
    report = {
        "device": name,
        "torch": torch.__version__,
        "peak_flops": peak,
        "peak_source": peak_source,
        "reduced": args.reduced,
        "runs": {},
        "packing": {},
    }
    print(f"{name}, torch {torch.__version__}, peak {peak / 1e12:.1f} TFLOP/s ({peak_source})")
    print(f"{'model':>6} {'N_non_emb':>10} {'tok/s':>12} {'MFU':>6} {'plain tok/s':>12} {'vs plain':>9}")
    for label, d_model, n_layer in spec["shapes"]:
        r = throughput(_config(d_model, n_layer, spec), device, seconds, peak)
        report["runs"][label] = r
        print(
            f"{label:>6} {r['params_non_embedding']:>10,.0f} {r['tokens_per_s']:>12,.0f} "
            f"{100 * r['mfu']:>5.1f}% {r['plain_tokens_per_s']:>12,.0f} "
            f"{r['vs_plain']:>8.2f}x",
            flush=True,
        )
    first = _config(spec["shapes"][0][1], spec["shapes"][0][2], spec)
    report["packing"] = packing(first, device, spec["packs"], steps=2 if args.reduced else 5)
    for k, v in report["packing"].items():
        agg = "OOM" if v["tokens_per_s"] is None else f"{v['tokens_per_s']:,.0f} tok/s"
        ratio = f" ({v['vs_one']:.2f}x one run)" if v["vs_one"] else ""
        print(f"packed K={k} at {spec['shapes'][0][0]}: {agg}{ratio}", flush=True)
    report["checks"] = checks(first, device, args.reduced, compile=not args.no_compile)
    for k, v in report["checks"].items():
        print(f"{'PASS' if v['passed'] else 'FAIL'} {k}: {v['detail']}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    failed = [k for k, v in report["checks"].items() if not v["passed"] and not (k == "compile" and args.no_compile)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
