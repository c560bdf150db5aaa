"""FLOP-counting conventions, parameter counts and shape rules.

Scaling laws disagree partly because they count N (parameters) and C (training FLOPs) differently
(docs/reference.md §9). This module makes every convention explicit and computable:

* :class:`Arch` is one concrete decoder-only transformer; :func:`param_counts` splits its
  parameters by group, :func:`itemize` reproduces Kaplan et al. 2020 Table 1,
  :func:`chinchilla_appendix_f` Hoffmann et al. 2022 Appendix F, and
  :func:`training_flops_per_token` evaluates every convention in :data:`CONVENTIONS` on it.
* :class:`ShapeRule` + :func:`width_counts` / :func:`width_for_params` / :func:`flops_per_token`
  are the *continuous*, vectorised shape model the planner uses on arrays of budgets
  (n_layer = d_model / aspect_ratio, N_non_embedding = 12·n_layer·d_model², Kaplan eq 2.1).
* :func:`design_shape` turns a parameter count into a *discrete* buildable :class:`Arch` under a
  named rule ("aspect", "chinchilla", "porian", "llama"); :func:`from_hf_config` reads a Hugging
  Face ``config.json``.

Conventions on parameter kinds (``n_kind``):

``total``          every unique parameter (Chinchilla's N).
``non_embedding``  transformer blocks + final norm (Kaplan's N, eq 2.1); no embedding, no head.
``head``           Porian et al. 2024 "standard" N: non_embedding + vocab·d_model (the
                   unembedding is counted, the input-embedding lookup is not).

Only numpy and the standard library are imported: this module is on the path of ``scalecalc plan``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scalecalc.errors import UnknownName, UsageError

__all__ = [
    "Arch",
    "FlopItem",
    "Convention",
    "CONVENTIONS",
    "N_KINDS",
    "SHAPE_RULES",
    "ShapeRule",
    "LLAMA3_FACTOR",
    "CHINCHILLA_A9",
    "PORIAN_SHAPES",
    "get_convention",
    "param_counts",
    "n_params",
    "itemize",
    "chinchilla_appendix_f",
    "training_flops_per_token",
    "width_counts",
    "flops_per_token",
    "width_for_params",
    "shape_for_params",
    "convert_params",
    "design_shape",
    "search_shape",
    "shape_deviation",
    "from_hf_config",
    "swiglu_ffn",
    "FlopsReport",
    "describe",
]

MLPS = ("gelu", "swiglu")
POSITIONS = ("rope", "learned", "relative")
NORMS = ("layernorm", "rmsnorm")
N_KINDS = ("total", "non_embedding", "head")

# Llama 3 §3.2.1: 3.8e25 FLOPs -> 402B params on 16.55T tokens, so C/(N·D) = 5.7116; the paper never
# states this constant, it is back-solved (docs/reference.md §4).
LLAMA3_FACTOR = 5.711

# Option names used in messages, so a bad field is reported as the flag the user typed.
_OPTION = {
    "n_layer": "--n-layer",
    "d_model": "--d-model",
    "n_heads": "--heads",
    "kv_heads": "--kv-heads",
    "head_dim": "--head-dim",
    "d_ff": "--ffn",
    "vocab": "--vocab",
    "seq_len": "--seq-len",
    "experts": "--experts",
    "top_k": "--top-k",
}


def swiglu_ffn(d_model: int, multiplier: float = 1.0, multiple_of: int = 256) -> int:
    """SwiGLU hidden size: ``multiple_of·ceil(floor(multiplier·8d/3)/multiple_of)``.

    With multiplier 1 and 256 this is OpenLM's rule used by Porian et al. 2024 (docs/reference.md §5.3)
    and Llama 2's (d 4096 -> 11008): 8d/3 keeps the SwiGLU block at 3·d·d_ff ≈ 8d² like GELU's 4d.
    """
    hidden = int(multiplier * (8 * d_model // 3))
    return multiple_of * -(-hidden // multiple_of)


# --------------------------------------------------------------------------------------------
# Architecture and exact counts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    """One decoder-only transformer.

    Attributes
    ----------
    n_layer, d_model : int
        Depth and residual width.
    n_heads : int
        Query heads. ``kv_heads`` (default ``n_heads``) < n_heads is grouped-query attention.
    head_dim : int
        Per-head size, default ``d_model // n_heads``; d_attn = n_heads·head_dim.
    d_ff : int
        MLP hidden size (per expert); default 4·d_model (GELU) or :func:`swiglu_ffn` (SwiGLU).
    vocab, seq_len : int
        Vocabulary size and training context length in tokens.
    mlp : {"gelu", "swiglu"}
        Two matrices (d·d_ff each) or three (gate, up, down).
    tied : bool
        Unembedding shares the input-embedding matrix (then the head adds no parameters).
    experts, top_k : int
        Mixture-of-experts MLP: ``experts`` copies, ``top_k`` active per token, plus a d×experts
        router when experts > 1.
    pos : {"rope", "learned", "relative"}
        ``learned`` adds seq_len·d_model embedding parameters; ``relative`` adds the
        Transformer-XL terms d² + 2d per layer used by Gopher/Chinchilla (nanoGPT
        scaling_laws.ipynb ``chinchilla_params``); rope adds none.
    norm : {"layernorm", "rmsnorm"}
        Two per block plus a final one; layernorm has a bias vector only when ``bias``.
    bias : bool
        Biases on every linear layer except the unembedding.
    """

    n_layer: int
    d_model: int
    n_heads: int = 0  # 0: one head per 64 channels when that divides d_model, else 1
    kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    vocab: int = 32000
    seq_len: int = 2048
    mlp: str = "gelu"
    tied: bool = False
    experts: int = 1
    top_k: int = 1
    pos: str = "rope"
    norm: str = "layernorm"
    bias: bool = False

    def __post_init__(self):
        for name in ("n_layer", "d_model"):
            _check_int(self, name, minimum=1)
        if self.n_heads in (0, None):
            d = self.d_model
            object.__setattr__(self, "n_heads", d // 64 if d % 64 == 0 else 1)
        _check_int(self, "n_heads", minimum=1)
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise UsageError(
                    f"--heads: {self.n_heads} does not divide --d-model {self.d_model}; "
                    "choose heads dividing d_model (or give --head-dim)"
                )
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        if self.kv_heads is None:
            object.__setattr__(self, "kv_heads", self.n_heads)
        for name in ("head_dim", "kv_heads", "vocab", "seq_len", "experts", "top_k"):
            _check_int(self, name, minimum=1)
        if self.n_heads % self.kv_heads:
            raise UsageError(
                f"--kv-heads: {self.kv_heads} does not divide --heads {self.n_heads}; choose kv_heads dividing heads"
            )
        if self.top_k > self.experts:
            raise UsageError(f"--top-k: {self.top_k} is more than --experts {self.experts}; choose top_k <= experts")
        for value, valid, kind, option in (
            (self.mlp, MLPS, "MLP type", "--mlp"),
            (self.pos, POSITIONS, "position encoding", "--pos"),
            (self.norm, NORMS, "norm", "--norm"),
        ):
            if value not in valid:
                raise UnknownName(kind, str(value), valid, option)
        if self.d_ff is None:
            ff = 4 * self.d_model if self.mlp == "gelu" else swiglu_ffn(self.d_model)
            object.__setattr__(self, "d_ff", ff)
        _check_int(self, "d_ff", minimum=1)
        object.__setattr__(self, "tied", bool(self.tied))
        object.__setattr__(self, "bias", bool(self.bias))

    @property
    def d_attn(self) -> int:
        """Query/output width n_heads·head_dim (Kaplan's d_attn)."""
        return self.n_heads * self.head_dim

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_int(arch: Arch, name: str, minimum: int) -> None:
    value = getattr(arch, name)
    option = _OPTION.get(name, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
            object.__setattr__(arch, name, value)
        else:
            raise UsageError(f"{option} must be a whole number (got {value!r})")
    object.__setattr__(arch, name, int(value))
    if value < minimum:
        raise UsageError(f"{option} must be at least {minimum} (got {value})")


def _mlp_expert(a: Arch) -> int:
    """Parameters of one MLP expert in one layer."""
    if a.mlp == "gelu":
        return 2 * a.d_model * a.d_ff + (a.d_ff + a.d_model if a.bias else 0)
    return 3 * a.d_model * a.d_ff + (2 * a.d_ff + a.d_model if a.bias else 0)


def _groups(a: Arch, experts: int) -> dict[str, int]:
    """Parameter groups with ``experts`` MLP copies per layer (all of them, or the active top_k)."""
    d, L = a.d_model, a.n_layer
    kv = a.kv_heads * a.head_dim
    attn = d * a.d_attn * 2 + 2 * d * kv  # W_q, W_o, W_k, W_v
    if a.bias:
        attn += a.d_attn + 2 * kv + d
    if a.pos == "relative":
        attn += d * d + 2 * d  # relative keys, content bias, relative bias (Gopher/Transformer-XL)
    router = d * a.experts if a.experts > 1 else 0
    mlp = experts * _mlp_expert(a) + router
    one_norm = 2 * d if (a.norm == "layernorm" and a.bias) else d
    embedding = a.vocab * d + (a.seq_len * d if a.pos == "learned" else 0)
    g = {
        "embedding": embedding,
        "attention": L * attn,
        "mlp": L * mlp,
        "norms": (2 * L + 1) * one_norm,
        "head": 0 if a.tied else a.vocab * d,
    }
    g["non_embedding"] = g["attention"] + g["mlp"] + g["norms"]
    g["total"] = g["embedding"] + g["non_embedding"] + g["head"]
    return g


def param_counts(arch: Arch) -> dict[str, int]:
    """Exact parameter counts by group.

    Returns
    -------
    dict
        ``embedding`` (token embedding, plus learned positions), ``attention``, ``mlp`` (all
        experts and the router), ``norms`` (2 per block + final), ``head`` (unembedding; 0 when
        tied); derived: ``non_embedding`` = attention + mlp + norms (Kaplan's N, eq 2.1, which
        leaves out embedding and head), ``total`` = embedding + non_embedding + head (Chinchilla's
        N), ``active`` = total with only top_k experts per layer (parameters touched per token).
    """
    g = _groups(arch, arch.experts)
    g["active"] = _groups(arch, arch.top_k)["total"]
    return g


def n_params(arch: Arch, n_kind: str = "total", *, active: bool = False) -> int:
    """N of one kind (:data:`N_KINDS`); ``active`` counts only top_k experts (FLOP conventions)."""
    g = _groups(arch, arch.top_k if active else arch.experts)
    if n_kind == "head":  # Porian "standard": the vocab·d unembedding is counted even when tied
        return g["non_embedding"] + arch.vocab * arch.d_model
    if n_kind in ("total", "non_embedding"):
        return g[n_kind]
    raise UnknownName("parameter kind", n_kind, N_KINDS, "params_kind")


@dataclass(frozen=True)
class FlopItem:
    """One row of Kaplan et al. 2020 Table 1: parameters and forward FLOPs per token."""

    name: str
    params: int
    forward_flops: float


def itemize(arch: Arch) -> list[FlopItem]:
    """Kaplan et al. 2020 Table 1 for ``arch`` (forward FLOPs per token, 2 per multiply-add).

    Generalised to GQA (K and V have kv_heads·head_dim columns), SwiGLU (3 matrices) and MoE
    (parameters of all experts, FLOPs of the top_k). Biases and norms are left out, as in the table;
    training FLOPs are ≈ 3× the forward sum (backward = 2× forward).
    """
    a = arch
    d, L, n_ctx = a.d_model, a.n_layer, a.seq_len
    g = param_counts(a)
    qkv_cols = a.d_attn + 2 * a.kv_heads * a.head_dim
    mats = 2 if a.mlp == "gelu" else 3
    ff_params = L * mats * d * a.d_ff
    router = L * d * a.experts if a.experts > 1 else 0
    return [
        FlopItem("embed", g["embedding"], 4.0 * d),
        FlopItem("attention: qkv", L * d * qkv_cols, 2.0 * L * d * qkv_cols),
        FlopItem("attention: mask", 0, 2.0 * L * n_ctx * a.d_attn),
        FlopItem("attention: project", L * a.d_attn * d, 2.0 * L * a.d_attn * d),
        FlopItem("feedforward", a.experts * ff_params + router, 2.0 * (a.top_k * ff_params + router)),
        FlopItem("de-embed", g["head"], 2.0 * d * a.vocab),
    ]


def chinchilla_appendix_f(arch: Arch, include_embeddings: bool = True) -> dict[str, float]:
    """Hoffmann et al. 2022 Appendix F FLOP count (docs/reference.md §2.4).

    Per sequence of ``seq_len`` tokens, forward pass, 2 FLOPs per multiply-add; attention terms are
    multiplied by n_layer. key_size·num_heads = d_attn; the dense block uses each MLP matrix of the
    top_k experts (GELU: 2, SwiGLU: 3). Backward = 2 × forward.

    ``include_embeddings=False`` drops the embedding and final-logit terms: that variant, not the
    formula as printed, reproduces the paper's own Table A4 (karpathy/nanoGPT scaling_laws.ipynb,
    "per author correspondence").

    Returns
    -------
    dict
        ``embeddings``, ``qkv``, ``att_logits``, ``softmax``, ``att_reduce``, ``att_project``,
        ``dense``, ``logits`` (FLOPs per sequence; 0 for the excluded terms), ``forward``,
        ``backward``, ``total`` (per sequence) and ``per_token`` (= total / seq_len).
    """
    a = arch
    s, d, L = float(a.seq_len), float(a.d_model), a.n_layer
    kh = float(a.d_attn)
    kv = float(a.kv_heads * a.head_dim)
    mats = 2 if a.mlp == "gelu" else 3
    t = {
        "embeddings": 2 * s * a.vocab * d if include_embeddings else 0.0,
        "qkv": L * 2 * s * d * (kh + 2 * kv),  # 2·3·s·d·kh when kv == kh
        "att_logits": L * 2 * s * s * kh,
        "softmax": L * 3.0 * a.n_heads * s * s,
        "att_reduce": L * 2 * s * s * kh,
        "att_project": L * 2 * s * kh * d,
        "dense": L * 2 * s * mats * d * a.d_ff * a.top_k + (L * 2 * s * d * a.experts if a.experts > 1 else 0.0),
        "logits": 2 * s * d * a.vocab if include_embeddings else 0.0,
    }
    t["forward"] = sum(t.values())
    t["backward"] = 2 * t["forward"]
    t["total"] = t["forward"] + t["backward"]
    t["per_token"] = t["total"] / s
    return t


# --------------------------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Convention:
    """A way of counting training FLOPs per token (docs/reference.md §9).

    ``n_kind`` is the parameter count the formula's N refers to; ``needs_shape`` is True when the
    formula needs more than N (width, depth, vocabulary, context); ``derived`` marks a constant
    that no paper states (back-solved).
    """

    name: str
    title: str
    source: str
    n_kind: str
    needs_shape: bool
    derived: bool = False
    note: str = ""


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "6nd",
            "C = 6·N·D",
            "Kaplan et al. 2020 §2.1; Hoffmann et al. 2022 eq 4",
            "total",
            False,
            note="N as the law counts it (its params_kind); 2 FLOPs/param forward, 4 backward",
        ),
        Convention(
            "kaplan",
            "6·N_non_embedding",
            "Kaplan et al. 2020 §2.1, eq 2.1-2.2",
            "non_embedding",
            False,
            note="embedding, unembedding (head) and the context term are left out",
        ),
        Convention(
            "head",
            "6·(N_non_embedding + vocab·d)",
            "Porian et al. 2024, formll/resolving-scaling-law-discrepancies data.py",
            "head",
            False,
            note="Porian 'standard': the unembedding matmul is counted",
        ),
        Convention(
            "attention",
            "6·(N_non_embedding + vocab·d + seq_len·d_attn·n_layer)",
            "Porian et al. 2024 N_eff (data.py)",
            "head",
            True,
            note="adds Kaplan's Table 1 mask term (half of QK^T + AV)",
        ),
        Convention(
            "deepseek",
            "M = 72·l·d² + 12·l·d·seq (C = M·D)",
            "DeepSeek LLM 2024, eq 2",
            "non_embedding",
            True,
            note="non-embedding FLOPs/token with full (unhalved) attention; no vocab term",
        ),
        Convention(
            "chinchilla-f",
            "Chinchilla App. F, as printed",
            "Hoffmann et al. 2022 Appendix F",
            "total",
            True,
            note="embeddings and final logits included; does not reproduce Table A4",
        ),
        Convention(
            "chinchilla-f-a4",
            "Chinchilla App. F without embeddings/logits",
            "Hoffmann et al. 2022 Appendix F, Table A4; karpathy/nanoGPT scaling_laws.ipynb",
            "total",
            True,
            note="the variant that reproduces Table A4 (ratios 1.03 ... 0.99 vs 6ND)",
        ),
        Convention(
            "llama3",
            f"{LLAMA3_FACTOR}·N·D (derived)",
            "back-solved from Llama 3 §3.2.1",
            "total",
            False,
            derived=True,
            note="not stated in the paper: 3.8e25 / (402e9 · 16.55e12) = 5.7116",
        ),
    )
}


