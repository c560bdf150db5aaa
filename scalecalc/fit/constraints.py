"""Fixed and prior-constrained constants of a parametric form (``--fix``, ``--prior``).

``--fix alpha=0.34`` removes a constant from the fit (its value is held). ``--prior E=1.8±0.1``
adds a Gaussian prior to the objective. The objective is a sum of robust penalties rho(r) of
log-loss residuals, which is -log likelihood times a temperature T; T is estimated as the mean
of r·psi(r) over the residuals of a fit without the priors (sigma**2 for squared residuals,
delta·mean|r| for Huber residuals beyond delta), so the prior adds
T·((value - mean)/sd)**2 / 2, the negative log prior on the objective's scale
(docs/reference.md §2.5).

In the batched optimiser a prior is two mirrored pseudo-observations ±c·(value - mean)/sd with
c = 1e-6 (inside any Huber delta >= 1e-4 up to 100 sd, so exactly quadratic) and weight
T/(2c**2) each; the mirror cancels the sign-dependent weights of the asymmetric objective.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from scalecalc.errors import UsageError

PSEUDO_SCALE = 1e-6
_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True)
class Constraints:
    """fixed: {constant: value}; priors: {constant: (mean, sd)} (constants named as printed)."""

    fixed: dict
    priors: dict

    def __bool__(self) -> bool:
        return bool(self.fixed or self.priors)


def _number(text: str, option: str, whole: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(
            f"{option}: cannot read {whole!r}; write NAME=VALUE, e.g. "
            f"{option} {'alpha=0.34' if option == '--fix' else 'E=1.8±0.1'}"
        ) from None
    if not np.isfinite(v):
        raise UsageError(f"{option}: {whole!r} is not a finite number")
    return v


def parse_constraints(fix=(), prior=()) -> Constraints:
    """Parse ``--fix NAME=VALUE`` and ``--prior NAME=MEAN±SD`` (also ``+-`` or ``+/-``)."""
    fixed, priors = {}, {}
    for text in fix or ():
        m = _ASSIGN.match(str(text))
        if not m:
            raise UsageError(f"--fix: cannot read {text!r}; write NAME=VALUE, e.g. --fix alpha=0.34")
        fixed[m.group(1)] = _number(m.group(2), "--fix", text)
    for text in prior or ():
        m = _ASSIGN.match(str(text))
        parts = re.split(r"±|\+/-|\+-", m.group(2)) if m else []
        if len(parts) != 2:
            raise UsageError(f"--prior: cannot read {text!r}; write NAME=MEAN±SD (or +-), e.g. --prior E=1.8±0.1")
        mean, sd = (_number(p, "--prior", text) for p in parts)
        if not sd > 0:
            raise UsageError(f"--prior: the sd in {text!r} must be > 0")
        priors[m.group(1)] = (mean, sd)
    both = set(fixed) & set(priors)
    if both:
        raise UsageError(f"--fix and --prior both name {', '.join(sorted(both))}; give one")
    return Constraints(fixed, priors)


def check_names(constraints: Constraints, model) -> None:
    """UsageError naming the constants a form does not have."""
    for option, names in (("--fix", constraints.fixed), ("--prior", constraints.priors)):
        for name in names:
            if name not in model.constant_names:
                raise UsageError(
                    f"{option}: --form {model.form} has no constant {name!r}; its "
                    f"constants are {', '.join(model.constant_names)}"
                )


class Constrained:
    """A model with some constants fixed and Gaussian priors on others.

    theta of this model is the base model's theta without the fixed entries. ``augment``
    appends the prior pseudo-observations to (X, y, weights); ``predict`` expects them there.
    """

    def __init__(self, base, constraints: Constraints, temperature: float = 1.0):
        check_names(constraints, base)
        self.base, self.constraints = base, constraints
        self.form = base.form
        self.uses = base.uses
        self.loss_formula = base.loss_formula
        self.constant_names = base.constant_names
        idx = {name: _theta_index(base, name) for name in constraints.fixed}
        self.fixed_idx = np.array(sorted(idx.values()), dtype=int)
        self.fixed_val = np.array([_to_theta(base, name, constraints.fixed[name]) for name in sorted(idx, key=idx.get)])
        for name, v in constraints.fixed.items():
            lo, hi = base.lower[idx[name]], base.upper[idx[name]]
            if not lo <= _to_theta(base, name, v) <= hi:
                raise UsageError(f"--fix: {name}={v:g} is outside the range the fit allows")
        self.free = np.setdiff1d(np.arange(len(base.names)), self.fixed_idx)
        self.names = tuple(base.names[i] for i in self.free)
        self.lower, self.upper = base.lower[self.free], base.upper[self.free]
        self.priors = [
            (name, int(np.flatnonzero(self.free == _theta_index(base, name))[0]), m, s)
            for name, (m, s) in constraints.priors.items()
        ]
        self.temperature = float(temperature)

    # Expansion between free and full theta ---------------------------------------------------
    def full(self, theta):
        theta = np.atleast_2d(theta)
        out = np.empty((theta.shape[0], len(self.base.names)), dtype=theta.dtype)
        out[:, self.free] = theta
        out[:, self.fixed_idx] = self.fixed_val
        return out

    def free_of(self, full_theta):
        return np.atleast_2d(full_theta)[:, self.free]

    def starts(self, grid=None):
        s = self.free_of(self.base.starts(grid))
        return np.unique(s, axis=0)

    def constants(self, theta):
        theta = np.asarray(theta, float)
        return self.base.constants(self.full(theta) if theta.ndim > 1 else self.full(theta)[0])

    # Pseudo-observations of the priors --------------------------------------------------------
    @property
    def n_pseudo(self) -> int:
        return 2 * len(self.priors)

    def augment(self, X, y, w):
        if not self.priors:
            return X, y, w
        p = self.n_pseudo
        weight = self.temperature / (2 * PSEUDO_SCALE**2)
        return (
            np.concatenate([X, np.zeros((X.shape[0], p))], axis=1),
            np.concatenate([y, np.zeros(p)]),
            np.concatenate([w, np.full(p, weight)]),
        )

    def predict(self, theta, X, jac=True):
        p = self.n_pseudo
        Xd = X[:, : X.shape[1] - p] if p else X
        m, J = self.base.predict(self.full(theta), Xd, jac)
        if J is not None:
            J = J[..., self.free]
        if not p:
            return m, J
        consts = self.base.constants(self.full(theta))
        pm, pj = [], []
        for name, j, mean, sd in self.priors:
            v = np.asarray(consts[name], float)
            z = PSEUDO_SCALE * (v - mean) / sd
            dz = PSEUDO_SCALE * _dconst(name, v) / sd  # d value / d theta_j
            pm += [z, -z]
            pj += [(j, dz), (j, -dz)]
        m = np.concatenate([m, np.stack(pm, axis=1)], axis=1)
        if J is None:
            return m, None
        Jp = np.zeros((J.shape[0], p, J.shape[2]))
        for k, (j, d) in enumerate(pj):
            Jp[:, k, j] = d
        return m, np.concatenate([J, Jp], axis=1)


_LOG_PARAMS = {"E": "e", "A": "a", "B": "b", "Nc": "c", "Dc": "c"}


def _theta_index(model, name: str) -> int:
    if name in model.names:
        return model.names.index(name)
    key = _LOG_PARAMS.get(name)
    if key in model.names:
        return model.names.index(key)
    for n in ("cN", "cD"):
        if name == n[1] + "c" and n in model.names:
            return model.names.index(n)
    raise UsageError(f"--fix/--prior: constant {name!r} cannot be constrained in --form {model.form}")


def _is_log(model, name) -> bool:
    return name not in model.names


def _to_theta(model, name, value):
    if _is_log(model, name):
        if not value > 0:
            raise UsageError(f"--fix: {name}={value:g} must be > 0")
        return float(np.log(value))
    return float(value)


def _dconst(name, v):
    """d constant / d theta: constants stored as logs (E = exp(e)) have derivative = value."""
    return v if name in _LOG_PARAMS else np.ones_like(v)


def temperature(residuals, objective: str, delta) -> float:
    """Mean of r·psi(r) over the residuals: the objective's temperature (see module docstring)."""
    from scalecalc.fit.objectives import penalty

    _, psi, _ = penalty(objective)
    r = np.asarray(residuals, float)
    return float(max(np.mean(r * psi(r, delta)), 1e-12))
