"""Inference-aware optimum (Sardana et al. 2024, "Beyond Chinchilla-Optimal", arXiv 2401.00448).

A model that will serve T inference tokens costs k·N·D_tr FLOPs to train and about 2·N·T to serve
(Kaplan et al. 2020 §2.1: 2N FLOPs per token forward). Sardana et al. minimise the total at a fixed
quality, the loss ℓ of the compute-optimal model::

    minimise  w_tr·k·N·D_tr + w_inf·2·N·T     subject to  L(N, D_tr) = E + A/N^α + B/D_tr^β = ℓ

with w = 1 (FLOPs), w = 1/MFU (their cost version: hardware time), or w = USD per model FLOP.
The constraint gives D_tr(N) = (B / (ℓ − E − A/N^α))^(1/β), defined for A/N^α < ℓ − E.
With q = (ℓ − E − A/N^α)/(ℓ − E) ∈ (0, 1) the share of the reducible loss left to data,
N = (A / ((ℓ − E)(1 − q)))^(1/α) and D_tr = (B / ((ℓ − E) q))^(1/β), and the stationarity
condition of the objective in log N is::

    h(q) = k·(1 − α(1 − q)/(β q)) + ρ·k_inf·T / D_tr(q) = 0,      ρ = w_inf / w_tr,

which is strictly increasing in q, tends to −∞ as q → 0 and equals ρ·k_inf·T ≥ 0 at the
compute-optimal point q0 = α/(α+β) (where αA/N^α = βB/D^β). So the optimum is the unique root on
(0, q0], found by vectorised bisection in log q (no closed form for T > 0, Sardana et al. §2).
At T = 0 it is the compute-optimal point at loss ℓ:
N0 = (A(1 + α/β)/(ℓ − E))^(1/α), D0 = (B(1 + β/α)/(ℓ − E))^(1/β).
The condition is the note's ε_N/ε_D = 1 + D_inf/(3·D_tr) for k = 6, k_inf = 2, ρ = 1 (docs/reference.md §8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from scalecalc import solve
from scalecalc.errors import InfeasibleTarget, UsageError

SARDANA_MAX_TOKENS_PER_PARAM = 1e4  # Sardana et al. validated loss trends up to ~10,000 tokens/param
_BISECT_STEPS = 100


@dataclass(frozen=True)
class InferenceOptimum:
    """The inference-aware model against the compute-optimal one at the same loss (arrays).

    Attributes
    ----------
    loss, inference_tokens : ndarray
        Target loss ℓ (nats/token) and lifetime inference tokens T.
    params, train_tokens, tokens_per_param : ndarray
        The inference-aware N, D_tr and D_tr/N.
    train_flops, inference_flops, total_flops : ndarray
        k·N·D_tr, k_inf·N·T and their sum.
    cost : ndarray
        The objective, in ``objective`` units (FLOPs, MFU-weighted FLOPs, or USD).
    params_0, train_tokens_0, train_flops_0, inference_flops_0, total_flops_0, cost_0 : ndarray
        The same for the compute-optimal model at loss ℓ (the baseline).
    params_ratio, tokens_ratio : ndarray
        N / N0 and D_tr / D0.
    cost_saving : ndarray
        1 − cost / cost_0, the share of the baseline's total saved (≥ 0).
    objective : str
        ``"flops"``, ``"mfu_weighted_flops"`` or ``"usd"``.
    warnings : tuple[str, ...]
        Caveats (e.g. tokens/param beyond the range Sardana et al. tested).
    """

    loss: np.ndarray
    inference_tokens: np.ndarray
    params: np.ndarray
    train_tokens: np.ndarray
    tokens_per_param: np.ndarray
    train_flops: np.ndarray
    inference_flops: np.ndarray
    total_flops: np.ndarray
    cost: np.ndarray
    params_0: np.ndarray
    train_tokens_0: np.ndarray
    train_flops_0: np.ndarray
    inference_flops_0: np.ndarray
    total_flops_0: np.ndarray
    cost_0: np.ndarray
    params_ratio: np.ndarray
    tokens_ratio: np.ndarray
    cost_saving: np.ndarray
    objective: str
    warnings: tuple = ()


def _constants(law: Mapping) -> tuple[float, float, float, float, float]:
    try:
        E, A, B, alpha, beta = (float(law[k]) for k in ("E", "A", "B", "alpha", "beta"))
        return E, A, B, alpha, beta
    except KeyError as missing:
        raise UsageError(
            f"--inference-tokens needs a law of the form E + A/N**alpha + B/D**beta; constant {missing} is missing"
        ) from None


def _reducible(E: float, loss) -> np.ndarray:
    s = np.asarray(loss, dtype=float) - E
    if not np.all(s > 0):
        raise InfeasibleTarget(f"--loss: target {loss} is at or below the law's floor E = {E:.4g}; aim higher")
    return s


def compute_optimal_at_loss(law: Mapping, loss, k: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """(N0, D0): the least-compute (C = k·N·D) model reaching ``loss`` under L = E + A/N^α + B/D^β.

    From αA/N^α = βB/D^β (Hoffmann et al. 2022 eq. 4 optimality) and the loss constraint:
    N0 = (A(1 + α/β)/(ℓ − E))^(1/α), D0 = (B(1 + β/α)/(ℓ − E))^(1/β). ``k`` does not move the
    optimum; it is accepted for symmetry.
    """
    E, A, B, alpha, beta = _constants(law)
    s = _reducible(E, loss)
    N0 = np.exp((np.log(A * (1 + alpha / beta)) - np.log(s)) / alpha)
    D0 = np.exp((np.log(B * (1 + beta / alpha)) - np.log(s)) / beta)
    return N0, D0


def _weights(mfu_train, mfu_inference, usd_per_flop_train, usd_per_flop_inference):
    # Only the ratio rho = w_inf / w_tr moves the optimum; the weights also scale the reported cost.
    if usd_per_flop_train is not None or usd_per_flop_inference is not None:
        if usd_per_flop_train is None or usd_per_flop_inference is None:
            raise UsageError("give both training and inference prices for a dollar objective")
        return float(usd_per_flop_train), float(usd_per_flop_inference), "usd"
    if mfu_train is None and mfu_inference is None:
        return 1.0, 1.0, "flops"
    mt = 1.0 if mfu_train is None else float(mfu_train)
    mi = 1.0 if mfu_inference is None else float(mfu_inference)
    for value, flag in ((mt, "--mfu"), (mi, "--inference-mfu")):
        if not 0 < value <= 1:
            raise UsageError(f"{flag}: {value} must be in (0, 1]; typical values are 0.3 to 0.6")
    return 1.0 / mt, 1.0 / mi, "mfu_weighted_flops"


def _solve_q(alpha, beta, B, s, rho_T, k):
    """Root of h(q) on (0, q0] by bisection in log q; rho_T = ρ·k_inf·T (array)."""
    q0 = alpha / (alpha + beta)

    def h(x):  # increasing in x = log q: very negative as q -> 0, rho_T / D_tr >= 0 at q0
        inv_D = np.exp((np.log(s) + x - np.log(B)) / beta)  # 1 / D_tr(q)
        return k * (1.0 - alpha * (1.0 - np.exp(x)) / (beta * np.exp(x))) + rho_T * inv_D

    x = solve.bisect_increasing(h, np.zeros(np.shape(rho_T)), np.log(1e-300), np.log(q0), _BISECT_STEPS)
    return np.where(rho_T > 0, np.exp(x), q0)


def inference_optimal(
    law: Mapping,
    loss,
    inference_tokens,
    *,
    k: float = 6.0,
    k_inference: float = 2.0,
    mfu_train: float | None = None,
    mfu_inference: float | None = None,
    usd_per_flop_train: float | None = None,
    usd_per_flop_inference: float | None = None,
) -> InferenceOptimum:
    """Training + inference cost-minimising (N, D_tr) at loss ℓ (Sardana et al. 2024).

    Parameters
    ----------
    law : mapping
        Constants ``E, A, B, alpha, beta`` of L(N, D) = E + A/N^α + B/D^β (nats/token).
    loss : float or array
        Target loss ℓ, usually the compute-optimal model's predicted loss at the budget.
    inference_tokens : float or array
        Lifetime inference tokens T (≥ 0); broadcasts with ``loss``.
    k, k_inference : float
        Training and inference FLOPs per parameter per token (6 and 2).
    mfu_train, mfu_inference : float, optional
        Sardana et al.'s cost version: each FLOP is weighted by 1/MFU.
    usd_per_flop_train, usd_per_flop_inference : float, optional
        Dollar objective: USD per model FLOP for each phase, e.g. from
        :func:`scalecalc.hardware.usd_per_flop` (price / (3600·peak·MFU)). Overrides the MFUs.

    Returns
    -------
    InferenceOptimum
    """
    E, A, B, alpha, beta = _constants(law)
    s = _reducible(E, loss)
    T = np.asarray(inference_tokens, dtype=float)
    if not np.all(np.isfinite(T) & (T >= 0)):
        raise UsageError(f"--inference-tokens: {inference_tokens} must be a finite number >= 0")
    s, T = np.broadcast_arrays(s, T)
    w_tr, w_inf, objective = _weights(mfu_train, mfu_inference, usd_per_flop_train, usd_per_flop_inference)
    q = _solve_q(alpha, beta, B, s, (w_inf / w_tr) * k_inference * T, k)
    N = np.exp((np.log(A) - np.log(s) - np.log1p(-q)) / alpha)
    D = np.exp((np.log(B) - np.log(s) - np.log(q)) / beta)
    N0, D0 = compute_optimal_at_loss(law, s + E, k)
    train, infer = k * N * D, k_inference * N * T
    train0, infer0 = k * N0 * D0, k_inference * N0 * T
    cost, cost0 = w_tr * train + w_inf * infer, w_tr * train0 + w_inf * infer0
    warnings = []
    if np.any(D / N > SARDANA_MAX_TOKENS_PER_PARAM):
        warnings.append(
            "inference-aware tokens/param exceeds 10,000, beyond the range Sardana et al. 2024 "
            "validated the loss law on"
        )
    return InferenceOptimum(
        loss=s + E,
        inference_tokens=T,
        params=N,
        train_tokens=D,
        tokens_per_param=D / N,
        train_flops=train,
        inference_flops=infer,
        total_flops=train + infer,
        cost=cost,
        params_0=N0,
        train_tokens_0=D0,
        train_flops_0=train0,
        inference_flops_0=infer0,
        total_flops_0=train0 + infer0,
        cost_0=cost0,
        params_ratio=N / N0,
        tokens_ratio=D / D0,
        cost_saving=1.0 - cost / cost0,
        objective=objective,
        warnings=tuple(warnings),
    )
