"""The result of a fit: a frozen dataclass in the scipy/lmfit result shape.

It never prints itself; the CLI renders it and :mod:`scalecalc.fit.lawfile` turns it into a law
file that ``scalecalc plan --law`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IMPLIED_BUDGETS = (1e21, 1e23, 1e25)  # FLOPs at which the table reports D/N


@dataclass(frozen=True)
class FitResult:
    """A fitted scaling law.

    Attributes
    ----------
    form : str
        ``chinchilla`` | ``kaplan`` | ``isoflop`` | ``envelope``.
    params : dict[str, float]
        Fitted constants named as in the papers: E, A, B, alpha, beta (Hoffmann et al. 2022
        eq. 2: L = E + A/N**alpha + B/D**beta); Nc, alpha_N, Dc, alpha_D, E (Kaplan et al.
        2020 eq. 1.1, 1.2, 1.5); G, a, H, b (N* = G·C**a, D* = H·C**b) for isoflop/envelope.
    stderr : dict[str, float]
        Bootstrap standard deviation of each constant (empty without ``bootstrap``).
    intervals : dict[str, tuple[float, float]]
        95% bootstrap percentile interval (2.5th, 97.5th percentiles) of each constant.
    success, message, nfev :
        Optimiser status, its message and the number of objective evaluations (summed over
        starts, including the polish).
    n_points : int
        Data points used (after filters); for isoflop the number of budgets kept.
    objective : float
        Final value of the summed objective (``objective_name`` with ``delta``) in log space.
    residual_rms : float
        Root mean square of log L_pred - log L_obs (isoflop/envelope: of log N* about the fit).
    method : str
        How the optimum was found (grid size, optimiser, interpolation).
    warnings : tuple[str, ...]
        Diagnostics (too few points, short spans, bounds, outliers, dropped budgets).
    fitted_range : dict[str, list[float]]
        compute, params, tokens: [min, max] of the data used; ``plan`` warns outside it.
    bootstrap : dict[str, ndarray]
        Replicates of each constant (the law file stores up to 1000 of them).
    derived : tuple[dict, ...]
        Per requested budget C: compute-optimal ``params`` N*, ``tokens`` D*, ``loss`` and their
        ``*_ci`` 95% intervals (chinchilla: Hoffmann et al. 2022 eq. 4 with C = k·N·D).
    implied : dict
        Allocation exponents ``a``, ``b`` and tokens per parameter ``D/N`` at 1e21, 1e23, 1e25.
    """

    form: str
    params: dict
    success: bool
    message: str
    nfev: int
    n_points: int
    objective: float
    residual_rms: float
    method: str
    stderr: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    warnings: tuple = ()
    fitted_range: dict = field(default_factory=dict)
    bootstrap: dict = field(default_factory=dict)
    derived: tuple = ()
    implied: dict = field(default_factory=dict)
    objective_name: str = "huber"
    delta: float | None = 1e-3
    flops_convention: str = "6nd"
    source: str = ""
    loss_formula: str | None = None
    params_formula: str | None = None
    tokens_formula: str | None = None
    holdout: dict = field(default_factory=dict)  # held-out evaluation (fit/holdout.py)
    comparison: tuple = ()  # forms side by side (fit/select.py)
    estimator: dict = field(default_factory=dict)  # isoflop: the per-budget estimator used
    details: dict = field(default_factory=dict, repr=False)  # per-budget minima etc., for plots

    @property
    def constants(self) -> dict:
        return self.params

    def to_dict(self) -> dict:
        """JSON-ready dict (keys: form, constants, intervals, stderr, n_points, objective, ...)."""
        out = {
            "form": self.form,
            "constants": {k: float(v) for k, v in self.params.items()},
            "intervals": {k: [float(lo), float(hi)] for k, (lo, hi) in self.intervals.items()},
            "stderr": {k: float(v) for k, v in self.stderr.items()},
            "n_points": int(self.n_points),
            "objective": float(self.objective),
            "objective_name": self.objective_name,
            "delta": self.delta,
            "residual_rms": float(self.residual_rms),
            "success": bool(self.success),
            "message": self.message,
            "nfev": int(self.nfev),
            "method": self.method,
            "implied": _plain(self.implied),
            "derived": [_plain(d) for d in self.derived],
            "fitted_range": _plain(self.fitted_range),
            "flops": self.flops_convention,
            "bootstrap_replicates": len(next(iter(self.bootstrap.values()), [])),
            "formulas": {
                k: v
                for k, v in (
                    ("loss", self.loss_formula),
                    ("params", self.params_formula),
                    ("tokens", self.tokens_formula),
                )
                if v
            },
            "warnings": list(self.warnings),
        }
        if self.holdout:
            out["holdout"] = _plain(self.holdout)
        if self.comparison:
            out["comparison"] = _plain(list(self.comparison))
        if self.estimator:
            out["estimator"] = _plain(self.estimator)
        if "minima" in self.details:  # isoflop: the per-budget minima behind the fit
            out["minima"] = _plain(self.details["minima"])
        return out

    def to_law(self, name: str = "fitted", source: str | None = None) -> dict:
        """The law-file mapping (README, "Law files")."""
        from scalecalc.fit.lawfile import law_dict

        return law_dict(self, name=name, source=source)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def percentile_interval(samples, level: float = 0.95):
    """(lo, hi) percentile interval of finite samples, or (nan, nan) if there are none."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(s, [q, 100 - q])
    return (float(lo), float(hi))
