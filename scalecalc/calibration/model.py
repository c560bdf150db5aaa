"""A tiny decoder-only GPT for calibration sweeps, written in the nanoGPT manner.

Choices that matter for scaling studies are switches on :class:`GPTConfig`: the norm
(LayerNorm or RMSNorm), the MLP (GELU or SwiGLU), positions (RoPE or learned), tied or untied
embeddings, and biases. The defaults follow the OpenLM setup used by Porian et al. 2024: pre-norm
blocks, gain-only LayerNorm (OpenLM ``model_norm="gain_only_lp_layer_norm"``: a LayerNorm with a
weight and no bias), SwiGLU with d_ff = 256*ceil(floor(8d/3)/256), rotary positions, untied
input/output embeddings (OpenLM ``weight_tying=False``) and no biases.

Parameter and FLOP accounting is not repeated here: :meth:`GPT.arch` describes the model as a
:class:`scalecalc.flops.Arch` and :meth:`GPT.param_counts` / :meth:`GPT.flops_per_token` call
:mod:`scalecalc.flops`, so the planner and the trainer can never count differently; the tests
check those counts against ``sum(p.numel() for p in model.parameters())``.

References
----------
- Karpathy, nanoGPT ``model.py`` (structure, init, ``configure_optimizers``, ``estimate_mfu``).
- Radford et al. 2019, GPT-2 (pre-norm; residual projections scaled by 1/sqrt(2*n_layer) at init).
- Vaswani et al. 2017, "Attention Is All You Need" (scaled dot-product attention).
- Su et al. 2021, "RoFormer", arXiv 2104.09864 (rotary position embedding, eq 34).
- Shazeer 2020, "GLU Variants Improve Transformer", arXiv 2002.05202 (SwiGLU, eq 6).
- Zhang & Sennrich 2019, "Root Mean Square Layer Normalization", arXiv 1910.07467.
- Porian et al. 2024, arXiv 2406.19146, and the OpenLM code it uses (d_ff rule, docs/reference.md §5.3).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

from scalecalc.calibration.recipe import POSITIONS, RunConfig
from scalecalc.errors import MissingDependency, UnknownName, UsageError
from scalecalc.flops import MLPS, NORMS, Arch, param_counts, swiglu_ffn, training_flops_per_token

try:  # the calibrate extra: without it, one line naming the extra rather than a traceback
    import torch
    import torch.nn as nn
    from torch.nn import functional as F
except ImportError:
    raise MissingDependency.for_extra("torch", "calibrate") from None


@dataclass
class GPTConfig:
    """The model's hyperparameters; the defaults shared with a run are :class:`RunConfig`'s."""

    vocab_size: int = RunConfig.vocab_size  # tokens; 256 for the default byte tokenizer
    seq_len: int = RunConfig.seq_len  # context length T (block size); RoPE tables and learned positions span it
    n_layer: int = 4  # number of transformer blocks l
    n_head: int = 4  # attention heads; head_dim = d_model // n_head
    d_model: int = 128  # residual stream width d
    d_ff: int | None = None  # MLP hidden width; None: flops.swiglu_ffn(d) (OpenLM rule) for SwiGLU, 4d for GELU
    norm: str = RunConfig.norm  # "layernorm" (gain-only when bias=False, as OpenLM) or "rmsnorm"
    mlp: str = RunConfig.mlp  # "swiglu" (OpenLM, Llama) or "gelu" (GPT-2)
    pos: str = RunConfig.pos  # "rope" (rotary, no parameters) or "learned" (GPT-2 position table)
    tied: bool = RunConfig.tied  # share the token embedding with the output head (GPT-2) or not (OpenLM)
    bias: bool = False  # biases in Linear layers and LayerNorms; False as OpenLM and nanoGPT's advice
    rope_base: float = 10000.0  # RoPE frequency base theta (RoFormer eq 15)
    norm_eps: float = 1e-5  # epsilon inside the norms (OpenLM and torch default)

    def __post_init__(self):
        for name, value, valid in (("norm", self.norm, NORMS), ("mlp", self.mlp, MLPS), ("pos", self.pos, POSITIONS)):
            if value not in valid:
                raise UnknownName(name, str(value), valid, name)
        if self.d_model % self.n_head or (self.pos == "rope" and (self.d_model // self.n_head) % 2):
            raise UsageError(f"d_model: {self.d_model} must split into n_head={self.n_head} heads of even width")
        if self.d_ff is None:
            self.d_ff = swiglu_ffn(self.d_model) if self.mlp == "swiglu" else 4 * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


class Norm(nn.Module):
    """LayerNorm (with or without bias) or RMSNorm over the last dimension."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.kind, self.eps = config.norm, config.norm_eps
        self.weight = nn.Parameter(torch.ones(config.d_model))
        # RMSNorm has no bias by definition (Zhang & Sennrich 2019 eq 4)
        self.bias = nn.Parameter(torch.zeros(config.d_model)) if config.bias and self.kind == "layernorm" else None

    def forward(self, x):
        if self.kind == "layernorm":
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


