"""Kaplan et al. 2020 laws in N, S and B: the forward model that estimation inverts.

Formulas (Kaplan et al. 2020, arXiv 2001.08361; docs/reference.md §1.3, §1.6, §1.7):

- L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S                       (eq 1.6 / 5.6)
- B_crit(L) = B* / L^(1/α_B)                                            (eq 1.4 / 5.3)
- S_min = S / (1 + B_crit(L)/B)                                          (eq 5.4)

L(N, S, B) is implicit in L because B_crit depends on L; :func:`loss_nsb` solves it per point.
The right-hand side L − (N_c/N)^α_N − (S_c (1 + B_crit(L)/B)/S)^α_S is strictly increasing in L
(B_crit falls as L grows), so the root is unique and bisection on ln L always converges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .curves import Curve, make_curve

#: Kaplan et al. 2020 Table 5 (summary of fitted values). With these, N = 1e8, S = 1e5, B = 2^19
#: gives L = 2.961, B_crit = 1.20e6 tokens, S_min = 3.05e4 (docs/reference.md §1.6 test vector).
KAPLAN_TABLE5 = {"N_c": 8.8e13, "alpha_N": 0.076, "S_c": 2.1e3, "alpha_S": 0.76, "Bstar": 2.1e8, "alpha_B": 0.21}


def loss_n(N, N_c: float, alpha_N: float):
    """Converged loss L(N) = (N_c/N)^α_N in nats/token (Kaplan eq 1.1), computed in log space."""
    return np.exp(alpha_N * (np.log(N_c) - np.log(N)))


def b_crit(L, Bstar: float, alpha_B: float):
    """Critical batch B_crit(L) = B*/L^(1/α_B) in tokens (Kaplan eq 1.4)."""
    return np.exp(np.log(Bstar) - np.log(L) / alpha_B)


def s_min(S, B, L, Bstar: float, alpha_B: float):
    """Minimum steps S_min = S/(1 + B_crit(L)/B) to reach loss L (Kaplan eq 5.4)."""
    return S / (1.0 + b_crit(L, Bstar, alpha_B) / B)


def loss_n_smin(N, Smin, N_c, alpha_N, S_c, alpha_S):
    """L(N, S_min) = (N_c/N)^α_N + (S_c/S_min)^α_S (Kaplan eq 1.6 / 5.6), nats/token."""
    return loss_n(N, N_c, alpha_N) + np.exp(alpha_S * (np.log(S_c) - np.log(Smin)))


def solve_ln_loss(ln_floor, ln_s_term, iterations: int = 60, tol: float = 1e-11):
    """Root x = ln L of e^x = e^(ln_floor) + e^(T(x)), T = ``ln_s_term``, vectorised.

    ``ln_s_term(x)`` returns (T, dT/dx): T = ln (S_c/S_min(L))^α_S at L = e^x, which falls as x
    grows (B_crit(L) falls), so f(x) = e^x − e^ln_floor − e^T is increasing and its root lies in
    [ln_floor, ln(e^ln_floor + e^T(ln_floor))] (at the upper end the S term is already no larger
    than the bracket assumed). Newton steps, replaced by bisection whenever they leave the
    shrinking bracket, converge in a handful of iterations.
    """
    lo = np.asarray(ln_floor, float)
    floor = np.exp(lo)
    hi = np.logaddexp(lo, ln_s_term(lo)[0])
    x = hi.copy()
    for _ in range(iterations):
        T, dT = ln_s_term(x)
        f = np.exp(x) - floor - np.exp(T)
        lo, hi = np.where(f < 0, x, lo), np.where(f < 0, hi, x)
        step = f / (np.exp(x) - np.exp(T) * dT)  # f' > 0 because dT <= 0
        new = x - step
        inside = (new >= lo) & (new <= hi)  # a converged step sits on the bracket end
        new = np.where(inside, new, 0.5 * (lo + hi))
        done = np.all(np.abs(new - x) <= tol * np.maximum(1.0, np.abs(x)))
        x = new
        if done:
            break
    return x


def loss_nsb(N, S, B, *, N_c, alpha_N, S_c, alpha_S, Bstar=None, alpha_B=None):
    """Solve L = L(N, S_min(S, B, L)) for L at steps S and batch B tokens (Kaplan eq 1.6, 5.4).

    Without ``Bstar`` the batch correction is dropped (S_min = S), the model the estimate falls
    back to when no batch-size sweep was run.
    """
    N, S, B = np.broadcast_arrays(*(np.asarray(x, float) for x in (N, S, B)))
    if Bstar is None:
        return loss_n_smin(N, S, N_c, alpha_N, S_c, alpha_S)
    ln_floor = alpha_N * (np.log(N_c) - np.log(N))
    lnS = np.log(S)

    def ln_s_term(x):  # ln (S_c/S_min)^α_S with S_min = S/(1 + B_crit(e^x)/B), and d/dx
        r = b_crit(np.exp(x), Bstar, alpha_B) / B
        return (alpha_S * (np.log(S_c) - lnS + np.log1p(r)), -alpha_S / alpha_B * r / (1.0 + r))

    return np.exp(solve_ln_loss(ln_floor, ln_s_term))


def frontier(N_c, alpha_N, S_c, alpha_S, Bstar, alpha_B) -> dict:
    """Compute-efficient frontier constants of Kaplan App. B (eq B.6-B.8).

    Returns α_C = 1/(1/α_S + 1/α_B + 1/α_N) and C_c = 6 N_c B* S_c (1 + α_N/α_S)^(1/α_S + 1/α_N)
    (α_S/α_N)^(1/α_S) in FLOPs (C = 6 N B S with N non-embedding). With Table 5 constants
    α_C = 0.0520 and C_c = 2.2e8 PF-days (docs/reference.md §1.7).
    """
    alpha_C = 1.0 / (1.0 / alpha_S + 1.0 / alpha_B + 1.0 / alpha_N)
    ln_C_c = (
        np.log(6.0 * N_c * Bstar * S_c)  # in logs: the powers overflow for tiny exponents
        + (1 / alpha_S + 1 / alpha_N) * np.log1p(alpha_N / alpha_S)
        + np.log(alpha_S / alpha_N) / alpha_S
    )
    with np.errstate(over="ignore"):
        return {"alpha_C": float(alpha_C), "C_c": float(np.exp(ln_C_c))}


def optimal_params(C, N_c, alpha_N, S_c, alpha_S, Bstar, alpha_B):
    """N(C) = N_c (C/C_c)^(α_C/α_N) (1 + α_N/α_S)^(1/α_N), Kaplan eq B.9 (non-embedding)."""
    fr = frontier(N_c, alpha_N, S_c, alpha_S, Bstar, alpha_B)
    return N_c * (C / fr["C_c"]) ** (fr["alpha_C"] / alpha_N) * (1 + alpha_N / alpha_S) ** (1 / alpha_N)


def synthetic_curves(
    constants: Mapping[str, float],
    sizes: Sequence[float],
    batches: Sequence[float],
    *,
    steps: Sequence[float] | np.ndarray,
    warmup_steps: int = 0,
    noise: float = 0.0,
    seed: int = 0,
    embedding_fraction: float = 0.2,
) -> list[Curve]:
    """Learning curves generated from Kaplan's L(N, S, B) with multiplicative Gaussian noise.

    One curve per (N, B) pair, evaluated at ``steps``. ``noise`` is the standard deviation of
    ln L per evaluation (0.01 is about the 0.02-nat seed-to-seed spread of Kaplan eq 4.4 at L ≈ 2).
    Used by the tests and for documenting what the estimator recovers.
    """
    rng = np.random.default_rng(seed)
    steps = np.asarray(steps, float)
    out = []
    for N in sizes:
        for B in batches:
            L = loss_nsb(
                N, steps, B, **{k: constants[k] for k in ("N_c", "alpha_N", "S_c", "alpha_S", "Bstar", "alpha_B")}
            )
            if noise:
                L = L * np.exp(noise * rng.standard_normal(L.shape))
            out.append(
                make_curve(f"synth-N{N:.3g}-B{B:.3g}", N, N / (1 - embedding_fraction), B, warmup_steps, steps, L)
            )
    return out
