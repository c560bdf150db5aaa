"""Simulate a sweep from the prior law and fit each replicate with the ``calibrate fit`` engine.

A replicate draws each run's final loss as ln L = ln L_prior(N, D) + σ ε, ε ~ N(0, 1) (seed
noise; σ = 0.01 is the 0.02-nat seed-to-seed spread of Kaplan et al. 2020 eq. 4.4 at L ≈ 2,
docs/reference.md §1.5), fits the Chinchilla form to it, and reads N*, D*, L* at the target off
the fitted constants.

The fit is the one ``scalecalc fit --form chinchilla`` and ``calibrate fit`` use
(``scalecalc.fit``: the ``Chinchilla`` model, Huber loss on ln L with δ = 1e-3, batched
Levenberg-Marquardt), run on many replicates at once: each row of the batch is one replicate
with its own data (:func:`lm_rows`), so one vectorised call fits them all. Start: the prior's
constants (optionally with a few of the engine's grid starts, best kept per replicate).
``tests/test_calibration_design.py`` checks it gives the constants ``fit_law`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .prior import Prior, optimum_from_theta

SEED_NOISE = 0.01  # σ of ln L between seeds (Kaplan et al. 2020 eq. 4.4: ~0.02 nats at L ≈ 2)
HUBER_DELTA = 1e-3  # the fit engine's default (Hoffmann et al. 2022 §D.2)
CHUNK = 512  # replicates per vectorised fit (one call per candidate at the default counts)
MAX_RUNS = 512  # common random numbers: every candidate's noise comes from one (R, MAX_RUNS) draw
GRID_STARTS = 0  # engine grid starts besides the prior's constants (the data come from the prior:
#                  4 starts gave N* within 2e-6 of 1 start, at 4x the cost)


@dataclass(frozen=True)
class Outcomes:
    """Per replicate: N*, D*, L* at the target from the fitted constants (NaN: failed fit)."""

    N: np.ndarray
    D: np.ndarray
    L: np.ndarray
    theta: np.ndarray  # (R, 5) fitted (ln A, ln B, ln E, α, β)

    def interval(self, confidence: float) -> dict:
        """Percentile intervals {quantity: (low, median, high)} over the valid replicates."""
        lo, hi = 50 * (1 - confidence), 50 * (1 + confidence)
        ok = np.isfinite(self.N)
        out = {}
        for name, v in (("N", self.N), ("D", self.D), ("L", self.L)):
            q = np.percentile(v[ok], [lo, 50, hi]) if ok.any() else [np.nan] * 3
            out[name] = tuple(float(x) for x in q)
        out["valid"] = int(ok.sum())
        return out


def noise_draw(replicates: int, seed: int) -> np.ndarray:
    """Standard normal noise (R, MAX_RUNS): the same for every candidate of one search."""
    return np.random.default_rng(seed).standard_normal((replicates, MAX_RUNS))


def simulate(
    prior: Prior,
    N,
    D,
    target_flops: float,
    *,
    replicates: int,
    seed: int = 0,
    noise: float = SEED_NOISE,
    eps: np.ndarray | None = None,
    progress=None,
) -> Outcomes:
    """Fit ``replicates`` noisy copies of the runs (N, D) and return the outcomes at the target."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    if eps is None:
        eps = noise_draw(replicates, seed)
    eps = eps[:replicates, : N.size]
    y = np.log(prior.loss(N, D))[None, :] + noise * eps
    thetas = []
    for lo in range(0, replicates, CHUNK):
        thetas.append(fit_replicates(prior, N, D, y[lo : lo + CHUNK]))
        if progress is not None:
            progress(min(CHUNK, replicates - lo))
    theta = np.concatenate(thetas)
    Ns, Ds, Ls = optimum_from_theta(theta, target_flops)
    return Outcomes(Ns, Ds, Ls, theta)


def fit_replicates(prior: Prior, N: np.ndarray, D: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fitted (ln A, ln B, ln E, α, β) of each row of ``y`` (ln L of the runs), vectorised."""
    from scalecalc.fit.models import Chinchilla
    from scalecalc.fit.optim import polish

    model = Chinchilla()
    R, n = y.shape
    starts = np.vstack([prior.theta] + ([model.starts(GRID_STARTS)] if GRID_STARTS else []))
    S0 = len(starts)
    X = np.stack([np.log(N), np.log(D)])
    theta, f, converged = lm_rows(model, np.tile(starts, (R, 1)), X, np.repeat(y, S0, axis=0))
    best = np.arange(R) * S0 + np.argmin(f.reshape(R, S0), axis=1)
    theta = theta[best]
    for r in np.flatnonzero(~converged[best]):  # rare: finish as the engine does
        theta[r] = polish(model, theta[r], X, y[r], np.ones(n), objective="huber", delta=HUBER_DELTA, maxiter=500)[0]
    return theta


def lm_rows(
    model,
    theta0: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    max_iter: int = 300,
    xtol: float = 1e-9,
    ftol: float = 1e-13,
):
    """``scalecalc.fit.optim.batched_lm`` with one data vector per row (``Y`` is (S, n)).

    The same model evaluation, IRLS normal equations, Huber penalty (δ = :data:`HUBER_DELTA`),
    damping schedule, acceptance test and convergence rules as the engine, step for step; the
    engine's version shares one ``y`` between its rows (starts, bootstrap weights), here every
    row is a replicate with its own noise. Returns (theta, objective, converged).
    """
    from scalecalc.fit.objectives import penalty
    from scalecalc.fit.optim import _evaluate, _normal_equations

    rho, psi, wfun = penalty("huber")
    delta = HUBER_DELTA
    theta = np.clip(np.array(theta0, dtype=float), model.lower, model.upper)
    S, P = theta.shape
    state = list(_evaluate(model, theta, X))
    r = state[0] - Y
    f = rho(r, delta).sum(1)
    lam = np.full(S, 1e-3)  # batched_lm's initial damping and its /3, x4 schedule below
    active = np.isfinite(f)
    converged = np.zeros(S, bool)
    eye = np.eye(P)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        st = [a[idx] for a in state]
        ra = r[idx]
        g, H = _normal_equations(model, st, X, psi(ra, delta), wfun(ra, delta))
        d = np.diagonal(H, axis1=1, axis2=2)
        d = np.maximum(d, 1e-10 * d.max(axis=1, keepdims=True) + 1e-300)
        step = -np.linalg.solve(H + lam[idx, None, None] * d[:, :, None] * eye, g[..., None])[..., 0]
        step[~np.isfinite(step)] = 0.0
        trial = np.clip(theta[idx] + step, model.lower, model.upper)
        st_t = _evaluate(model, trial, X)
        rt = st_t[0] - Y[idx]
        ft = rho(rt, delta).sum(1)
        ok = np.isfinite(ft) & (ft <= f[idx])
        acc = idx[ok]
        gain = f[acc] - ft[ok]
        moved = np.abs(trial[ok] - theta[acc]).max(axis=1)
        theta[acc], r[acc], f[acc] = trial[ok], rt[ok], ft[ok]
        for a, b in zip(state, st_t):
            a[acc] = b[ok]
        lam[acc] = np.maximum(lam[acc] / 3, 1e-12)
        lam[idx[~ok]] *= 4
        done = (moved < xtol) | (gain <= ftol * np.maximum(ft[ok], 1e-300))
        converged[acc[done]] = True
        active[acc[done]] = False
        stuck = idx[~ok][lam[idx[~ok]] > 1e10]  # no downhill step even when tiny: a minimum
        converged[stuck] = True
        active[stuck] = False
    return theta, f, converged