def get_convention(name: str | Convention, option: str = "--flops") -> Convention:
    """Look up a convention by name; :class:`UnknownName` (exit 2) names ``option``."""
    if isinstance(name, Convention):
        return name
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise UnknownName("FLOP convention", str(name), CONVENTIONS, option) from None


def training_flops_per_token(arch: Arch, convention: str | Convention, n_kind: str | None = None) -> float:
    """Training FLOPs per token of ``arch`` under ``convention`` (exact counts, active experts).

    ``n_kind`` overrides the N that ``6nd`` and ``llama3`` multiply (default: the convention's).
    N_non_embedding here includes the norm gains, which Kaplan's eq 2.1, Porian's and DeepSeek's
    formulas leave out (a 6·(2·n_layer + 1)·d difference: < 0.3% even for a 1-layer d=96 model).
    """
    conv = get_convention(convention)
    a = arch
    ne = n_params(a, "non_embedding", active=True)
    vd = a.vocab * a.d_model
    ctx = a.seq_len * a.d_attn * a.n_layer
    name = conv.name
    if name in ("6nd", "llama3"):
        n = n_params(a, n_kind or conv.n_kind, active=True)
        return (6.0 if name == "6nd" else LLAMA3_FACTOR) * n
    if name == "kaplan":
        return 6.0 * ne
    if name == "head":
        return 6.0 * (ne + vd)
    if name == "attention":
        return 6.0 * (ne + vd + ctx)
    if name == "deepseek":
        return 6.0 * ne + 12.0 * ctx
    return chinchilla_appendix_f(a, include_embeddings=(name == "chinchilla-f"))["per_token"]


