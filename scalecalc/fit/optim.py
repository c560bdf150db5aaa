"""Batched robust Levenberg-Marquardt over many starts at once, then a scipy L-BFGS-B polish.

Hoffmann et al. (2022, App. D.2) run L-BFGS from each of 4500 starting points and keep the best.
A Python loop of 4500 ``scipy.optimize.minimize`` calls takes minutes (bench/fit_speed.py), so
here every start (and, for the bootstrap, every replicate) is one row of a batch: residuals, the
analytic Jacobian and the 5x5 normal equations of all starts are evaluated together in numpy.
Each row takes damped Gauss-Newton steps on the IRLS majoriser ``J^T diag(psi(r)/r) J`` of the
robust objective (Levenberg 1944, Marquardt 1963; Beaton & Tukey 1974), with its own damping,
acceptance test (the objective never increases) and convergence flag.

For large grids :func:`race` runs successive halving: all starts take 10 iterations, the best
20% another 10, and the best 20% of those run to convergence. The best few distinct end points
are then finished in double precision and the winner is polished with scipy's L-BFGS-B on the
exact objective. "Best of grid" thus means the lowest objective over the starts still in the
race; on the Epoch data this equals the best of all 4500 per-start scipy runs (tests and
bench/fit_speed.py check it).
"""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass

import numpy as np

from scalecalc.fit.objectives import penalty


@dataclass(frozen=True)
class BatchResult:
    theta: np.ndarray  # (S, P) end points
    f: np.ndarray  # (S,) objective at the end points
    converged: np.ndarray  # (S,) bool
    nfev: int  # objective evaluations summed over rows
    lam: np.ndarray | None = None  # (S,) final damping, to resume


def _evaluate(model, theta, X):
    """Model state at theta: a tuple whose first item is log L_pred (S, n)."""
    if hasattr(model, "evaluate"):
        return model.evaluate(theta, X)
    return model.predict(theta, X)


def _normal_equations(model, state, X, gw, ww):
    """Gradient J^T gw (S, P) and IRLS matrix J^T diag(ww) J (S, P, P)."""
    if hasattr(model, "normal_equations"):
        return model.normal_equations(state, X, gw, ww)
    J = state[1]
    g = np.einsum("snp,sn->sp", J, gw)
    return g, np.einsum("snp,snq->spq", J * ww[..., None], J)  # no BLAS (see models.py)


def batched_lm(
    model,
    theta0,
    X,
    y,
    cnt,
    *,
    objective="huber",
    delta=1e-3,
    max_iter=300,
    xtol=1e-9,
    ftol=1e-13,
    lam0=None,
    dtype=np.float64,
) -> BatchResult:
    """Minimise the robust objective from every row of ``theta0`` simultaneously.

    Parameters
    ----------
    model : object with ``predict(theta, X, jac) -> (m, J)``, ``lower``, ``upper``
        m is log L_pred of shape (S, n); J its Jacobian (S, n, P). Models may add a faster
        ``evaluate``/``normal_equations`` pair (see :class:`~scalecalc.fit.models.Chinchilla`).
    theta0 : (S, P) starts.  y : (n,) observed log loss.
    cnt : (n,) or (S, n) per-point weights (bootstrap multiplicities).
    lam0 : (S,) initial damping (to resume a race), default 1e-3.
    dtype : float32 evaluates residuals in single precision (a screening stage whose end points
        are then polished in double precision).
    """
    rho, psi, wfun = penalty(objective)
    theta = np.clip(np.array(theta0, dtype=float), model.lower, model.upper)
    S, P = theta.shape
    y = np.asarray(y, dtype=dtype)
    cnt = np.broadcast_to(np.asarray(cnt, dtype=dtype), (S, y.size))
    state = list(_evaluate(model, theta.astype(dtype), X))
    r = state[0] - y
    f = (cnt * rho(r, delta)).sum(1, dtype=float)
    lam = np.full(S, 1e-3) if lam0 is None else np.array(lam0, dtype=float)
    active = np.isfinite(f)
    converged = np.zeros(S, bool)
    nfev = S
    eye = np.eye(P)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        whole = idx.size == S
        st = state if whole else [a[idx] for a in state]
        ra, ca = (r, cnt) if whole else (r[idx], cnt[idx])
        g, H = _normal_equations(model, st, X, ca * psi(ra, delta), ca * wfun(ra, delta))
        d = np.diagonal(H, axis1=1, axis2=2)
        d = np.maximum(d, 1e-10 * d.max(axis=1, keepdims=True) + 1e-300)
        step = -np.linalg.solve(H + lam[idx, None, None] * d[:, :, None] * eye, g[..., None])[..., 0]
        step[~np.isfinite(step)] = 0.0
        trial = np.clip(theta[idx] + step, model.lower, model.upper)
        st_t = _evaluate(model, trial.astype(dtype), X)
        rt = st_t[0] - y
        ft = (ca * rho(rt, delta)).sum(1, dtype=float)
        nfev += idx.size
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
    return BatchResult(theta, f, converged, nfev, lam)


