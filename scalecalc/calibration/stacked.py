"""K GPTs of one shape as one stacked model: its forward, and AdamW over all K at once.

A pack's parameters live in one fp32 buffer of shape ``(K, P)`` (:attr:`Stack.flat`): row k is
member k's P parameters, laid out in the order of its AdamW's parameter groups (decayed matrices,
then gains and biases). Each named parameter is a ``(K, *shape)`` view of that buffer and a leaf of
autograd whose gradient is the matching view of one ``(K, P)`` gradient buffer, so after backward
the optimizer, the gradient clipping and the zeroing are a dozen elementwise ops over the whole
pack, however deep the model. (The same contiguous-buffer idea as Megatron-LM's and DeepSpeed's
flat gradient buffers, here with a member axis.)

The forward (:meth:`Stack.losses`) is :meth:`scalecalc.calibration.model.GPT.forward` with a
leading member axis: linear layers are batched matmuls ``(K, M, in) @ (K, in, out)``; attention
folds the members into the batch of one ``scaled_dot_product_attention`` call; norms normalise
without weights and then scale by each member's gain; the embedding looks up ``idx + k * vocab``
in the members' tables seen as one ``(K * vocab, d)`` table. Every op treats the rows of the
member axis independently, so member k's numbers never depend on its pack mates
(``tests/test_calibration_packed.py`` checks this bit for bit).

AdamW is torch's algorithm (Loshchilov & Hutter 2019, decoupled weight decay; the update of
``torch.optim.AdamW``) with each member's own learning rate, betas, epsilon, weight decay, step
count and gradient-clipping threshold as ``(K, 1)`` columns. With ``fused=True`` each member's
rows are updated by torch's fused AdamW kernel instead (the CUDA default, as the solo loop).
Members move in and out of an ordinary :class:`GPT` + ``torch.optim.AdamW`` pair
(:meth:`Stack.load_member`, :meth:`Stack.store_member`) so checkpoints keep the solo format.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scalecalc.calibration.model import GPT, GPTConfig, apply_rope
from scalecalc.errors import MissingDependency

try:  # the calibrate extra: without it, one line naming the extra rather than a traceback
    import torch
    import torch.optim.adamw as torch_adamw
    from torch.nn import functional as F
except ImportError:
    raise MissingDependency.for_extra("torch", "calibrate") from None


@dataclass(frozen=True)
class Layout:
    """Where each parameter lives in a member's row of the flat buffer.

    ``names``, ``shapes`` and ``offsets`` follow the optimizer's order; ``groups`` are the
    ``(start, end)`` element ranges of its parameter groups (one weight decay each)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    groups: tuple[tuple[int, int], ...]
    size: int

    @classmethod
    def of(cls, model: GPT, optimizer: torch.optim.Optimizer) -> Layout:
        name_of = {id(p): n for n, p in model.named_parameters()}
        names, shapes, offsets, groups, offset = [], [], [], [], 0
        for group in optimizer.param_groups:
            start = offset
            for p in group["params"]:
                names.append(name_of[id(p)])
                shapes.append(tuple(p.shape))
                offsets.append(offset)
                offset += p.numel()
            groups.append((start, offset))
        return cls(tuple(names), tuple(shapes), tuple(offsets), tuple(groups), offset)

    def spans(self):
        """(name, shape, start, end) of every parameter."""
        for name, shape, start in zip(self.names, self.shapes, self.offsets):
            yield name, shape, start, start + math.prod(shape)


