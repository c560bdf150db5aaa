"""Data-constrained scaling (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models",
arXiv 2305.16264, App. B eq. 16-20; constants per docs/reference.md §8 [S ×2]).

Repeated tokens are worth less than fresh ones. With U unique tokens trained for D tokens
(R_D = D/U − 1 repetitions), the effective data is::

    D' = U + U·R*_D·(1 − exp(−R_D / R*_D))                                   (eq. 16-17)

which saturates at (1 + R*_D)·U = 16.39·U. Parameters in excess of what U can feed decay the same
way with U_N = min(N, N_opt(U)) and R_N = N/U_N − 1::

    N' = U_N + U_N·R*_N·(1 − exp(−R_N / R*_N))

and the loss is the Chinchilla form on the effective quantities, L = E + A/N'^α + B/D'^β,
fitted on C4 with α = β. Here N_opt(U) is the compute-optimal size for U tokens under the base law,
from αA/N^α = βB/D^β (with α = β: N = (A/B)^(1/α)·D, i.e. D/N = 19.6, docs/reference.md §8 G² = 0.05099).

:func:`optimal` minimises L(N, C/(kN), U) over N at fixed compute C: a 0.5-decade grid over
±6 decades around the unconstrained optimum, then golden-section search in log N between the best
grid point's neighbours (vectorised over budgets, numpy only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scalecalc import solve
from scalecalc.errors import UsageError

# Muennighoff et al. 2023, C4 fit (docs/reference.md §8): A = e^a, B = e^b, E = e^e, alpha = beta.
a, b, e = 6.255414, 7.3049974, 0.6254804
A, B, E = math.exp(a), math.exp(b), math.exp(e)  # 520.8, 1487.7, 1.869
alpha = beta = 0.3526596
RD_STAR = 15.387756  # R*_D: repetitions at which repeated data has decayed by 1/e
RN_STAR = 5.309743  # R*_N: the same for excess parameters

DIMINISHING_EPOCHS = 4.0  # Muennighoff et al.: up to ~4 epochs is almost as good as new data
SATURATED_EPOCHS = 16.0  # beyond ~16 epochs extra repetition is nearly worthless (D' saturates)

_GRID_DECADES, _GRID_POINTS, _GOLDEN_STEPS = 6.0, 25, 55


@dataclass(frozen=True)
class DataConstrainedPlan:
    """Loss-minimising allocation of compute C with U unique tokens (arrays over budgets).

    Attributes
    ----------
    compute, unique_tokens : ndarray
        C (FLOPs) and U (tokens).
    params, tokens : ndarray
        Optimal N and total training tokens D = C/(k·N) (repeats included).
    epochs : ndarray
        D / U.
    effective_tokens, effective_params : ndarray
        D' and N' (eq. 16-20).
    loss : ndarray
        L(N, D, U), nats/token (C4).
    params_unconstrained, tokens_unconstrained, loss_unconstrained : ndarray
        The optimum and loss with unlimited unique data (the Chinchilla closed form, α = β).
    loss_limit : ndarray
        The loss no budget can beat with U unique tokens: E + A/((1 + R*_N)·N_opt(U))^α +
        B/((1 + R*_D)·U)^β, where both repetition terms have saturated.
    warnings : tuple[tuple[str, ...], ...]
        Per budget (flattened order): repetition warnings past 4 and 16 epochs.
    """

    compute: np.ndarray
    unique_tokens: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    epochs: np.ndarray
    effective_tokens: np.ndarray
    effective_params: np.ndarray
    loss: np.ndarray
    params_unconstrained: np.ndarray
    tokens_unconstrained: np.ndarray
    loss_unconstrained: np.ndarray
    loss_limit: np.ndarray
    warnings: tuple = ()


def _decay(U, R, R_star):
    # U + U·R*·(1 − e^(−R/R*)), written with expm1 for accuracy at small R.
    return U - U * R_star * np.expm1(-R / R_star)


def effective_data(D, U) -> np.ndarray:
    """Effective data D' in tokens (Muennighoff et al. 2023 eq. 16-17).

    D is total training tokens, U unique tokens; D ≤ U means no repetition and D' = D.
    """
    D, U = np.asarray(D, dtype=float), np.asarray(U, dtype=float)
    U_D = np.minimum(D, U)
    return _decay(U_D, D / U_D - 1.0, RD_STAR)


def params_for_data(D) -> np.ndarray:
    """Compute-optimal parameters for D tokens under the base law: N = (αA D^β/(βB))^(1/α)."""
    D = np.asarray(D, dtype=float)
    return np.exp((np.log(alpha * A / (beta * B)) + beta * np.log(D)) / alpha)


def effective_params(N, U_N) -> np.ndarray:
    """Effective parameters N' (Muennighoff et al. 2023 eq. 19-20).

    U_N is the number of parameters the unique data can usefully feed (see :func:`loss`);
    N ≤ U_N gives N' = N.
    """
    N, U_N = np.asarray(N, dtype=float), np.asarray(U_N, dtype=float)
    U_N = np.minimum(N, U_N)
    return _decay(U_N, N / U_N - 1.0, RN_STAR)


def loss(N, D, U) -> np.ndarray:
    """L = E + A/N'^α + B/D'^β in nats/token (C4), with U_N = min(N, N_opt(min(D, U)))."""
    N, D, U = (np.asarray(x, dtype=float) for x in (N, D, U))
    D_eff = effective_data(D, U)
    N_eff = effective_params(N, params_for_data(np.minimum(D, U)))
    return E + A * np.exp(-alpha * np.log(N_eff)) + B * np.exp(-beta * np.log(D_eff))


def loss_limit(U) -> np.ndarray:
    """Lowest loss reachable with U unique tokens at any compute: N' and D' both saturated."""
    U = np.asarray(U, dtype=float)
    N_sat = (1.0 + RN_STAR) * params_for_data(U)
    D_sat = (1.0 + RD_STAR) * U
    return E + A * np.exp(-alpha * np.log(N_sat)) + B * np.exp(-beta * np.log(D_sat))


def unconstrained_optimum(C, k: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Chinchilla closed form (Hoffmann et al. 2022 eq. 4) for the base law: N* = G·(C/k)^a,
    a = β/(α+β), G = (αA/(βB))^(1/(α+β)); with α = β, D*/N* = 19.6."""
    C = np.asarray(C, dtype=float)
    G = (alpha * A / (beta * B)) ** (1.0 / (alpha + beta))
    N = G * np.exp(beta / (alpha + beta) * np.log(C / k))
    return N, C / (k * N)