def race(
    model,
    starts,
    X,
    y,
    cnt,
    *,
    objective="huber",
    delta=1e-3,
    schedule=((15, 0.25), (15, 0.25), (60, 1.0)),
    dtype=np.float64,
) -> BatchResult:
    """Successive halving over starts: LM iterations for all, then only the best fraction go on.

    ``schedule`` lists (iterations, fraction kept afterwards). Rows dropped keep their objective
    at the time they were dropped; rows that converged are never re-run.
    """
    theta = np.clip(np.array(starts, dtype=float), model.lower, model.upper)
    S = len(theta)
    f = np.full(S, np.inf)
    lam = np.full(S, 1e-3)
    converged = np.zeros(S, bool)
    alive = np.ones(S, bool)
    nfev = 0
    for iters, keep in schedule:
        idx = np.flatnonzero(alive & ~converged)
        if idx.size:
            res = batched_lm(
                model,
                theta[idx],
                X,
                y,
                cnt,
                objective=objective,
                delta=delta,
                max_iter=iters,
                lam0=lam[idx],
                dtype=dtype,
            )
            theta[idx], f[idx], lam[idx], converged[idx] = res.theta, res.f, res.lam, res.converged
            nfev += res.nfev
        if keep < 1.0:
            n_keep = max(8, int(np.ceil(keep * np.count_nonzero(alive))))
            order = np.argsort(np.where(alive, f, np.inf), kind="stable")
            alive[:] = False
            alive[order[:n_keep]] = True
    return BatchResult(theta, f, converged, nfev, lam)


@contextlib.contextmanager
def single_threaded_blas():
    """Run OpenBLAS single-threaded inside the block (Linux; a no-op elsewhere).

    L-BFGS-B's few-element BLAS calls gain nothing from threads, and on a busy machine the
    thread hand-offs made each iteration ~6x slower here (2.4 ms instead of 0.4 ms). This is
    what threadpoolctl does, reduced to the OpenBLAS builds numpy and scipy ship.
    """
    handles = []
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                get = getattr(lib, f"{prefix}_get_num_threads", None)
                put = getattr(lib, f"{prefix}_set_num_threads", None)
                if get is not None and put is not None:
                    handles.append((put, get()))
                    put(1)
                    break
    except (OSError, AttributeError, IndexError):
        pass
    try:
        yield
    finally:
        for put, n in handles:
            put(n)


def polish(model, theta0, X, y, cnt, *, objective="huber", delta=1e-3, maxiter=2000):
    """scipy L-BFGS-B on the exact objective from one start; returns (theta, f, ok, nfev, msg).

    The objective is divided by its starting value so that L-BFGS-B's tolerances, which are
    relative to max(|f|, 1), do not stop it early on a ~1e-3 objective (the "loss scale"
    defect Besiroglu et al. 2024 found in the original fit).
    """
    from scipy.optimize import minimize

    rho, psi, _ = penalty(objective)
    cnt = np.asarray(cnt, dtype=float)

    def fun(t):
        m, J = model.predict(t[None, :], X)
        r = m[0] - y
        return (cnt * rho(r, delta)).sum(), np.einsum("np,n->p", J[0], cnt * psi(r, delta))

    f0 = max(fun(np.asarray(theta0, float))[0], 1e-300)
    scaled = lambda t: tuple(v / f0 for v in fun(t))  # noqa: E731
    with single_threaded_blas():
        res = _lbfgsb(minimize, scaled, theta0, model, maxiter)
    return res.x, res.fun * f0, bool(res.success), int(res.nfev), str(res.message)


def _lbfgsb(minimize, scaled, theta0, model, maxiter):
    return minimize(
        scaled,
        np.asarray(theta0, float),
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(model.lower, model.upper)),
        options={"maxiter": maxiter, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20},
    )


def distinct_best(theta, f, k, tol=1e-4):
    """Indices of up to k lowest-objective rows whose end points differ by more than tol."""
    order = np.argsort(np.where(np.isfinite(f), f, np.inf), kind="stable")
    picked: list[int] = []
    for i in order:
        if not np.isfinite(f[i]):
            break
        if all(np.abs(theta[i] - theta[j]).max() > tol for j in picked):
            picked.append(int(i))
        if len(picked) == k:
            break
    return picked