@dataclass(frozen=True)
class FlopsReport:
    """Everything ``scalecalc flops`` shows about one architecture.

    Attributes
    ----------
    arch : dict
        The :class:`Arch` fields.
    params : dict
        :func:`param_counts`.
    flops_per_token : dict
        Convention name -> training FLOPs per token (:func:`training_flops_per_token`).
    ratio_to_6n : dict
        Convention name -> flops_per_token / (6·N_active total).
    inference_flops_per_token : float
        2·N_active: one forward pass, attention over the context left out.
    items : list[dict]
        Kaplan Table 1 rows (:func:`itemize`) as dicts.
    appendix_f : dict
        ``{"full": ..., "a4": ...}``: :func:`chinchilla_appendix_f` with and without embeddings.
    """

    arch: dict
    params: dict
    flops_per_token: dict
    ratio_to_6n: dict
    inference_flops_per_token: float
    items: list
    appendix_f: dict

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def describe(arch: Arch) -> FlopsReport:
    """Params by group, FLOPs per token under every convention and the itemised breakdowns."""
    n_active = n_params(arch, "total", active=True)
    fpt = {name: training_flops_per_token(arch, name) for name in CONVENTIONS}
    return FlopsReport(
        arch=arch.to_dict(),
        params=param_counts(arch),
        flops_per_token=fpt,
        ratio_to_6n={name: v / (6.0 * n_active) for name, v in fpt.items()},
        inference_flops_per_token=2.0 * n_active,
        items=[{"name": i.name, "params": i.params, "forward_flops": i.forward_flops} for i in itemize(arch)],
        appendix_f={"full": chinchilla_appendix_f(arch, True), "a4": chinchilla_appendix_f(arch, False)},
    )