def rope_tables(config: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables of shape (T, head_dim/2) for rotary embeddings (RoFormer eq 15, 34)."""
    inv_freq = config.rope_base ** (-torch.arange(0, config.head_dim, 2, dtype=torch.float32) / config.head_dim)
    angles = torch.outer(torch.arange(config.seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x1, x2) of the two halves of each head by position-dependent angles."""
    T = x.size(-2)
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hd/2) each
    cos, sin = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


class Attention(nn.Module):
    """Multi-head causal self-attention through torch's fused scaled_dot_product_attention."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.rope = config.n_head, config.pos == "rope"
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.proj.residual = True  # scaled at init (GPT-2)
        if self.rope:
            cos, sin = rope_tables(config)
            # buffers follow .to(device) but are not parameters and not saved in checkpoints
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        if self.rope:
            q, k = apply_rope(q, self.cos, self.sin), apply_rope(k, self.cos, self.sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads: (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    """GELU MLP (GPT-2) or SwiGLU (Shazeer 2020 eq 6: (Swish(xW) * xV) W2)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        # SwiGLU's gate and value projections are one matrix of width 2*d_ff (one matmul)
        self.fc = nn.Linear(config.d_model, (2 if self.swiglu else 1) * config.d_ff, bias=config.bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.proj.residual = True  # scaled at init (GPT-2)

    def forward(self, x):
        h = self.fc(x)  # (B, T, d_ff) or (B, T, 2*d_ff)
        if self.swiglu:
            gate, value = h.chunk(2, dim=-1)  # (B, T, d_ff) each
            return self.proj(F.silu(gate) * value)
        return self.proj(F.gelu(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.norm1, self.attn = Norm(config), Attention(config)
        self.norm2, self.mlp = Norm(config), MLP(config)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    """Token embedding -> n_layer blocks -> final norm -> linear head over the vocabulary."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.d_model)
        self.wpe = nn.Embedding(config.seq_len, config.d_model) if config.pos == "learned" else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = Norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tied:
            self.lm_head.weight = self.wte.weight  # one tensor; parameters() yields it once
        self.apply(self._init_weights)

    def _init_weights(self, module):
        # GPT-2: N(0, 0.02) everywhere; residual projections N(0, 0.02/sqrt(2*n_layer)) so the
        # residual stream's variance does not grow with depth (Radford et al. 2019 §2.3)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            std = 0.02 / math.sqrt(2 * self.config.n_layer) if getattr(module, "residual", False) else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        if T > self.config.seq_len:
            raise ValueError(f"sequence of length {T} exceeds seq_len={self.config.seq_len}")
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))  # (T, C) broadcast over B
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.norm_f(x))  # (B, T, vocab)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))  # nats/token
        return logits, loss

    # --- accounting: delegated to scalecalc.flops, never a second copy of the formulas ---

    def arch(self) -> Arch:
        """This model as a :class:`scalecalc.flops.Arch` (the shape every convention reads)."""
        c = self.config
        return Arch(
            n_layer=c.n_layer,
            d_model=c.d_model,
            n_heads=c.n_head,
            kv_heads=c.n_head,
            head_dim=c.head_dim,
            d_ff=c.d_ff,
            vocab=c.vocab_size,
            seq_len=c.seq_len,
            mlp=c.mlp,
            tied=c.tied,
            experts=1,
            top_k=1,
            pos=c.pos,
            norm=c.norm,
            bias=c.bias,
        )

    def param_counts(self) -> dict:
        """Parameters by group (embedding, attention, mlp, norms, head, non_embedding, total, active).

        Computed by :func:`scalecalc.flops.param_counts`; ``total`` equals
        ``sum(p.numel() for p in self.parameters())`` (checked in tests/test_train_model.py).
        """
        return param_counts(self.arch())

    def flops_per_token(self, convention: str = "6nd") -> float:
        """Training FLOPs per token under a named convention of :data:`scalecalc.flops.CONVENTIONS`.

        "6nd" is 6N over all parameters (Hoffmann et al. 2022 eq 4 / App. F); "kaplan" is 6N over
        non-embedding parameters (Kaplan et al. 2020 §2.1); "attention" adds Porian's n_ctx*d*l
        term; see docs/reference.md §9 for the others.
        """
        return training_flops_per_token(self.arch(), convention)

    def estimate_mfu(self, tokens_per_second: float, peak_flops: float, convention: str = "6nd") -> float:
        """Model FLOPs utilisation: achieved training FLOP/s over the device peak (nanoGPT, PaLM App. B)."""
        return self.flops_per_token(convention) * tokens_per_second / peak_flops

    def configure_optimizer(self, lr: float, betas: tuple[float, float], weight_decay: float, device_type: str):
        """AdamW with weight decay on >=2-D weights only (matrices, embeddings), as nanoGPT.

        Norm gains and biases are not decayed: shrinking them toward zero changes the function,
        not just the scale. ``fused=True`` on CUDA (one kernel for all parameters).
        """
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        return torch.optim.AdamW(groups, lr=lr, betas=betas, **({"fused": True} if fused else {}))
