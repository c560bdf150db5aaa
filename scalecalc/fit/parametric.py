"""Approach 3 of Hoffmann et al. (2022) and Kaplan et al. (2020) forms: fit L(N, D) directly.

The objective is the SUM over points of a robust penalty (Huber, delta = 1e-3) of
log L_pred - log L_obs (Hoffmann et al. 2022, eq. 3 / App. D.2; docs/reference.md §2.2 on sum vs mean).
Search: every start of the grid (Hoffmann's 4500 for chinchilla) is run through a batched
Levenberg-Marquardt race (:mod:`scalecalc.fit.optim`), the best distinct end points are polished
in double precision, and the winner is certified with scipy L-BFGS-B: the lowest objective wins.
"""

from __future__ import annotations

import numpy as np

from scalecalc.errors import NotEnoughData
from scalecalc.fit import diagnostics as diag
from scalecalc.fit.bootstrap import bootstrap_parametric, resample_counts
from scalecalc.fit.forms import chinchilla_constants, design
from scalecalc.fit.objectives import penalty
from scalecalc.fit.optim import batched_lm, distinct_best, polish, race
from scalecalc.fit.result import IMPLIED_BUDGETS, FitResult, percentile_interval
from scalecalc.fit.runs import flops_per_param_token

RACE_ABOVE = 300  # starts; larger grids are screened in single precision by successive halving
RACE_SCHEDULE = ((10, 0.2), (10, 0.2), (60, 1.0))  # (LM iterations, fraction kept)
N_POLISH = 4  # distinct best end points polished with L-BFGS-B


def search(model, starts, X, y, cnt, *, objective, delta):
    """Best-of-grid minimum: returns (theta, f, ok, nfev, message, end points, end objectives)."""
    if len(starts) > RACE_ABOVE:
        res = race(model, starts, X, y, cnt, objective=objective, delta=delta, schedule=RACE_SCHEDULE, dtype=np.float32)
    else:
        res = batched_lm(model, starts, X, y, cnt, objective=objective, delta=delta, max_iter=200)
    nfev = res.nfev
    top = distinct_best(res.theta, res.f, N_POLISH)
    if not top:
        raise NotEnoughData("the objective is not finite at any start; check the loss column")
    # Finish the best few in double precision (LM, no BLAS), then certify the winner as an
    # L-BFGS-B fixed point on the exact objective.
    fin = batched_lm(model, res.theta[top], X, y, cnt, objective=objective, delta=delta, max_iter=300)
    nfev += fin.nfev
    j = int(np.argmin(fin.f))
    theta, f, ok, nf, msg = polish(model, fin.theta[j], X, y, cnt, objective=objective, delta=delta)
    nfev += nf
    if f > fin.f[j]:  # L-BFGS-B never returns worse than its start, but be explicit
        theta, f = fin.theta[j], fin.f[j]
    if not ok and (fin.converged[j] or _stationary(model, theta, X, y, cnt, objective, delta)):
        ok, msg = True, f"converged (stationary point; L-BFGS-B said: {msg.strip()})"
    return theta, f, ok, nfev, msg, res.theta, res.f


def _stationary(model, theta, X, y, cnt, objective, delta) -> bool:
    """True when the projected gradient is negligible (L-BFGS-B's line search can report
    ABNORMAL at an optimum that is already exact to rounding)."""
    _, psi, _ = penalty(objective)
    m, J = model.predict(theta[None, :], X)
    g = np.einsum("np,n->p", J[0], cnt * psi(m[0] - y, delta))
    g[(theta <= model.lower) & (g > 0)] = 0
    g[(theta >= model.upper) & (g < 0)] = 0
    f = (cnt * penalty(objective)[0](m[0] - y, delta)).sum()
    return bool(np.max(np.abs(g)) <= 1e-4 * max(f, 1e-12))


def run_groups(runs):
    """(group index per row, weight per row): rows of one run (the ``run`` column) form a group
    and share a total weight of 1, so a run logged at many checkpoints counts as much as a run
    logged once (docs/reference.md §2.5); without a run column every row is its own run."""
    if runs.run is None:
        return np.arange(len(runs)), np.ones(len(runs))
    _, group, sizes = np.unique(runs.run, return_inverse=True, return_counts=True)
    return group, 1.0 / sizes[group]


def run_counts(group, weight, K, seed, n_pseudo=0):
    """(K, rows + n_pseudo) bootstrap weights: runs resampled with replacement (not rows), each
    row weighted by its run's multiplicity times its own weight; pseudo-observations fixed."""
    G = int(group.max()) + 1
    counts = resample_counts(G, K, seed)[:, group] * weight
    if n_pseudo:
        counts = np.concatenate([counts, np.ones((K, n_pseudo))], axis=1)
    return counts