# --------------------------------------------------------------------------------------------
# Continuous shape model (vectorised, for the planner)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShapeRule:
    """Continuous shape family: n_layer = d_model / aspect_ratio.

    Default aspect 128: GPT-3 175B has 12288/96 = 128 (Brown et al. 2020 Table 2.1), Chinchilla 70B
    8192/80 ≈ 102 (Hoffmann et al. 2022 Table 4), and Kaplan et al. 2020 §3.2 / Fig. 5 find the loss
    within a few percent for aspect ratios 20–200. Vocab 32,000 and seq_len 2048 are Chinchilla's.
    """

    aspect_ratio: float = 128.0
    vocab: int = 32000
    seq_len: int = 2048

    def __post_init__(self):
        for name, option in (("aspect_ratio", "--aspect-ratio"), ("vocab", "--vocab"), ("seq_len", "--seq-len")):
            v = getattr(self, name)
            if not (isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0):
                raise UsageError(f"{option} must be a positive number (got {v!r})")


def width_counts(d_model, rule: ShapeRule = ShapeRule()) -> dict[str, np.ndarray]:
    """Parameter counts of the continuous shape of width ``d_model``.

    ``non_embedding`` = 12·n_layer·d² (Kaplan eq 2.1: 4d² attention + 8d² GELU MLP with d_ff = 4d;
    SwiGLU with d_ff = 8d/3 gives the same 12d²). ``head`` = ``total`` = non_embedding + vocab·d:
    this rule has one vocab×d matrix (tied), so Chinchilla's total and Porian's head-counted N
    coincide here (they differ on real untied models; see :func:`n_params`). Note that the
    ``head`` key here is an N kind, not the unembedding group of :func:`param_counts`.
    """
    d = np.asarray(d_model, dtype=float)
    n_layer = d / rule.aspect_ratio
    ne = 12.0 * n_layer * d * d
    total = ne + rule.vocab * d
    return {
        "d_model": d,
        "n_layer": n_layer,
        "non_embedding": ne,
        "head": total,
        "total": total,
        "embedding": rule.vocab * d,
        "vocab": np.full_like(d, float(rule.vocab)),
        "seq_len": np.full_like(d, float(rule.seq_len)),
    }