def _objective(logN, logC_k, U):
    N = np.exp(logN)
    return loss(N, np.exp(logC_k - logN), U)


def _minimise(logC_k, U, center):
    # Coarse grid first: the penalty terms make L(N) flat-bottomed when data is scarce, so a
    # bracket from the grid is safer than trusting unimodality over 12 decades.
    offsets = np.linspace(-_GRID_DECADES, _GRID_DECADES, _GRID_POINTS) * math.log(10.0)
    grid = center[:, None] + offsets[None, :]
    values = _objective(grid, logC_k[:, None], U[:, None])
    best = np.argmin(values, axis=1)
    step = offsets[1] - offsets[0]
    lo, hi = grid[np.arange(len(best)), best] - step, grid[np.arange(len(best)), best] + step
    x = solve.golden_section(lambda v: _objective(v, logC_k, U), lo, hi, _GOLDEN_STEPS)
    return x, best


def _warnings(epochs, gap) -> tuple:
    out = []
    for ep, g in zip(np.ravel(epochs), np.ravel(gap)):
        notes = []
        if ep > SATURATED_EPOCHS:
            notes.append(
                f"{ep:.1f} epochs over the unique data: past {SATURATED_EPOCHS:g}, "
                "repeated data is nearly worthless (D' saturates at 16.4x the unique "
                "tokens)"
            )
        elif ep > DIMINISHING_EPOCHS:
            notes.append(
                f"{ep:.1f} epochs over the unique data: past {DIMINISHING_EPOCHS:g}, repetition has diminishing returns"
            )
        if g < 1e-3:
            notes.append(
                "the loss is within 0.001 nats of the lowest loss these unique tokens "
                "allow; more compute will not lower it, more unique tokens will"
            )
        out.append(tuple(notes))
    return tuple(out)


def optimal(C, U, k: float = 6.0) -> DataConstrainedPlan:
    """Loss-minimising N and D = C/(kN) for compute C (FLOPs) and U unique tokens.

    Parameters
    ----------
    C : float or array
        Training compute in FLOPs, C = k·N·D.
    U : float or array
        Unique tokens available; broadcasts with C.
    k : float
        FLOPs per parameter per token (6).

    Returns
    -------
    DataConstrainedPlan
        Arrays with the broadcast shape of C and U.
    """
    C, U = (np.asarray(x, dtype=float) for x in (C, U))
    for value, flag in ((C, "--compute"), (U, "--unique-tokens")):
        if not np.all(np.isfinite(value) & (value > 0)):
            raise UsageError(f"{flag}: {value} must be a finite number greater than zero")
    C, U = np.broadcast_arrays(C, U)
    shape = C.shape
    C1, U1 = C.ravel(), U.ravel()
    N_unc, D_unc = unconstrained_optimum(C1, k)
    logN, _ = _minimise(np.log(C1 / k), U1, np.log(N_unc))
    N = np.exp(logN)
    D = C1 / (k * N)
    epochs = D / U1
    L, limit = loss(N, D, U1), loss_limit(U1)
    shaped = lambda x: x.reshape(shape)  # noqa: E731
    return DataConstrainedPlan(
        compute=C,
        unique_tokens=U,
        params=shaped(N),
        tokens=shaped(D),
        epochs=shaped(epochs),
        effective_tokens=shaped(effective_data(D, U1)),
        effective_params=shaped(effective_params(N, params_for_data(np.minimum(D, U1)))),
        loss=shaped(L),
        params_unconstrained=shaped(N_unc),
        tokens_unconstrained=shaped(D_unc),
        loss_unconstrained=shaped(E + A * N_unc**-alpha + B * D_unc**-beta),
        loss_limit=shaped(limit),
        warnings=_warnings(epochs, L - limit),
    )
