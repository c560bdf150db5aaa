"""The prior law a sweep design simulates from: the Chinchilla form and its closed-form optimum.

L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022 eq. 2, docs/reference.md §2.2); under
C = 6 N D the loss-minimising allocation is N*(C) = G (C/6)^(β/(α+β)), D*(C) = C/(6 N*),
G = (α A / (β B))^(1/(α+β)) (docs/reference.md §2.2, §3.3). Everything is computed in logs
so that fitted constants far from the truth (a replicate that fails) give inf, not an overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalecalc.errors import UsageError

CHINCHILLA = ("E", "A", "B", "alpha", "beta")


@dataclass(frozen=True)
class Prior:
    """Chinchilla-form constants (L in nats/token, N parameters, D tokens)."""

    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @classmethod
    def from_law(cls, law) -> Prior:
        """The constants of a law file of the Chinchilla form (e.g. besiroglu2024)."""
        missing = [k for k in CHINCHILLA if k not in law.constants]
        if law.form != "chinchilla" or missing:
            raise UsageError(
                f"--prior: law {law.name!r} is not of the Chinchilla form "
                "E + A/N**alpha + B/D**beta; choose besiroglu2024, "
                "hoffmann2022-a3 or a law file `scalecalc fit` wrote"
            )
        return cls(law.name, *(float(law.constants[k]) for k in CHINCHILLA))

    @property
    def theta(self) -> np.ndarray:
        """The fit engine's parameter vector (ln A, ln B, ln E, α, β) (``fit.models.Chinchilla``)."""
        return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])

    def loss(self, N, D):
        """L(N, D) in nats/token (Hoffmann et al. 2022 eq. 2)."""
        N, D = np.asarray(N, float), np.asarray(D, float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    def optimum(self, C):
        """(N*, D*, L*) at C FLOPs under C = 6 N D."""
        return optimum_from_theta(self.theta[None, :], C)


def optimum_from_theta(theta: np.ndarray, C: float):
    """(N*, D*, L*) arrays, one per row of ``theta`` = (ln A, ln B, ln E, α, β), at C FLOPs."""
    lnA, lnB, lnE, a, b = (np.asarray(theta, float)[:, i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = a + b
        ln_G = (np.log(a) + lnA - np.log(b) - lnB) / s
        ln_N = ln_G + b / s * np.log(C / 6.0)
        ln_D = np.log(C / 6.0) - ln_N
        L = np.exp(lnE) + np.exp(lnA - a * ln_N) + np.exp(lnB - b * ln_D)
        N, D = np.exp(ln_N), np.exp(ln_D)
    bad = ~(np.isfinite(N) & np.isfinite(D) & np.isfinite(L))
    return np.where(bad, np.nan, N), np.where(bad, np.nan, D), np.where(bad, np.nan, L)


def compute_for_params(prior: Prior, N: float) -> float:
    """The compute C at which the prior's optimum N*(C) is N (inverse of the closed form)."""
    ln_G = (np.log(prior.alpha * prior.A) - np.log(prior.beta * prior.B)) / (prior.alpha + prior.beta)
    a = prior.beta / (prior.alpha + prior.beta)
    return float(6.0 * np.exp((np.log(N) - ln_G) / a))