def flops_per_token(counts: dict, convention: str | Convention, n_kind: str = "total") -> np.ndarray:
    """Training FLOPs per token from a :func:`width_counts` dict (arrays broadcast).

    ``6nd`` and ``llama3`` multiply ``counts[n_kind]``; the shape-aware conventions use their
    formulas (docs/reference.md §9). ``chinchilla-f*`` takes key_size·heads = d, ffw = 4d and
    heads = d/128 (one head per 128 channels).
    """
    name = get_convention(convention).name
    d, L = np.asarray(counts["d_model"]), np.asarray(counts["n_layer"])
    s, V = np.asarray(counts["seq_len"]), np.asarray(counts["vocab"])
    ne = np.asarray(counts["non_embedding"])
    if name == "6nd":
        return 6.0 * np.asarray(counts[n_kind])
    if name == "llama3":
        return LLAMA3_FACTOR * np.asarray(counts[n_kind])
    if name == "kaplan":
        return 6.0 * ne
    if name == "head":
        return 6.0 * (ne + V * d)
    if name == "attention":
        return 6.0 * (ne + V * d + s * d * L)
    if name == "deepseek":
        return 6.0 * ne + 12.0 * L * d * s
    # App. F per token, forward: qkv 6d², logits+reduce 4sd, softmax 3·(d/128)·s, project 2d²,
    # dense 16d² (ffw = 4d); backward = 2x.
    layer = 24.0 * d * d + 4.0 * s * d + 3.0 * (d / 128.0) * s
    fwd = L * layer + (4.0 * V * d if name == "chinchilla-f" else 0.0)
    return 3.0 * fwd


def _log_count_and_slope(x: np.ndarray, n_kind: str, rule: ShapeRule):
    """log N_kind(d) and its derivative in x = log d, for the continuous rule."""
    d = np.exp(x)
    cubic = 12.0 * d * d * d / rule.aspect_ratio
    if n_kind == "non_embedding":
        return np.log(cubic), np.full_like(x, 3.0)
    linear = rule.vocab * d
    n = cubic + linear
    return np.log(n), (3.0 * cubic + linear) / n


def width_for_params(N, n_kind: str = "total", rule: ShapeRule = ShapeRule()) -> np.ndarray:
    """d_model at which the continuous shape has ``N`` parameters of kind ``n_kind``.

    Solves the cubic 12·d³/aspect (+ vocab·d) = N, vectorised: Cardano's real root in the
    cancellation-free form d = q / (t² + p/3 + (p/3t)²) for d³ + p·d = q, then Newton steps in
    x = log d (log N(e^x) is increasing and convex with slope in [1, 3]) until the step is below
    1e-14, i.e. N is matched to float resolution (well inside 1e-13 relative).
    """
    if n_kind not in N_KINDS:
        raise UnknownName("parameter kind", str(n_kind), N_KINDS, "params_kind")
    N = np.asarray(N, dtype=float)
    if np.any(~np.isfinite(N)) or np.any(N <= 0):
        raise UsageError("params must be positive and finite to derive a model width")
    a = 12.0 / rule.aspect_ratio  # N_non_embedding = a·d³
    if n_kind == "non_embedding":
        return np.cbrt(N / a)
    p, q = rule.vocab / a, N / a
    t = np.cbrt(q / 2.0 + np.sqrt(q * q / 4.0 + p**3 / 27.0))
    x = np.log(q / (t * t + p / 3.0 + (p / (3.0 * t)) ** 2))
    logN = np.log(N)
    for _ in range(30):
        f, slope = _log_count_and_slope(x, n_kind, rule)
        step = (f - logN) / slope
        x = x - step
        if np.all(np.abs(step) < 1e-14):
            break
    return np.exp(x)


def shape_for_params(N, n_kind: str = "total", rule: ShapeRule = ShapeRule()) -> dict:
    """:func:`width_counts` at the width whose ``n_kind`` count is ``N``."""
    return width_counts(width_for_params(N, n_kind, rule), rule)


def convert_params(N, from_kind: str, to_kind: str, rule: ShapeRule = ShapeRule()) -> np.ndarray:
    """Convert parameter counts between kinds through the continuous shape of that size."""
    if to_kind not in N_KINDS:
        raise UnknownName("parameter kind", str(to_kind), N_KINDS, "params_kind")
    if from_kind == to_kind:
        return np.asarray(N, dtype=float)
    return shape_for_params(N, from_kind, rule)[to_kind]


# --------------------------------------------------------------------------------------------
# Discrete shape rules
# --------------------------------------------------------------------------------------------

