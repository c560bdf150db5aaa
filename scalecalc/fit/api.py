"""``fit_law``: one entry point for every form (a function, not a mutating method)."""

from __future__ import annotations

from scalecalc.errors import UsageError
from scalecalc.fit.objectives import OBJECTIVES
from scalecalc.fit.result import FitResult

FORMS = ("chinchilla", "gadre", "muennighoff", "auto", "isoflop", "envelope", "kaplan")
PARAMETRIC = ("chinchilla", "gadre", "muennighoff", "kaplan", "auto")


def fit_law(
    runs,
    form: str = "chinchilla",
    *,
    objective: str = "huber",
    delta: float = 1e-3,
    grid=None,
    bootstrap: int = 0,
    seed: int = 0,
    budgets=None,
    workers=None,
    interp: str = "auto",
    seed_noise: float = 0.002,
    irreducible: bool = False,
    kaplan_vars: str = "N",
    n_grid: int = 250,
    holdout: str = "auto",
    fix=(),
    prior=(),
    compare_forms: bool = False,
    progress=None,
) -> FitResult:
    """Fit a scaling law of the given form to runs.

    Parameters
    ----------
    runs : Runs
        From :func:`scalecalc.fit.read_runs` or :meth:`Runs.from_arrays`.
    form : {'chinchilla', 'isoflop', 'envelope', 'kaplan'}
        chinchilla: L = E + A/N**alpha + B/D**beta (Hoffmann et al. 2022, approach 3, eq. 2).
        isoflop: per-budget minima then N* = G·C**a, D* = H·C**b (approach 2).
        envelope: lower envelope of learning curves, then the same power laws (approach 1).
        kaplan: L = (Nc/N)**alpha_N (+ E with ``irreducible``), L(D), or L(N, D) (Kaplan et al.
        2020 eq. 1.1, 1.2, 1.5), chosen by ``kaplan_vars`` = N | D | ND.
    objective : {'huber', 'mse', 'asymmetric'}
        Penalty on log-loss residuals, summed over points; ``delta`` is the Huber threshold.
    grid : None | 'full' | 'coarse' | int
        Starting points (chinchilla: Hoffmann's 4500-start grid by default).
    bootstrap : int
        K resamples for 95% percentile intervals (isoflop: within budgets plus seed noise).
    seed : int
        Seeds the resampling (results do not depend on ``workers``).
    budgets : sequence of float, optional
        FLOP budgets C at which derived N*, D*, loss (with intervals) are reported.
    workers : int, optional
        Processes for the bootstrap (default: all cores).
    interp : {"auto", "parabola", "local", "akima"}
        isoflop curve model: auto (chosen per budget by an asymmetry test), a parabola in log N
        (Hoffmann et al.), a local parabola about the lowest point, or Akima (Porian et al.).
    seed_noise : float
        isoflop bootstrap: std of Gaussian noise added to log loss (Porian et al. noise_low).
    n_grid : int
        envelope: number of log-spaced FLOP values (Hoffmann et al. used 1500).
    holdout : str
        Parametric forms: ``auto`` (the largest size when there are 4+ sizes), ``largest``, a
        number of largest sizes, a filter such as ``'params > 1e9'``, or ``none``. The result's
        ``holdout`` block reports each held-out run's predicted and actual loss
        (:mod:`scalecalc.fit.holdout`).
    fix, prior : sequences of str
        ``NAME=VALUE`` constants held fixed; ``NAME=MEAN±SD`` Gaussian priors
        (:mod:`scalecalc.fit.constraints`).
    compare_forms : bool
        Also fit the other candidate forms (chinchilla, gadre) and report them side by side in
        the result's ``comparison``; ``form='auto'`` keeps the one with the lowest held-out error.
    progress : callable(stage, done, total), optional
        Called as stages (fit, bootstrap, holdout) finish.
    """
    form = str(form).lower()
    if objective not in OBJECTIVES:
        raise UsageError(f"--objective: unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    if objective != "mse" and not delta > 0:
        raise UsageError(f"--delta: {delta} must be > 0")
    if bootstrap < 0:
        raise UsageError(f"--bootstrap: {bootstrap} must be >= 0")
    if form in PARAMETRIC:
        from scalecalc.fit.constraints import parse_constraints
        from scalecalc.fit.select import fit_forms

        return fit_forms(
            runs,
            form,
            constraints=parse_constraints(fix, prior),
            holdout=holdout,
            compare=compare_forms,
            objective=objective,
            delta=delta,
            grid=grid,
            bootstrap=bootstrap,
            seed=seed,
            budgets=budgets,
            workers=workers,
            irreducible=irreducible,
            kaplan_vars=kaplan_vars,
            progress=progress,
        )
    if fix or prior:
        raise UsageError(f"--fix/--prior: only for the parametric forms (chinchilla, gadre, kaplan), not --form {form}")
    if form == "isoflop":
        from scalecalc.fit.isoflop import fit_isoflop

        return fit_isoflop(runs, interp=interp, bootstrap=bootstrap, seed=seed, budgets=budgets, seed_noise=seed_noise)
    if form == "envelope":
        from scalecalc.fit.envelope import fit_envelope

        return fit_envelope(runs, bootstrap=bootstrap, seed=seed, budgets=budgets, n_grid=n_grid)
    raise UsageError(f"--form: unknown form {form!r}; choose from {', '.join(FORMS)}")