class Stack:
    """The parameters, gradients and AdamW moments of K same-shape GPTs, row k = member k.

    Build one with :meth:`from_members`; :meth:`losses` is the forward, :meth:`step` the clipped
    AdamW update of every member, :meth:`select` the pack without the members that left.
    """

    def __init__(
        self, config: GPTConfig, layout: Layout, flat, exp_avg, exp_avg_sq, steps, rope, fused: bool, compile: bool
    ):
        self.config, self.layout, self.fused, self.compiled = config, layout, fused, compile
        self.flat, self.exp_avg, self.exp_avg_sq = flat, exp_avg, exp_avg_sq  # (K, P) fp32 each
        self.grad = torch.zeros_like(flat)
        self.steps = list(steps)  # AdamW steps taken by each member (its bias correction)
        self.rope = rope  # (cos, sin) tables shared by all members, or None
        self.params = self._leaf_views()
        # torch.compile of the forward and loss (--compile): compiled again for each pack size K,
        # that is when a member leaves (about 25 s for a tiny model on one CPU thread)
        self._loss_fn = torch.compile(self._losses) if compile else self._losses

    @classmethod
    def from_members(
        cls, models: Sequence[GPT], optimizers: Sequence, steps: Sequence[int], *, fused: bool, compile: bool = False
    ) -> Stack:
        """Stack K models (and their AdamW states, ``steps`` updates in) of one shape."""
        model0 = models[0]
        layout = Layout.of(model0, optimizers[0])
        device = next(model0.parameters()).device
        flat = torch.empty(len(models), layout.size, device=device)
        rope = None
        if model0.config.pos == "rope":
            attn = model0.blocks[0].attn
            rope = (attn.cos, attn.sin)
        zeros = torch.zeros_like
        stack = cls(model0.config, layout, flat, zeros(flat), zeros(flat), steps, rope, fused, compile)
        for k, optimizer in enumerate(optimizers):  # the optimizer holds the model's parameters
            stack.load_member(k, optimizer)
        return stack

    @property
    def K(self) -> int:
        return self.flat.size(0)

    def _leaf_views(self) -> dict:
        """name -> (K, *shape) view of ``flat``: an autograd leaf whose ``.grad`` is the same view
        of ``grad``, so backward accumulates straight into the flat gradient buffer."""
        params = {}
        for name, shape, start, end in self.layout.spans():
            p = self.flat[:, start:end].view(self.K, *shape).requires_grad_(True)
            p.grad = self.grad[:, start:end].view(self.K, *shape)
            params[name] = p
        return params

    def select(self, rows: Sequence[int]) -> Stack:
        """The pack of the members at ``rows`` (in that order): members that left drop out."""
        idx = torch.as_tensor(list(rows), device=self.flat.device)
        return Stack(
            self.config,
            self.layout,
            self.flat[idx].detach().clone(),
            self.exp_avg[idx].clone(),
            self.exp_avg_sq[idx].clone(),
            [self.steps[k] for k in rows],
            self.rope,
            self.fused,
            self.compiled,
        )

    # -- members in and out: the solo GPT + AdamW pair, so checkpoints keep loop.py's format ----

    def _ordered(self, optimizer) -> list:
        return [p for group in optimizer.param_groups for p in group["params"]]

    @torch.no_grad()
    def load_member(self, k: int, optimizer) -> None:
        """Copy a member's weights and AdamW moments into row k (zeros before its first step)."""
        for p, (_, _, start, end) in zip(self._ordered(optimizer), self.layout.spans()):
            self.flat[k, start:end].copy_(p.detach().reshape(-1))
            state = optimizer.state.get(p, {})
            for buf, key in ((self.exp_avg, "exp_avg"), (self.exp_avg_sq, "exp_avg_sq")):
                if key in state:
                    buf[k, start:end].copy_(state[key].reshape(-1))
                else:
                    buf[k, start:end].zero_()

    @torch.no_grad()
    def store_weights(self, k: int, model: GPT) -> None:
        """Row k's weights into ``model`` (for its evaluation on the plain forward)."""
        params = dict(model.named_parameters())
        for name, shape, start, end in self.layout.spans():
            params[name].copy_(self.flat[k, start:end].view(shape))

    @torch.no_grad()
    def store_member(self, k: int, model: GPT, optimizer) -> None:
        """Row k's weights into ``model`` and its AdamW state into ``optimizer`` (torch's own
        state layout: ``step``, ``exp_avg``, ``exp_avg_sq`` per parameter), ready to checkpoint."""
        self.store_weights(k, model)
        for p, (_, shape, start, end) in zip(self._ordered(optimizer), self.layout.spans()):
            optimizer.state[p] = {
                "step": torch.tensor(float(self.steps[k]), dtype=torch.float32),
                "exp_avg": self.exp_avg[k, start:end].view(shape).clone(),
                "exp_avg_sq": self.exp_avg_sq[k, start:end].view(shape).clone(),
            }

    # -- forward ------------------------------------------------------------------------------

    def losses(self, idx, targets):
        """Mean cross-entropy (nats/token) of each member on its own batch: ``(K, B, T)`` token
        ids and targets -> ``(K,)`` losses, as :meth:`GPT.forward` for each member."""
        return self._loss_fn(idx, targets)

    def _losses(self, idx, targets):
        K, B, T = idx.shape
        logits = self._logits(idx)  # (K, B*T, vocab)
        per_token = F.cross_entropy(logits.reshape(K * B * T, -1).float(), targets.reshape(-1), reduction="none")
        return per_token.view(K, B * T).mean(dim=1)

    def _logits(self, idx):
        c, P = self.config, self.params
        K, B, T = idx.shape
        members = torch.arange(K, device=idx.device).view(K, 1, 1)
        table = P["wte.weight"].reshape(K * c.vocab_size, c.d_model)  # member k's rows start at k*vocab
        x = F.embedding(idx + members * c.vocab_size, table)  # (K, B, T, d)
        if c.pos == "learned":
            x = x + P["wpe.weight"][:, None, :T]
        x = x.reshape(K, B * T, c.d_model)
        for i in range(c.n_layer):
            x = x + self._attention(self._norm(x, f"blocks.{i}.norm1"), f"blocks.{i}.attn", B, T)
            x = x + self._mlp(self._norm(x, f"blocks.{i}.norm2"), f"blocks.{i}.mlp")
        head = P["wte.weight"] if c.tied else P["lm_head.weight"]  # (K, vocab, d)
        return torch.bmm(self._norm(x, "norm_f"), head.transpose(1, 2))

    def _linear(self, x, prefix: str):
        """``x @ W.T + b`` per member: (K, M, in) -> (K, M, out), W stored (K, out, in) as nn.Linear."""
        w, b = self.params[prefix + ".weight"], self.params.get(prefix + ".bias")
        if b is None:
            return torch.bmm(x, w.transpose(1, 2))
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    def _norm(self, x, prefix: str):
        """LayerNorm or RMSNorm over d, then each member's gain (and bias)."""
        c = self.config
        if c.norm == "layernorm":
            y = F.layer_norm(x, (c.d_model,), eps=c.norm_eps)
        else:
            y = F.rms_norm(x, (c.d_model,), eps=c.norm_eps)
        y = y * self.params[prefix + ".weight"].unsqueeze(1)
        bias = self.params.get(prefix + ".bias")
        return y if bias is None else y + bias.unsqueeze(1)

    def _attention(self, x, prefix: str, B: int, T: int):
        """Causal self-attention, the members folded into SDPA's batch: (K, B*T, C) -> same."""
        K, C, nh = self.K, self.config.d_model, self.config.n_head
        q, k, v = self._linear(x, prefix + ".qkv").split(C, dim=2)  # (K, B*T, C) each
        q, k, v = (t.view(K * B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))  # (K*B, nh, T, hd)
        if self.rope is not None:
            q, k = apply_rope(q, *self.rope), apply_rope(k, *self.rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self._linear(y.transpose(1, 2).contiguous().view(K, B * T, C), prefix + ".proj")

    def _mlp(self, x, prefix: str):
        h = self._linear(x, prefix + ".fc")
        if self.config.mlp == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            return self._linear(F.silu(gate) * value, prefix + ".proj")
        return self._linear(F.gelu(h), prefix + ".proj")

    def backward(self, losses) -> None:
        """Gradients of every member's loss into :attr:`grad` (members are independent, so the
        gradient of the sum is each member's own)."""
        with warnings.catch_warnings():
            # the leaves are strided views of the (K, P) buffer, and so are their gradients; torch
            # notes that these are not dense, and accumulates into them in place, as meant
            warnings.filterwarnings("ignore", message=".*gradient layout contract.*")
            losses.sum().backward()

    # -- optimizer ----------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, hyper: Sequence[dict], grad_clip: Sequence[float]) -> None:
        """Clip each member's gradient to its ``grad_clip`` norm (<= 0: no clipping), take one
        AdamW step per member with its param groups' settings ``hyper`` (one list of group dicts
        per member: ``lr``, ``betas``, ``eps``, ``weight_decay``), and zero the gradients."""
        self.steps = [s + 1 for s in self.steps]
        self._clip(grad_clip)
        if self.fused:
            self._fused_adamw(hyper)
        else:
            self._adamw(hyper)
        self.grad.zero_()

    def _column(self, values) -> torch.Tensor:
        """Per-member scalars (computed in float64) as a (K, 1) fp32 column on the device."""
        return torch.tensor(values, dtype=torch.float64).view(-1, 1).to(self.flat.device, torch.float32)

    def _clip(self, grad_clip: Sequence[float]) -> None:
        """``torch.nn.utils.clip_grad_norm_`` per member: scale by max_norm / (norm + 1e-6) when
        that is below 1. The norm accumulates in float64 so that it does not depend on how a
        reduction is split across threads (K = 1 and K = 8 give the same bits)."""
        if not any(c > 0 for c in grad_clip):
            return
        norms = torch.linalg.vector_norm(self.grad, dim=1, dtype=torch.float64)
        limit = torch.tensor(grad_clip, dtype=torch.float64, device=norms.device)
        coef = torch.where(limit > 0, (limit / (norms + 1e-6)).clamp(max=1.0), torch.ones_like(norms))
        self.grad.mul_(coef.to(torch.float32).unsqueeze(1))

    def _adamw(self, hyper: Sequence[dict]) -> None:
        """torch.optim.AdamW's single-tensor update, each member's scalars as a column."""
        group0 = [h[0] for h in hyper]
        beta1 = [g["betas"][0] for g in group0]
        beta2 = [g["betas"][1] for g in group0]
        for gi, (start, end) in enumerate(self.layout.groups):  # decoupled weight decay
            decay = [1.0 - h[gi]["lr"] * h[gi]["weight_decay"] for h in hyper]
            if any(d != 1.0 for d in decay):
                self.flat[:, start:end].mul_(self._column(decay))
        self.exp_avg.lerp_(self.grad, self._column([1.0 - b for b in beta1]))
        self.exp_avg_sq.mul_(self._column(beta2)).add_(self.grad.square().mul_(self._column([1.0 - b for b in beta2])))
        bc2_sqrt = [math.sqrt(1.0 - b**s) for b, s in zip(beta2, self.steps)]
        step_size = [g["lr"] / (1.0 - b**s) for g, b, s in zip(group0, beta1, self.steps)]
        denom = self.exp_avg_sq.sqrt().div_(self._column(bc2_sqrt)).add_(self._column([g["eps"] for g in group0]))
        self.flat.addcdiv_(self.exp_avg * self._column([-s for s in step_size]), denom)

    def _fused_adamw(self, hyper: Sequence[dict]) -> None:
        """torch's fused AdamW kernel on the members' rows: one call per param group and set of
        members with the same settings (one call for the seeds of one configuration), each row
        its own tensor in the call, with its own step count."""
        calls: dict[tuple, list[int]] = {}
        for k, groups in enumerate(hyper):
            for gi, g in enumerate(groups):
                calls.setdefault((g["lr"], *g["betas"], g["eps"], g["weight_decay"], gi), []).append(k)
        for (lr, beta1, beta2, eps, weight_decay, gi), rows in calls.items():
            start, end = self.layout.groups[gi]
            torch_adamw.adamw(
                [self.flat[k, start:end] for k in rows],
                [self.grad[k, start:end] for k in rows],
                [self.exp_avg[k, start:end] for k in rows],
                [self.exp_avg_sq[k, start:end] for k in rows],
                [],
                # step counts before this step (the kernel adds the 1), one host-to-device copy
                list(torch.tensor([float(self.steps[k] - 1) for k in rows], device=self.flat.device).unbind()),
                fused=True,
                amsgrad=False,
                beta1=beta1,
                beta2=beta2,
                lr=lr,
                weight_decay=weight_decay,
                eps=eps,
                maximize=False,
            )