# Hoffmann et al. 2022 Table A9 (all 50 Chinchilla-study models): (params, d_model, ffw_size,
# kv_size, n_heads, n_layers). Transcribed in karpathy/nanoGPT scaling_laws.ipynb (cell 4).
CHINCHILLA_A9: tuple[tuple[int, int, int, int, int, int], ...] = (
    (44_000_000, 512, 2048, 64, 8, 8),
    (57_000_000, 576, 2304, 64, 9, 9),
    (74_000_000, 640, 2560, 64, 10, 10),
    (90_000_000, 640, 2560, 64, 10, 13),
    (106_000_000, 640, 2560, 64, 10, 16),
    (117_000_000, 768, 3072, 64, 12, 12),
    (140_000_000, 768, 3072, 64, 12, 15),
    (163_000_000, 768, 3072, 64, 12, 18),
    (175_000_000, 896, 3584, 64, 14, 14),
    (196_000_000, 896, 3584, 64, 14, 16),
    (217_000_000, 896, 3584, 64, 14, 18),
    (251_000_000, 1024, 4096, 64, 16, 16),
    (278_000_000, 1024, 4096, 64, 16, 18),
    (306_000_000, 1024, 4096, 64, 16, 20),
    (425_000_000, 1280, 5120, 128, 10, 18),
    (489_000_000, 1280, 5120, 128, 10, 21),
    (509_000_000, 1408, 5632, 128, 11, 18),
    (552_000_000, 1280, 5120, 128, 10, 24),
    (587_000_000, 1408, 5632, 128, 11, 21),
    (632_000_000, 1536, 6144, 128, 12, 19),
    (664_000_000, 1408, 5632, 128, 11, 24),
    (724_000_000, 1536, 6144, 128, 12, 22),
    (816_000_000, 1536, 6144, 128, 12, 25),
    (893_000_000, 1792, 7168, 128, 14, 20),
    (1_018_000_000, 1792, 7168, 128, 14, 23),
    (1_143_000_000, 1792, 7168, 128, 14, 26),
    (1_266_000_000, 2048, 8192, 128, 16, 22),
    (1_424_000_000, 2176, 8704, 128, 17, 22),
    (1_429_000_000, 2048, 8192, 128, 16, 25),
    (1_593_000_000, 2048, 8192, 128, 16, 28),
    (1_609_000_000, 2176, 8704, 128, 17, 25),
    (1_731_000_000, 2304, 9216, 128, 18, 24),
    (1_794_000_000, 2176, 8704, 128, 17, 28),
    (2_007_000_000, 2304, 9216, 128, 18, 28),
    (2_283_000_000, 2304, 9216, 128, 18, 32),
    (2_298_000_000, 2560, 10240, 128, 20, 26),
    (2_639_000_000, 2560, 10240, 128, 20, 30),
    (2_980_000_000, 2560, 10240, 128, 20, 34),
    (3_530_000_000, 2688, 10752, 128, 22, 36),
    (3_802_000_000, 2816, 11264, 128, 22, 36),
    (4_084_000_000, 2944, 11776, 128, 22, 36),
    (4_516_000_000, 3072, 12288, 128, 24, 36),
    (6_796_000_000, 3584, 14336, 128, 28, 40),
    (9_293_000_000, 4096, 16384, 128, 32, 42),
    (11_452_000_000, 4352, 17408, 128, 32, 47),
    (12_295_000_000, 4608, 18432, 128, 36, 44),
    (12_569_000_000, 4608, 18432, 128, 32, 47),
    (13_735_000_000, 4864, 19456, 128, 32, 47),
    (14_940_000_000, 4992, 19968, 128, 32, 49),
    (16_183_000_000, 5120, 20480, 128, 40, 47),
)

# Porian et al. 2024: the 16 (d_model, n_layer) shapes, reverse-engineered from the N values in
# formll/resolving-scaling-law-discrepancies (docs/reference.md §5.3; confirm against the paper's Table 3).
PORIAN_SHAPES: tuple[tuple[int, int], ...] = (
    (96, 3),
    (128, 4),
    (160, 5),
    (224, 6),
    (288, 8),
    (320, 9),
    (384, 10),
    (480, 12),
    (576, 14),
    (640, 15),
    (704, 18),
    (832, 21),
    (1024, 23),
    (1120, 26),
    (1312, 26),
    (1504, 30),
)
PORIAN_VOCAB = 50432

SHAPE_RULES: dict[str, str] = {
    "aspect": "GELU, d_ff = 4d, d multiple of 128 (64 below 1024), n_layer ≈ d/aspect, tied",
    "chinchilla": "nearest of the 50 Hoffmann et al. 2022 Table A9 shapes",
    "porian": "nearest of the 16 Porian et al. 2024 shapes (SwiGLU, vocab 50,432)",
    "llama": "Llama-style: SwiGLU d_ff = 256·ceil(8d/3 / 256), GQA with 8 KV heads from 16 heads",
}


def shape_deviation(arch: Arch, N: float, n_kind: str = "total") -> float:
    """Relative deviation of ``arch``'s ``n_kind`` count from the target N (0.01 = 1% larger)."""
    return n_params(arch, n_kind) / float(N) - 1.0


def _aspect_arch(d: int, L: int, vocab: int, seq_len: int, mlp: str | None) -> Arch:
    head_dim = 128 if d >= 1024 else 64
    return Arch(
        n_layer=L,
        d_model=d,
        n_heads=d // head_dim,
        vocab=vocab,
        seq_len=seq_len,
        mlp=mlp or "gelu",
        tied=True,
        pos="rope",
        norm="layernorm",
        bias=False,
    )


def _llama_arch(d: int, L: int, vocab: int, seq_len: int, mlp: str | None, ffn_multiplier: float = 1.0) -> Arch:
    head_dim = 128 if d >= 1024 else 64
    heads = d // head_dim
    # GQA with 8 KV heads from 16 query heads up (Llama 2 70B, Llama 3); the design grid keeps
    # heads a multiple of 8 there, the fallback keeps kv dividing heads for any width
    kv = max(k for k in range(1, 9) if heads % k == 0) if heads >= 16 else heads
    mlp = mlp or "swiglu"
    d_ff = swiglu_ffn(d, ffn_multiplier) if mlp == "swiglu" else 4 * d
    return Arch(
        n_layer=L,
        d_model=d,
        n_heads=heads,
        kv_heads=kv,
        d_ff=d_ff,
        vocab=vocab,
        seq_len=seq_len,
        mlp=mlp,
        tied=False,
        pos="rope",
        norm="rmsnorm",
        bias=False,
    )


