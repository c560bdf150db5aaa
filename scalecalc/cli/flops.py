"""``scalecalc flops``: parameters and training FLOPs of one architecture under every convention."""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from scalecalc.cli.base import app
from scalecalc.cli.common import (
    Column,
    FormatOption,
    JsonOption,
    OutputFormat,
    emit,
    resolve_format,
)


class MLP(str, Enum):
    gelu = "gelu"
    swiglu = "swiglu"


class Pos(str, Enum):
    rope = "rope"
    learned = "learned"
    relative = "relative"


class Norm(str, Enum):
    layernorm = "layernorm"
    rmsnorm = "rmsnorm"


_SHAPE = "Shape (each overrides --hf-config)"


def _shape(flag: str, help: str, **kw):
    return typer.Option(flag, help=help, rich_help_panel=_SHAPE, **kw)


@app.command("flops")
def flops(
    n_layer: Annotated[Optional[int], _shape("--n-layer", "Transformer blocks.")] = None,
    d_model: Annotated[Optional[int], _shape("--d-model", "Residual width.")] = None,
    vocab: Annotated[Optional[int], _shape("--vocab", "Vocabulary size (default 32000).")] = None,
    seq_len: Annotated[Optional[int], _shape("--seq-len", "Training context in tokens (default 2048).")] = None,
    ffn: Annotated[
        Optional[int],
        _shape("--ffn", "MLP hidden size per expert (default 4·d for gelu, 256·ceil(8d/3/256) for swiglu)."),
    ] = None,
    heads: Annotated[
        Optional[int], _shape("--heads", "Attention heads (default d_model/64, or 1 if 64 does not divide d_model).")
    ] = None,
    kv_heads: Annotated[Optional[int], _shape("--kv-heads", "Key/value heads, GQA (default --heads).")] = None,
    head_dim: Annotated[Optional[int], _shape("--head-dim", "Per-head size (default d_model/heads).")] = None,
    mlp: Annotated[Optional[MLP], _shape("--mlp", "MLP type (default gelu).", case_sensitive=False)] = None,
    tied: Annotated[
        Optional[bool], _shape("--tied/--untied", "Unembedding tied to the input embedding (default untied).")
    ] = None,
    experts: Annotated[Optional[int], _shape("--experts", "MoE experts per layer (default 1).")] = None,
    top_k: Annotated[Optional[int], _shape("--top-k", "Experts active per token (default 1).")] = None,
    pos: Annotated[Optional[Pos], _shape("--pos", "Position encoding (default rope).", case_sensitive=False)] = None,
    norm: Annotated[Optional[Norm], _shape("--norm", "Norm layers (default layernorm).", case_sensitive=False)] = None,
    bias: Annotated[Optional[bool], _shape("--bias/--no-bias", "Biases on linear layers (default no-bias).")] = None,
    hf_config: Annotated[
        Optional[Path],
        typer.Option(
            "--hf-config", exists=True, dir_okay=False, help="Read the shape from a Hugging Face config.json."
        ),
    ] = None,
    tokens: Annotated[
        Optional[str],
        typer.Option(
            "--tokens",
            "-d",
            help="Training tokens D: also print total training FLOPs (per token x D) "
            "under every convention, e.g. 1.4T.",
        ),
    ] = None,
    recompute: Annotated[
        bool,
        typer.Option(
            "--recompute",
            help="Full activation recomputation: one extra forward pass per step, so "
            "training costs 4 forward passes instead of 3 (the EleutherAI calculator's convention); "
            "hardware FLOPs, not model FLOPs.",
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
    as_json: JsonOption = False,
) -> None:
    """Parameters by group and training FLOPs per token under every FLOP convention.

    Shows the ratio of each convention to 6·N (N = all parameters, active experts only), the
    inference cost 2·N per token, Kaplan et al. 2020 Table 1 and Chinchilla Appendix F itemised.

    Example:

        scalecalc flops --n-layer 32 --d-model 4096 --heads 32 --kv-heads 8 --mlp swiglu --ffn 14336

        scalecalc flops --n-layer 12 --d-model 768 --vocab 50257 --seq-len 1024 --tied --bias

        scalecalc flops --hf-config ./config.json --seq-len 4096 --json
    """
    from scalecalc import flops as core  # numpy only; keeps `scalecalc --help` light
    from scalecalc.errors import UsageError
    from scalecalc.validate import options

    options.check(
        **{
            "--n-layer": n_layer,
            "--d-model": d_model,
            "--vocab": vocab,
            "--seq-len": seq_len,
            "--ffn": ffn,
            "--heads": heads,
            "--kv-heads": kv_heads,
            "--head-dim": head_dim,
            "--experts": experts,
            "--top-k": top_k,
        }
    )
    given = {
        "n_layer": n_layer,
        "d_model": d_model,
        "vocab": vocab,
        "seq_len": seq_len,
        "d_ff": ffn,
        "n_heads": heads,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "tied": tied,
        "experts": experts,
        "top_k": top_k,
        "bias": bias,
        "mlp": mlp.value if mlp else None,
        "pos": pos.value if pos else None,
        "norm": norm.value if norm else None,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if hf_config is not None:
        base = core.from_hf_config(hf_config).to_dict()
        from scalecalc.cli.common import print_warnings

        print_warnings(core.hf_config_notes(hf_config))
        # sizes derived from the width or head count follow an override of it
        if "d_model" in given:
            base.update(head_dim=None, d_ff=None)
        if "n_heads" in given:
            base.update(head_dim=None, kv_heads=None)
        arch = core.Arch(**{**base, **given})
    else:
        for key, option in (("n_layer", "--n-layer"), ("d_model", "--d-model")):
            if key not in given:
                raise UsageError(f"{option} is required (or give --hf-config PATH)")
        arch = core.Arch(**given)
    report = core.describe(arch)
    if recompute:  # training = forward + backward (2x forward) + one more forward: x 4/3
        report = dataclasses.replace(
            report,
            flops_per_token={k: v * RECOMPUTE_FACTOR for k, v in report.flops_per_token.items()},
            ratio_to_6n={k: v * RECOMPUTE_FACTOR for k, v in report.ratio_to_6n.items()},
        )
    from scalecalc.quantities import parse_number

    d = parse_number(tokens, "--tokens") if tokens else None
    _render(report, resolve_format(fmt, as_json), tokens=d, recompute=recompute)


RECOMPUTE_FACTOR = 4.0 / 3.0  # (1 forward + 2 backward + 1 recomputed forward) / 3 passes


def _render(report, fmt: OutputFormat, *, tokens: float | None = None, recompute: bool = False) -> None:
    from scalecalc.flops import CONVENTIONS
    from scalecalc.quantities import format_count, format_sci

    if fmt is OutputFormat.json:
        doc = {**report.to_dict(), "recompute": recompute}
        if tokens is not None:
            doc.update(tokens=float(tokens), training_flops={k: v * tokens for k, v in report.flops_per_token.items()})
        emit([doc], [], fmt, single=True)
        return
    rows = [
        {
            "convention": name,
            "title": c.title,
            "n_kind": c.n_kind,
            "flops_per_token": report.flops_per_token[name],
            "ratio_to_6n": report.ratio_to_6n[name],
            **({"training_flops": report.flops_per_token[name] * tokens} if tokens is not None else {}),
            "source": c.source + (" (derived)" if c.derived else ""),
        }
        for name, c in CONVENTIONS.items()
    ]
    if fmt is OutputFormat.csv:
        emit(rows, [], fmt)
        return
    a = report.arch
    shape = (
        f"{a['n_layer']} layers × d_model {a['d_model']}, {a['n_heads']} heads "
        f"({a['kv_heads']} KV, head_dim {a['head_dim']}), {a['mlp']} d_ff {a['d_ff']}, "
        f"vocab {a['vocab']}, seq_len {a['seq_len']}"
        + (f", {a['experts']} experts top-{a['top_k']}" if a["experts"] > 1 else "")
    )
    groups = ("embedding", "attention", "mlp", "norms", "head", "non_embedding", "total", "active")
    emit(
        [{"group": g, "params": report.params[g], "exact": f"{report.params[g]:,}"} for g in groups],
        [Column("Group", "group", justify="left"), Column("Params", "params", format_count), Column("Exact", "exact")],
        fmt,
        title=f"Parameters: {shape}",
    )
    emit(
        rows
        + [
            {
                "convention": "inference",
                "title": "2·N per generated token (forward only)",
                "flops_per_token": report.inference_flops_per_token,
                "ratio_to_6n": report.inference_flops_per_token / report.flops_per_token["6nd"],
                "source": "Kaplan et al. 2020 §2.1",
            }
        ],
        [
            Column("Convention", "convention", justify="left"),
            Column("Formula", "title", justify="left"),
            Column("FLOPs/token", "flops_per_token", format_sci),
            Column("÷ 6N", "ratio_to_6n", lambda v: f"{v:.3f}"),
            *(
                [Column(f"Total at {format_count(tokens)} tokens", "training_flops", format_sci)]
                if tokens is not None
                else []
            ),
            Column("Source", "source", justify="left"),
        ],
        fmt,
        title="Training FLOPs per token (N = all parameters, active experts)"
        + ("; with activation recomputation (4 forward passes, not 3: x 4/3)" if recompute else ""),
    )
    emit(
        [{**i, "training": 3 * i["forward_flops"]} for i in report.items],
        [
            Column("Operation", "name", justify="left"),
            Column("Params", "params", format_count),
            Column("Forward FLOPs/token", "forward_flops", format_sci),
            Column("×3 (training)", "training", format_sci),
        ],
        fmt,
        title="Kaplan et al. 2020 Table 1 (biases and norms left out)",
    )
    full, a4 = report.appendix_f["full"], report.appendix_f["a4"]
    sci0 = lambda v: format_sci(v) if v else "0"  # noqa: E731  (excluded terms print as 0)
    seq = a["seq_len"]
    emit(
        [
            {"term": k, "full": full[k] / seq, "a4": a4[k] / seq}
            for k in (
                "embeddings",
                "qkv",
                "att_logits",
                "softmax",
                "att_reduce",
                "att_project",
                "dense",
                "logits",
                "forward",
                "backward",
                "total",
            )
        ],
        [
            Column("Term", "term", justify="left"),
            Column("App. F as printed", "full", sci0),
            Column("Table A4 variant", "a4", sci0),
        ],
        fmt,
        title="Chinchilla Appendix F, FLOPs per token (per sequence ÷ seq_len)",
    )