def fit_parametric(
    runs,
    model,
    *,
    objective="huber",
    delta=1e-3,
    grid=None,
    bootstrap=0,
    seed=0,
    budgets=None,
    workers=None,
    extra_starts=None,
    progress=None,
) -> FitResult:
    """Fit a parametric law (``models.Chinchilla``, ``forms.Gadre``, ``models.KaplanPower``,
    ``models.KaplanND``, or one of them under :class:`~scalecalc.fit.constraints.Constrained`).

    Returns a :class:`FitResult`; with ``bootstrap`` K > 0 every constant and derived quantity
    gets a 95% percentile interval from K resamples of the runs (rows of one run together).
    ``extra_starts`` (rows of theta) join the grid; ``progress(stage, done, total)`` is called
    as the stages finish.
    """
    P = len(model.names)
    group, weight = run_groups(runs)
    n_runs = int(group.max()) + 1 if len(runs) else 0
    if len(runs) < P + 1:
        raise NotEnoughData(
            f"{runs.source}: {len(runs)} points cannot fit the {P} free parameters "
            f"of --form {model.form}; give at least {P + 1} (ideally {5 * P})"
        )
    X0 = design(model, runs)
    y0 = np.log(runs.loss)
    starts = model.starts(grid)
    if extra_starts is not None and len(extra_starts):
        starts = np.concatenate([starts, np.atleast_2d(extra_starts)])
    if getattr(model, "priors", None):
        _set_temperature(model, runs, X0, y0, weight, objective, delta)
    X, y, cnt = model.augment(X0, y0, weight) if hasattr(model, "augment") else (X0, y0, weight)
    theta, f, ok, nfev, msg, ends, end_f = search(model, starts, X, y, cnt, objective=objective, delta=delta)
    if progress:
        progress("fit", 1, 1)
    resid = model.predict(theta[None, :], X, jac=False)[0][0][: y0.size] - y0
    warnings = (
        diag.too_few_points(len(runs), P)
        + diag.short_spans(runs, model.uses)
        + diag.too_few_sizes(runs, P)
        + diag.at_bounds(model.names, theta, model.lower, model.upper)
        + ([] if ok else [f"the optimiser did not converge: {msg}"])
        + diag.outliers(resid, runs.lines)
    )
    consts = {k: float(v) for k, v in model.constants(theta).items()}
    k = flops_per_param_token(runs.flops_convention) or 6.0
    samples = {}
    if bootstrap:
        warm = _warm_starts(theta, ends, end_f, starts)
        counts = run_counts(group, weight, int(bootstrap), seed, getattr(model, "n_pseudo", 0))
        thetas, nf = bootstrap_parametric(
            model,
            X,
            y,
            warm,
            K=int(bootstrap),
            seed=seed,
            objective=objective,
            delta=delta,
            workers=workers,
            counts=counts,
            progress=progress,
        )
        nfev += nf
        samples = {n: np.asarray(v) for n, v in model.constants(thetas).items()}
        warnings += diag.poorly_identified(samples)
    else:
        thetas = None
    n_start = len(starts)
    method = (
        f"{n_start}-start grid, batched Levenberg-Marquardt race + L-BFGS-B polish "
        f"(best of {min(N_POLISH, n_start)}), sum of {objective}"
        + (f" delta={delta:g}" if objective != "mse" else "")
        + " on log loss"
    )
    return FitResult(
        form=model.form,
        params=consts,
        success=ok,
        message=msg,
        nfev=int(nfev),
        n_points=len(runs),
        objective=float(f),
        residual_rms=float(np.sqrt(np.mean(resid**2))),
        method=method,
        stderr={n: float(np.std(s, ddof=1)) for n, s in samples.items()},
        intervals={n: percentile_interval(s) for n, s in samples.items()},
        warnings=tuple(warnings),
        fitted_range=diag.fitted_range(runs),
        bootstrap=samples,
        derived=_derived(model, consts, samples, budgets, k, theta, thetas),
        implied=_implied(model, consts, k, theta),
        objective_name=objective,
        delta=None if objective == "mse" else delta,
        flops_convention=runs.flops_convention,
        source=runs.source,
        loss_formula=model.loss_formula,
        details={
            "theta": theta,
            "residuals": resid,
            "n_starts": n_start,
            "runs": runs,
            "seed": seed,
            "model": model,
            "thetas": thetas,
            "n_runs": n_runs,
            "end_points": ends[np.argsort(end_f, kind="stable")[:8]],
            "starts_at_best": int(np.sum(end_f <= f * (1 + 1e-6))),
        },
    )


def _set_temperature(model, runs, X, y, weight, objective, delta):
    """Priors: the objective's temperature from a quick fit without them (constraints.py)."""
    from scalecalc.fit.constraints import Constrained, Constraints, temperature

    plain = Constrained(model.base, Constraints(model.constraints.fixed, {}))
    theta, *_ = search(plain, plain.starts("coarse"), X, y, weight, objective=objective, delta=delta)
    resid = plain.predict(theta[None, :], X, jac=False)[0][0] - y
    model.temperature = temperature(resid, objective, delta)


def _warm_starts(theta, ends, end_f, starts, n_local=3, n_grid=2):
    """Full-data optimum, other distinct local optima, and grid starts that reached the best."""
    picked = [theta] + [ends[i] for i in distinct_best(ends, end_f, n_local + 1)[1:]]
    picked += [starts[i] for i in np.argsort(end_f, kind="stable")[:n_grid]]
    return np.array(picked)