def _width_grid(lo: float, hi: float, coarse_from: int | None = None) -> list[int]:
    """Candidate widths in [lo, hi]: multiples of 64 below 1024, of 128 from 1024, and of 1024 from
    ``coarse_from`` (llama: from 2048, so n_heads = d/128 is a multiple of the 8 KV heads)."""
    top = int(hi) + 1024
    cut = coarse_from or top
    grid = list(range(64, 1024, 64)) + list(range(1024, min(cut, top), 128))
    grid += list(range(cut, top, 1024)) if coarse_from else []
    inside = [d for d in grid if lo <= d <= hi]
    return inside or [min(grid, key=lambda d: abs(math.log(d / lo)))]


def search_shape(
    N: float,
    n_kind: str,
    make: Callable[[int, int], Arch],
    widths: Iterable[int],
    *,
    aspect_ratio: float,
    tolerance: float,
) -> tuple[Arch, bool]:
    """The (d_model, n_layer) shape closest to ``aspect_ratio`` among those within ``tolerance``.

    ``make(d, n_layer)`` builds a candidate for each width in ``widths``; the count is linear in
    depth at a fixed width, so the depths within ``tolerance`` of N (relative, symmetric in log)
    are known in closed form and only the best of them is built. Returns the shape and whether it
    fits; when none fits, the shape nearest to N. The planner's shape block uses a 2% tolerance on
    a grid of multiples of 64/128 (:func:`design_shape`); calibration recipes a 10% tolerance on
    multiples of the head width (tiny models: one layer is a large step in N).
    """
    limit = math.log1p(tolerance)
    best, best_key = None, None
    for d in widths:
        n1, n2 = n_params(make(d, 1), n_kind), n_params(make(d, 2), n_kind)
        per_layer, base = n2 - n1, 2 * n1 - n2
        exact = (N - base) / per_layer
        lo = max(1, math.ceil((N * math.exp(-limit) - base) / per_layer))
        hi = math.floor((N * math.exp(limit) - base) / per_layer)
        depths = {max(1, math.floor(exact)), max(1, math.ceil(exact))}
        if hi >= lo:  # the fitting depth nearest the aspect ratio
            depths.add(min(max(round(d / aspect_ratio), lo), hi))
        for L in depths:
            err = abs(math.log((base + L * per_layer) / N))
            fits = err <= limit
            key = (not fits, abs(math.log(d / L / aspect_ratio)) if fits else err)
            if best_key is None or key < best_key:
                best, best_key = (d, L), key
    assert best is not None and best_key is not None  # widths and depths are never empty
    return make(*best), not best_key[0]


def _search(
    N: float,
    n_kind: str,
    make: Callable[[int, int], Arch],
    aspect: float,
    rule: ShapeRule,
    coarse_from: int | None = None,
) -> Arch:
    """:func:`search_shape` within 2% of N on the planner's width grid, searched outwards.

    The target aspect ratio sits at the continuous width d0, so widths within 1.6x of it are tried
    first; only when none fits within 2% does the search widen, to 2.5x and then 8x (small N, where
    the embedding dominates or whole layers are more than 2% of N, needs narrower, deeper shapes).
    This keeps a plan's shape block to a few milliseconds.
    """
    d0 = float(width_for_params(N, n_kind, rule))
    for window in (1.6, 2.5, 8.0):
        widths = _width_grid(max(64.0, d0 / window), max(128.0, d0 * window), coarse_from)
        arch, fits = search_shape(N, n_kind, make, widths, aspect_ratio=aspect, tolerance=0.02)
        if fits:
            break
    return arch


def _nearest(N: float, n_kind: str, archs: list[Arch]) -> Arch:
    return min(archs, key=lambda a: abs(math.log(n_params(a, n_kind) / N)))


def design_shape(
    N: float,
    rule_name: str = "aspect",
    *,
    n_kind: str = "total",
    vocab: int | None = None,
    seq_len: int = 2048,
    aspect_ratio: float = 128.0,
    mlp: str | None = None,
) -> Arch:
    """A buildable architecture with about ``N`` parameters of kind ``n_kind``.

    Rules (:data:`SHAPE_RULES`): ``aspect`` and ``llama`` search (d_model, n_layer) on a grid and
    return, among shapes within 2% of N, the one whose d_model/n_layer is closest to
    ``aspect_ratio``; if none is within 2% (N below one layer of the narrowest width), the nearest.
    ``chinchilla`` and ``porian`` return the nearest published shape (by log N); check
    :func:`shape_deviation`. ``vocab`` defaults to 32,000 (50,432 for porian). ``mlp`` overrides
    the MLP of ``aspect`` / ``llama``; the table rules keep their own.
    """
    if rule_name not in SHAPE_RULES:
        raise UnknownName("shape rule", str(rule_name), SHAPE_RULES, "--shape-rule")
    if n_kind not in N_KINDS:
        raise UnknownName("parameter kind", str(n_kind), N_KINDS, "params_kind")
    if not (math.isfinite(N) and N > 0):
        raise UsageError(f"params must be positive and finite to design a shape (got {N})")
    vocab = int(vocab or (PORIAN_VOCAB if rule_name == "porian" else 32000))
    rule = ShapeRule(aspect_ratio, vocab, seq_len)
    if rule_name == "aspect":
        return _search(N, n_kind, lambda d, L: _aspect_arch(d, L, vocab, seq_len, mlp), aspect_ratio, rule)
    if rule_name == "llama":
        return _search(
            N, n_kind, lambda d, L: _llama_arch(d, L, vocab, seq_len, mlp), aspect_ratio, rule, coarse_from=2048
        )
    if rule_name == "chinchilla":
        # Gopher/Chinchilla blocks: relative positions, RMSNorm (Rae et al. 2021), one vocab×d
        # matrix: this count matches Table A9's params to within 1.5% for all 50 shapes.
        archs = [
            Arch(
                n_layer=l,
                d_model=d,
                n_heads=h,
                head_dim=kv,
                d_ff=f,
                vocab=vocab,
                seq_len=seq_len,
                mlp="gelu",
                tied=True,
                pos="relative",
                norm="rmsnorm",
            )
            for _, d, f, kv, h, l in CHINCHILLA_A9
        ]
        return _nearest(N, n_kind, archs)
    archs = [
        Arch(
            n_layer=l,
            d_model=d,
            n_heads=d // 64 if d % 64 == 0 else d // 32,
            vocab=vocab,
            seq_len=seq_len,
            mlp="swiglu",
            pos="rope",
            norm="layernorm",
        )
        for d, l in PORIAN_SHAPES
    ]
    return _nearest(N, n_kind, archs)


