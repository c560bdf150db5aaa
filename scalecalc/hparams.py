"""Hyperparameter rules: batch size, peak learning rate, warmup, AdamW β2, and the critical batch.

Three published rules, each a function of the quantity its paper fitted on:

- ``porian2024`` (Porian et al. 2024, arXiv 2406.19146, Fig. 3 fits) -- of parameters N:
  lr* = 3.7·N^-0.36, B* = 0.00037·N^0.703 sequences of 2048 tokens (= 0.7576·N^0.703 tokens),
  warmup = N tokens, β2 = 0.99 at batches of at most 128 sequences, else 0.95.
  These constants come from two consistent secondary sources, not the paper text
  (docs/reference.md §5.4 [S]); every result from this rule says so.
- ``deepseek2024`` (Bi et al. 2024, DeepSeek LLM, arXiv 2401.02954, eq. 1) -- of compute C
  (C = M·D with M the non-embedding FLOPs/token of their eq. 2):
  η_opt = 0.3118·C^-0.1250, B_opt = 0.2920·C^0.3271 tokens; 2000 warmup steps and β2 = 0.95 (Table 2).
- ``kaplan2020`` (Kaplan et al. 2020, arXiv 2001.08361) -- LR(N) = 0.003239 − 0.0001395·ln N
  (eq. D.1, natural log: docs/reference.md §1.8), batch = the critical batch B_crit(L) = B*/L^(1/α_B)
  (eq. 5.3; training at B_crit is the paper's time/compute compromise, §5.1), 3000 warmup steps.

For every rule, given the predicted loss L, :func:`recommend` also reports Kaplan's critical batch and
what training at the recommended batch B costs against the minimum (eq. 5.4, 5.5):
S/S_min = 1 + B_crit/B steps and C/C_min = 1 + B/B_crit compute. B_crit was fitted on WebText2 in
nats/token; applied to another law's loss it is an order-of-magnitude guide.

Kaplan's B* differs within the paper: 2e8 tokens in eq. 1.4 / §5.1, 2.1e8 in Table 5 (docs/reference.md §12
item 4). We default to Table 5's 2.1e8 (the fitted value); pass ``Bstar=2e8`` for the text's figure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from scalecalc.errors import UnknownName, UsageError

KAPLAN_BSTAR = 2.1e8  # tokens, Kaplan et al. 2020 Table 5 (eq. 1.4 text rounds to 2e8)
KAPLAN_ALPHA_B = 0.21  # Kaplan et al. 2020 Table 5
PORIAN_SEQ_LEN = 2048  # tokens per sequence in Porian et al.'s batch-size fit
PORIAN_SMALL_BATCH = 128  # sequences; at or below this β2 = 0.95 is suboptimal (docs/reference.md §5.4)


@dataclass(frozen=True)
class BatchCost:
    """Cost of training at batch B relative to the ideal limits (Kaplan et al. 2020 eq. 5.4, 5.5).

    Attributes
    ----------
    steps_ratio : ndarray
        S / S_min = 1 + B_crit / B (optimizer steps relative to the infinite-batch minimum).
    compute_ratio : ndarray
        C / C_min = 1 + B / B_crit (tokens, hence FLOPs, relative to the small-batch minimum).
    """

    steps_ratio: np.ndarray
    compute_ratio: np.ndarray


def critical_batch(L, Bstar: float = KAPLAN_BSTAR, alpha_B: float = KAPLAN_ALPHA_B) -> np.ndarray:
    """Critical batch size B_crit(L) = B* / L^(1/α_B) in tokens (Kaplan et al. 2020 eq. 5.3, Table 5).

    Parameters
    ----------
    L : float or array
        Loss in nats/token (> 0).
    Bstar : float
        Tokens; 2.1e8 (Table 5) by default, 2e8 in the paper's eq. 1.4.
    alpha_B : float
        Exponent, 0.21.
    """
    L = np.asarray(L, dtype=float)
    if not np.all(L > 0):
        raise UsageError(f"critical batch: loss {L} must be positive (nats/token)")
    return Bstar * np.exp(-np.log(L) / alpha_B)


def batch_cost(B, B_crit) -> BatchCost:
    """Steps and compute of training at batch ``B`` (tokens) relative to their minima.

    Kaplan et al. 2020 eq. 5.4/5.5 (from McCandlish et al. 2018): S/S_min = 1 + B_crit/B,
    C/C_min = 1 + B/B_crit; at B = B_crit both are 2.
    """
    x = np.asarray(B_crit, dtype=float) / np.asarray(B, dtype=float)
    return BatchCost(steps_ratio=1.0 + x, compute_ratio=1.0 + 1.0 / x)


# -- the rules ------------------------------------------------------------------------------------


def porian2024(N) -> dict:
    """Porian et al. 2024 rules as functions of parameters N (their "standard" N, head included).

    Returns a dict of arrays: ``peak_lr`` = 3.7·N^-0.36; ``batch_tokens`` = 0.00037·N^0.703
    sequences × 2048 tokens; ``batch_sequences_2048``; ``warmup_tokens`` = N; ``beta2`` = 0.99 where
    the batch is at most 128 sequences of 2048 tokens, else 0.95.
    Source: docs/reference.md §5.4 (two consistent secondary sources, [S]); fitted on 2.5e7 < N < 1.1e8.
    """
    N = np.asarray(N, dtype=float)
    seqs = 0.00037 * np.exp(0.703 * np.log(N))  # sequences of 2048 tokens
    return {
        "peak_lr": 3.7 * np.exp(-0.36 * np.log(N)),
        "batch_sequences_2048": seqs,
        "batch_tokens": seqs * PORIAN_SEQ_LEN,
        "warmup_tokens": N.copy(),
        "beta2": np.where(seqs <= PORIAN_SMALL_BATCH, 0.99, 0.95),
    }


def deepseek2024(C) -> dict:
    """DeepSeek LLM eq. 1: η_opt = 0.3118·C^-0.1250, B_opt = 0.2920·C^0.3271 tokens.

    C is compute in FLOPs under DeepSeek's convention C = M·D (M = non-embedding FLOPs/token incl.
    attention, eq. 2). Fitted on 1e17-2e19 FLOPs, validated at 1e20. Warmup 2000 steps and
    AdamW β2 = 0.95 are the paper's training setup (Table 2, §2.3), not fitted laws.
    """
    C = np.asarray(C, dtype=float)
    return {
        "peak_lr": 0.3118 * np.exp(-0.1250 * np.log(C)),
        "batch_tokens": 0.2920 * np.exp(0.3271 * np.log(C)),
        "warmup_steps": np.full_like(C, 2000.0),
        "beta2": np.full_like(C, 0.95),
    }


def kaplan_lr(N) -> np.ndarray:
    """Kaplan et al. 2020 eq. D.1: LR(N) = 0.003239 − 0.0001395·ln N (N non-embedding params).

    NaN where the rule is not positive (N ≳ 1.2e10, docs/reference.md §1.8).
    """
    lr = 0.003239 - 0.0001395 * np.log(np.asarray(N, dtype=float))
    return np.where(lr > 0, lr, np.nan)


def kaplan2020(N, L=None, Bstar: float = KAPLAN_BSTAR, alpha_B: float = KAPLAN_ALPHA_B) -> dict:
    """Kaplan et al. 2020 rules: LR(N) (eq. D.1) and the critical batch B_crit(L) (eq. 5.3).

    N is non-embedding parameters. ``batch_tokens`` is B_crit(L) when the loss L (nats/token) is
    given, else None. ``peak_lr`` is NaN where eq. D.1 is not positive (N ≳ 1.2e10; the paper
    notes the rule fails there). Warmup: 3000 steps (§2.2 training setup).
    """
    N = np.asarray(N, dtype=float)
    out = {"peak_lr": kaplan_lr(N), "warmup_steps": np.full_like(N, 3000.0)}
    out["batch_tokens"] = None if L is None else critical_batch(L, Bstar, alpha_B)
    return out


@dataclass(frozen=True)
class Rule:
    """A named hyperparameter rule: which quantity it is a function of, and its citation."""

    name: str
    of: str  # "N" (parameters) or "C" (FLOPs)
    fn: Callable
    source: str
    needs_loss: bool = False
    notes: tuple = ()
    fitted: tuple | None = None  # (low, high) range of N or C the rule was fitted on


RULES: dict[str, Rule] = {
    "porian2024": Rule(
        "porian2024",
        "N",
        porian2024,
        "Porian et al. 2024, arXiv 2406.19146, Fig. 3 fits (lr, batch), warmup = N tokens, β2 rule",
        notes=("porian2024 constants are from secondary sources (docs/reference.md §5.4 [S])",),
        fitted=(2.5e7, 1.1e8),  # docs/reference.md §5.4, analysis.py fit range
    ),
    "deepseek2024": Rule(
        "deepseek2024",
        "C",
        deepseek2024,
        "Bi et al. 2024, DeepSeek LLM, arXiv 2401.02954, eq. 1 (η, B); Table 2 (warmup, β2)",
        notes=("deepseek2024 C is DeepSeek's C = M·D (M = non-embedding FLOPs/token with attention)",),
        fitted=(1e17, 2e19),  # DeepSeek §3.1
    ),
    "kaplan2020": Rule(
        "kaplan2020",
        "N",
        kaplan2020,
        "Kaplan et al. 2020, arXiv 2001.08361, eq. D.1 (LR), eq. 5.3 + Table 5 (B_crit)",
        needs_loss=True,
        notes=("kaplan2020 LR(N) is for non-embedding N and stops being positive near N = 1.2e10",),
    ),
}


def get_rule(name: str, option: str = "--hparams") -> Rule:
    """The rule called ``name`` (case-insensitive); else :class:`UnknownName` naming ``option``."""
    rule = RULES.get(str(name).lower())
    if rule is None:
        raise UnknownName("hyperparameter rule", str(name), RULES, option)
    return rule


@dataclass(frozen=True)
class Hyperparameters:
    """Recommended training hyperparameters for one or many budgets (arrays broadcast together).

    Attributes
    ----------
    rule, source : str
        Rule name and citation.
    batch_tokens, batch_sequences : ndarray
        Batch size in tokens, and in sequences of ``seq_len`` tokens (whole number ≥ 1).
    seq_len : int
        Tokens per sequence.
    peak_lr : ndarray
        Peak learning rate (NaN where the rule gives none).
    warmup_tokens, warmup_steps : ndarray
        Linear warmup length (NaN where the rule gives none).
    beta2 : ndarray or None
        AdamW β2 (None where the rule gives none).
    steps : ndarray or None
        Optimizer steps = tokens / batch_tokens (None without ``tokens``).
    critical_batch_tokens : ndarray or None
        Kaplan's B_crit(L) at the predicted loss (None without L).
    steps_ratio, compute_ratio : ndarray or None
        S/S_min and C/C_min at the recommended batch (Kaplan eq. 5.4, 5.5).
    min_steps, steps_at_critical, tokens_at_critical : ndarray or None
        S_min = steps / steps_ratio; training at B_crit takes 2·S_min steps and 2·E_min tokens
        (E_min = tokens / compute_ratio) to the same loss (Kaplan §5.1).
    notes : tuple[str, ...]
        Caveats to print with the result.
    """

    rule: str
    source: str
    seq_len: int
    batch_tokens: np.ndarray
    batch_sequences: np.ndarray
    peak_lr: np.ndarray
    warmup_tokens: np.ndarray
    warmup_steps: np.ndarray
    beta2: np.ndarray | None = None
    steps: np.ndarray | None = None
    critical_batch_tokens: np.ndarray | None = None
    steps_ratio: np.ndarray | None = None
    compute_ratio: np.ndarray | None = None
    min_steps: np.ndarray | None = None
    steps_at_critical: np.ndarray | None = None
    tokens_at_critical: np.ndarray | None = None
    notes: tuple = ()


def recommend(
    rule: str | Rule,
    *,
    N=None,
    C=None,
    L=None,
    seq_len: int = 2048,
    tokens=None,
    Bstar: float = KAPLAN_BSTAR,
) -> Hyperparameters:
    """Apply a named rule and add steps and Kaplan's critical-batch analysis.

    Parameters
    ----------
    rule : str or Rule
        ``"porian2024"``, ``"deepseek2024"`` or ``"kaplan2020"``.
    N : float or array, optional
        Parameters (needed by rules of N).
    C : float or array, optional
        Training FLOPs (needed by rules of C).
    L : float or array, optional
        Predicted loss, nats/token (needed by kaplan2020; enables the critical-batch fields).
    seq_len : int
        Tokens per sequence, to express the batch in sequences.
    tokens : float or array, optional
        Training tokens D, to give steps and warmup in steps.
    Bstar : float
        Kaplan's B* in tokens (default Table 5's 2.1e8).
    """
    rule = get_rule(rule) if isinstance(rule, str) else rule
    arg = N if rule.of == "N" else C
    if arg is None:
        flag = "--params" if rule.of == "N" else "--compute"
        raise UsageError(f"--hparams {rule.name} needs {flag} (it is a function of {rule.of})")
    if rule.needs_loss and L is None:
        raise UsageError(
            f"--hparams {rule.name} needs a predicted loss; use a law with a loss formula or --hparams porian2024"
        )
    values = rule.fn(arg, L=L, Bstar=Bstar) if rule.needs_loss else rule.fn(arg)
    return from_values(
        rule.name,
        rule.source,
        values,
        seq_len=seq_len,
        tokens=tokens,
        L=L,
        Bstar=Bstar,
        notes=rule.notes + _extrapolation(rule, arg),
    )


def _extrapolation(rule: Rule, arg) -> tuple:
    # Say how far outside the fitted range a rule is applied, in decades (largest over budgets).
    if rule.fitted is None:
        return ()
    logs = np.log10(np.asarray(arg, dtype=float))
    lo, hi = np.log10(rule.fitted[0]), np.log10(rule.fitted[1])
    decades = float(np.max(np.maximum(lo - logs, logs - hi)))
    if decades <= 0:
        return ()
    return (
        f"{rule.name} is extrapolated {decades:.1f} decades beyond the {rule.of} range it was "
        f"fitted on ({rule.fitted[0]:.2g} to {rule.fitted[1]:.2g})",
    )


def from_values(
    name: str,
    source: str,
    values: dict,
    *,
    seq_len: int = 2048,
    tokens=None,
    L=None,
    Bstar: float = KAPLAN_BSTAR,
    notes: tuple = (),
) -> Hyperparameters:
    """Build :class:`Hyperparameters` from rule outputs (also for a law file's own formulas).

    ``values`` needs ``batch_tokens`` and may hold ``peak_lr``, ``warmup_tokens`` or
    ``warmup_steps``, and ``beta2``; arrays broadcast with ``tokens`` and ``L``.
    """
    if seq_len <= 0:
        raise UsageError(f"--seq-len: {seq_len} must be a positive number of tokens")
    # Every field has the broadcast shape of all inputs (rules of N, tokens and L per budget).
    present = [v for v in (*values.values(), tokens, L) if v is not None]
    shape = np.broadcast_shapes(*(np.shape(v) for v in present))
    full = lambda x: np.broadcast_to(np.asarray(x, dtype=float), shape).copy()  # noqa: E731
    batch = full(values["batch_tokens"])
    lr = full(values.get("peak_lr", np.nan))
    if "warmup_tokens" in values:
        warm_tokens = full(values["warmup_tokens"])
        warm_steps = warm_tokens / batch
    else:
        warm_steps = full(values.get("warmup_steps", np.nan))
        warm_tokens = warm_steps * batch
    tokens = None if tokens is None else full(tokens)
    added = list(notes)
    if np.any(np.isnan(lr)) and "peak_lr" in values:
        added.append(f"{name}: no positive learning rate at these sizes")
    steps = None if tokens is None else tokens / batch
    if steps is not None and np.any(warm_steps > steps):
        added.append(f"{name}: warmup is longer than training at some budgets")
    extra = {}
    if L is not None:
        extra = _critical_fields(batch, L, steps, tokens, Bstar)
        added.append(
            "critical batch from Kaplan et al. 2020 (WebText2 fit, Table 5); on another "
            "law's loss it is an order-of-magnitude guide"
        )
    beta2 = values.get("beta2")
    return Hyperparameters(
        rule=name,
        source=source,
        seq_len=int(seq_len),
        batch_tokens=batch,
        batch_sequences=np.maximum(np.round(batch / seq_len), 1.0),
        peak_lr=lr,
        warmup_tokens=warm_tokens,
        warmup_steps=warm_steps,
        beta2=None if beta2 is None else full(beta2),
        steps=steps,
        notes=tuple(added),
        **extra,
    )


def _critical_fields(batch, L, steps, tokens, Bstar) -> dict:
    # Kaplan §5.1: S = S_min(1 + B_crit/B), E = E_min(1 + B/B_crit); at B_crit: 2·S_min, 2·E_min.
    b_crit = critical_batch(L, Bstar)
    cost = batch_cost(batch, b_crit)
    out = {
        "critical_batch_tokens": b_crit,
        "steps_ratio": cost.steps_ratio,
        "compute_ratio": cost.compute_ratio,
    }
    if steps is not None:
        min_steps = steps / cost.steps_ratio
        out["min_steps"] = min_steps
        out["steps_at_critical"] = 2.0 * min_steps
        out["tokens_at_critical"] = 2.0 * np.asarray(tokens, dtype=float) / cost.compute_ratio
    return out