def chinchilla_allocation(c: dict, C, k=6.0):
    """Compute-optimal N*, D*, L* under C = k·N·D (Hoffmann et al. 2022, eq. 4).

    G = (alpha A / (beta B))**(1/(alpha+beta)), N* = G (C/k)**a, D* = G**-1 (C/k)**b with
    a = beta/(alpha+beta), b = alpha/(alpha+beta). Constants may be arrays (bootstrap).
    """
    E, A, B, al, be = (np.asarray(c[n], float)[..., None] for n in ("E", "A", "B", "alpha", "beta"))
    C = np.asarray(C, float)
    G = (al * A / (be * B)) ** (1 / (al + be))
    N = G * (C / k) ** (be / (al + be))
    D = (C / k) / N
    L = E + A / N**al + B / D**be
    return N, D, L


def numeric_allocation(model, thetas, C, k=6.0, half_width=12.0, n=1201):
    """Compute-optimal N*, D*, L* of any L(N, D) model under C = k·N·D, by a search over
    log N (spacing 0.02) refined by a parabola through the best three points.

    thetas (S, P), C (m,) -> arrays (S, m); NaN where the optimum is not inside the search
    window sqrt(C/k)·exp(±half_width).
    """
    thetas, C = np.atleast_2d(thetas), np.atleast_1d(np.asarray(C, float))
    out = np.full((3, len(thetas), C.size), np.nan)
    step = 2 * half_width / (n - 1)
    for j, c in enumerate(C):
        lnN = 0.5 * np.log(c / k) + np.linspace(-half_width, half_width, n)
        X = np.stack([lnN, np.log(c / k) - lnN])
        m = model.predict(thetas, X, jac=False)[0]  # (S, n) log loss
        i = np.argmin(m, axis=1)
        ok = (i > 0) & (i < n - 1)
        i = np.clip(i, 1, n - 2)
        rows = np.arange(len(thetas))
        y0, y1, y2 = m[rows, i - 1], m[rows, i], m[rows, i + 1]
        curv = y0 - 2 * y1 + y2
        shift = np.where(curv > 0, 0.5 * (y0 - y2) / np.where(curv > 0, curv, 1), 0.0)
        x = lnN[i] + shift * step
        N = np.exp(x)
        out[0, :, j] = np.where(ok, N, np.nan)
        out[1, :, j] = np.where(ok, c / (k * N), np.nan)
        out[2, :, j] = np.where(ok, np.exp(y1 - 0.25 * (y0 - y2) * shift), np.nan)
    return out[0], out[1], out[2]


def _allocation(model, consts, theta_rows, budgets, k):
    """(N, D, L) arrays (rows, budgets): closed form for chinchilla and gadre (beta = alpha),
    numeric for Kaplan eq. 1.5."""
    if model.form in ("chinchilla", "gadre", "muennighoff"):
        return chinchilla_allocation(chinchilla_constants(model.form, consts), budgets, k)
    return numeric_allocation(model, theta_rows, budgets, k)


def _derived(model, consts, samples, budgets, k, theta=None, thetas=None):
    if budgets is None or len(budgets) == 0 or model.uses != ("params", "tokens"):
        return ()
    one = {n: np.atleast_1d(v) for n, v in consts.items()}
    N, D, L = (v[0] for v in _allocation(model, one, theta, budgets, k))
    boot = _allocation(model, samples, thetas, budgets, k) if samples else None
    out = []
    for j, C in enumerate(np.asarray(budgets, float)):
        row = {
            "compute": float(C),
            "params": float(N[j]),
            "tokens": float(D[j]),
            "loss": float(L[j]),
            "tokens_per_param": float(D[j] / N[j]),
        }
        if boot is not None:
            for key, arr in zip(("params", "tokens", "loss"), boot):
                row[f"{key}_ci"] = list(percentile_interval(arr[:, j]))
        out.append(row)
    return tuple(out)


def _implied(model, c, k, theta=None):
    """Allocation exponents and D/N at 1e21, 1e23, 1e25 FLOPs (laws of both N and D only).

    chinchilla: a = beta/(alpha+beta) exactly (Hoffmann et al. 2022 eq. 4); Kaplan eq. 1.5: the
    mean slope of log N* against log C between 1e21 and 1e25 FLOPs.
    """
    if model.uses != ("params", "tokens"):
        return {}
    one = {n: np.atleast_1d(v) for n, v in c.items()}
    N, D, _ = (v[0] for v in _allocation(model, one, theta, IMPLIED_BUDGETS, k))
    if model.form in ("chinchilla", "gadre", "muennighoff"):
        c = chinchilla_constants(model.form, c)
        a = c["beta"] / (c["alpha"] + c["beta"])
    else:
        a = float(np.log(N[-1] / N[0]) / np.log(IMPLIED_BUDGETS[-1] / IMPLIED_BUDGETS[0]))
    return {
        "a": a,
        "b": 1 - a,
        "tokens_per_param": {f"{C:.0e}": float(d / n) for C, n, d in zip(IMPLIED_BUDGETS, N, D)},
    }