# --------------------------------------------------------------------------------------------
# Hugging Face config.json
# --------------------------------------------------------------------------------------------

# Each field: accepted keys, first present wins (HF generic names, then GPT-2's).
_HF_KEYS = {
    "n_layer": ("num_hidden_layers", "n_layer"),
    "d_model": ("hidden_size", "n_embd", "d_model"),
    "n_heads": ("num_attention_heads", "n_head"),
    "vocab": ("vocab_size",),
    "seq_len": ("max_position_embeddings", "n_positions", "n_ctx"),
}


# Keys that change the parameter count in ways an Arch cannot express (DeepSeek V2/V3's shared
# and routed experts, dense first layers and compressed (MLA) attention): refused by name rather
# than read into a silently wrong number.
_HF_UNSUPPORTED = (
    "n_routed_experts",
    "n_shared_experts",
    "first_k_dense_replace",
    "kv_lora_rank",
    "q_lora_rank",
    "qk_nope_head_dim",
    "qk_rope_head_dim",
    "v_head_dim",
    "moe_layer_freq",
    "decoder_sparse_step",
    "shared_expert_intermediate_size",
)
# Families whose MLP is gated (3 matrices) even though hidden_act names plain GELU.
_HF_GATED_GELU = ("gemma", "gemma2", "gemma3_text")
# Families that tie the unembedding when the config leaves tie_word_embeddings out.
_HF_TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3_text", "gpt2")
# Small terms the Arch leaves out, said as a note (each well under 1e-4 of the total).
_HF_SMALL_TERMS = {
    "qwen2": "Qwen2 adds q/k/v biases (d + 2·kv_heads·head_dim per layer), not counted (< 1e-4 of N)",
    "olmo2": "OLMo 2 adds q/k RMSNorm weights (d + kv_heads·head_dim per layer), not counted (< 1e-4 of N)",
}


def hf_config_notes(path: str | Path) -> list[str]:
    """What :func:`from_hf_config` reads approximately for this config (its family's small
    terms), for the CLI to print as warnings."""
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    note = _HF_SMALL_TERMS.get(str(cfg.get("model_type", "")).lower()) if isinstance(cfg, dict) else None
    return [f"--hf-config {path}: {note}"] if note else []


def from_hf_config(path: str | Path) -> Arch:
    """Read an :class:`Arch` from a local Hugging Face ``config.json``.

    Keys: num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, head_dim,
    intermediate_size (moe_intermediate_size for MoE), vocab_size, max_position_embeddings,
    tie_word_embeddings (default False), hidden_act (silu/swish -> swiglu, else gelu),
    num_local_experts / num_experts, num_experts_per_tok; GPT-2 names (n_layer, n_embd, ...) too.
    A missing required key or malformed JSON raises :class:`UsageError` naming file and key.
    """
    path = Path(path)
    where = f"--hf-config {path}"
    from scalecalc.validate import hfconfig

    cfg = hfconfig.load(path, where)  # bounded, valid JSON, sizes whole numbers in range
    unsupported = [k for k in _HF_UNSUPPORTED if cfg.get(k) not in (None, 0)]
    if unsupported:
        raise UsageError(
            f"{where}: keys {', '.join(unsupported)} change the parameter count in ways scalecalc "
            "does not model (shared/routed experts, dense first layers, compressed attention); "
            "give the shape with --n-layer, --d-model, ... for an approximation"
        )
    got = {field: _hf_get(cfg, keys, where) for field, keys in _HF_KEYS.items()}
    gpt2_style = "n_embd" in cfg and "hidden_size" not in cfg
    model_type = str(cfg.get("model_type", "")).lower()
    act = str(cfg.get("hidden_act", cfg.get("hidden_activation", cfg.get("activation_function", "gelu")))).lower()
    # gated MLPs (gate, up, down) count as swiglu: three d x d_ff matrices whatever the activation
    mlp = "swiglu" if act in ("silu", "swish", "swiglu") or model_type in _HF_GATED_GELU else "gelu"
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 1
    moe = isinstance(experts, (int, float)) and experts > 1
    top_k = (cfg.get("num_experts_per_tok") or 1) if moe else 1
    d_ff = (cfg.get("moe_intermediate_size") if moe else None) or cfg.get("intermediate_size") or cfg.get("n_inner")
    try:
        return Arch(
            **got,
            kv_heads=cfg.get("num_key_value_heads"),
            head_dim=cfg.get("head_dim"),
            d_ff=d_ff,
            mlp=mlp,
            experts=experts,
            top_k=top_k,
            tied=bool(cfg.get("tie_word_embeddings", gpt2_style or model_type in _HF_TIED_BY_DEFAULT)),
            pos="learned" if gpt2_style else "rope",
            norm="rmsnorm" if "rms_norm_eps" in cfg else "layernorm",
            bias=bool(cfg.get("attention_bias", gpt2_style)),
        )
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _hf_get(cfg: dict, keys: tuple[str, ...], where: str) -> Any:  # Arch checks it is whole
    for key in keys:
        if cfg.get(key) is not None:
            value = cfg[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{where}: key {key!r} must be a number (got {value!r})")
            return value
    raise UsageError(f"{where}: missing key {keys[0]!r}; is this a decoder-only model config?")
