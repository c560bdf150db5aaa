"""The :class:`Estimate` record and its law file (README, "Law files").

Law written for a Kaplan-only calibration (no IsoFLOP sweep): Kaplan's loss is L(N, S_min), not
L(N, D), and turning it into L(N, D) needs B_crit(L), so it has no closed form; the file therefore
gives the compute-efficient allocation of Kaplan App. B in closed form instead:

- N*(C) = N_c (C_min/C_c)^(α_C/α_N) (1 + α_N/α_S)^(1/α_N)                 (eq B.9)
- α_C = 1/(1/α_S + 1/α_B + 1/α_N),
  C_c = 6 N_c B* S_c (1 + α_N/α_S)^(1/α_S + 1/α_N) (α_S/α_N)^(1/α_S)        (eq B.6-B.8)
- C_min = C/2: training at B = B_crit costs twice the minimum compute (eq 5.5, §5.1), the reading
  that reproduces Hoffmann et al. App. D.4 (docs/reference.md §1.9) and the built-in kaplan2020 law;
- D*(C) = C/(6 N*) (all of C spent at 6 N FLOPs per token, Kaplan §2.1);
- batch size = B_crit at the frontier loss L(C_min) = (C_c/C_min)^α_C (eq B.6, 1.4).

With an IsoFLOP sweep the file's ``loss`` is the fitted Chinchilla form instead, and the Kaplan
frontier is kept under ``provenance.formulas``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contour import Contour

#: Kaplan constants (Kaplan eq 1.4 / 1.6) in the law file.
KAPLAN = ("N_c", "alpha_N", "S_c", "alpha_S", "Bstar", "alpha_B")
_DEFINE = {  # constants only: Law.environment evaluates every define, also without C
    "alpha_C": "1 / (1/alpha_S + 1/alpha_B + 1/alpha_N)",
    "C_c": "6 * N_c * Bstar * S_c * (1 + alpha_N/alpha_S)**(1/alpha_S + 1/alpha_N) * (alpha_S/alpha_N)**(1/alpha_S)",
}
_N_OPT = "N_c * (C / 2 / C_c)**(alpha_C/alpha_N) * (1 + alpha_N/alpha_S)**(1/alpha_N)"  # eq B.9
_ALLOCATION = {
    "params": _N_OPT,
    "tokens": f"C / (6 * {_N_OPT})",
    # B_crit at the frontier loss L(C_min) = (C_c/C_min)**alpha_C (eq B.6, 1.4)
    "batch_size": "Bstar * (C_c / (C / 2))**(-alpha_C/alpha_B)",
}
_FORMULAS = {
    "C_min": "C / 2  # FLOPs at B << B_crit when training at B = B_crit (eq 5.5)",
    "loss_N_Smin": "(N_c/N)**alpha_N + (S_c/S_min)**alpha_S  # Kaplan eq 1.6, S_min = S/(1 + B_crit(L)/B)",
    "loss_C": "(C_c/C_min)**alpha_C  # Kaplan eq B.6, C_min = C/2",
    "steps": "S_min * (1 + B_crit/B)  # Kaplan eq 5.4: steps at batch B tokens",
    "S_min_opt": "C_c/(6*N_c*Bstar) * (1 + alpha_N/alpha_S)**(-1/alpha_N) * (C_min/C_c)**(alpha_C/alpha_S)  # eq B.10",
}


#: (unit, meaning) of each constant, for reports: ``Estimate.rows``.
DESCRIPTIONS = {
    "N_c": ("params", "L(N) scale, Kaplan eq 1.6 fit to the curves"),
    "alpha_N": ("", "L(N) exponent, Kaplan eq 1.6"),
    "S_c": ("steps", "L(S_min) scale, Kaplan eq 1.6"),
    "alpha_S": ("", "L(S_min) exponent, Kaplan eq 1.6"),
    "Bstar": ("tokens", "critical batch scale, B_crit = B*/L^(1/alpha_B), eq 1.4"),
    "alpha_B": ("", "critical batch exponent, eq 1.4 (contour method)"),
    "alpha_C": ("", "L(C_min) exponent, eq B.7"),
    "C_c": ("FLOPs", "L(C_min) scale, eq B.8"),
    "N_c_final": ("params", "L(N) scale from final losses, eq 1.1"),
    "alpha_N_final": ("", "L(N) exponent from final losses, eq 1.1"),
    "E_N": ("nats", "irreducible loss of L = E + (N_c/N)^alpha_N"),
    "N_c_E": ("params", "L(N) scale with irreducible term"),
    "alpha_N_E": ("", "L(N) exponent with irreducible term"),
    "E": ("nats", "Chinchilla irreducible loss, Hoffmann eq. 2"),
    "A": ("", "Chinchilla N coefficient"),
    "B": ("", "Chinchilla D coefficient"),
    "alpha": ("", "Chinchilla N exponent"),
    "beta": ("", "Chinchilla D exponent"),
    "G": ("params", "N* = G C^a prefactor (IsoFLOP)"),
    "a": ("", "N* = G C^a exponent (IsoFLOP)"),
    "H": ("tokens", "D* = H C^b prefactor (IsoFLOP)"),
    "b": ("", "D* = H C^b exponent (IsoFLOP)"),
}


@dataclass(frozen=True)
class Estimate:
    """Scaling constants re-estimated from a calibration sweep.

    Attributes
    ----------
    constants : dict
        ``N_c``, ``alpha_N``, ``S_c``, ``alpha_S`` (Kaplan eq 1.6, fitted to the curves after warmup),
        ``Bstar``, ``alpha_B`` (eq 1.4, contour method), ``alpha_C``, ``C_c`` (eq B.6-B.8, FLOPs),
        ``N_c_final``, ``alpha_N_final`` (eq 1.1 from final losses), ``E_N``, ``N_c_E``,
        ``alpha_N_E`` (L = E_N + (N_c/N)^α_N), and with an IsoFLOP sweep ``E``, ``A``, ``B``,
        ``alpha``, ``beta`` (Hoffmann eq. 2) and ``a`` (N* ∝ C^a). Absent when not estimable.
    intervals : dict
        Bootstrap percentile interval (low, high) per constant at ``method["confidence"]``.
    bootstrap : dict
        Replicates of the Kaplan constants, aligned (replicate i of every column comes from the same
        resample), for the law file.
    n_runs, n_sizes : int
        Finished runs used, and distinct model sizes among them.
    warnings : tuple of str
        Reasons to distrust a constant (few sizes, narrow range, failed contours, E at a bound).
    provenance : dict
        Recipe, corpus hash, devices, versions, date.
    fitted_range : dict
        [low, high] of params (non-embedding), tokens, compute, loss and batch (tokens).
    contours : tuple of Contour
        Every equal-loss contour tried (for reports and plots).
    method : dict
        How it was done: joint fit or not, bootstrap size and seed, fit residuals.
    """

    constants: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    bootstrap: dict[str, tuple[float, ...]]
    n_runs: int
    n_sizes: int
    warnings: tuple[str, ...]
    provenance: dict[str, Any]
    fitted_range: dict[str, tuple[float, float]]
    contours: tuple[Contour, ...] = field(default=(), repr=False)
    method: dict[str, Any] = field(default_factory=dict)

    @property
    def has_kaplan(self) -> bool:
        """All six Kaplan constants were estimated (the allocation can be written)."""
        return all(k in self.constants for k in KAPLAN)

    @property
    def has_chinchilla(self) -> bool:
        return all(k in self.constants for k in ("E", "A", "B", "alpha", "beta"))

    def rows(self) -> list[dict]:
        """One row per constant for a report table: name, value, low, high, unit, meaning."""
        out = []
        for name, value in self.constants.items():
            lo, hi = self.intervals.get(name, (None, None))
            unit, meaning = DESCRIPTIONS.get(name, ("", ""))
            out.append({"name": name, "value": value, "low": lo, "high": hi, "unit": unit, "meaning": meaning})
        return out

    def to_dict(self) -> dict:
        """JSON-ready dictionary (plain floats, lists)."""
        return {
            "constants": dict(self.constants),
            "intervals": {k: [lo, hi] for k, (lo, hi) in self.intervals.items()},
            "n_runs": self.n_runs,
            "n_sizes": self.n_sizes,
            "warnings": list(self.warnings),
            "provenance": dict(self.provenance),
            "fitted_range": {k: list(v) for k, v in self.fitted_range.items()},
            "method": dict(self.method),
            "contours": [
                {
                    "N": c.N,
                    "L": c.L,
                    "S_min": c.S_min,
                    "E_min": c.E_min,
                    "B_crit": c.B_crit,
                    "ok": c.ok,
                    "message": c.message,
                }
                for c in self.contours
            ],
        }

    def to_law(self, name: str = "calibrated") -> dict:
        """The law file as a mapping (see the module docstring); :meth:`write_law` writes it."""
        from scalecalc.errors import NotEnoughData

        recipe = self.provenance.get("recipe") or "a calibration sweep"
        law: dict[str, Any] = {
            "name": name,
            "title": f"Calibrated on {recipe} ({self.n_runs} runs, {self.n_sizes} model sizes)",
            "source": (
                "scalecalc calibrate: Kaplan et al. 2020 §5 / App. B constants by the Su et al. "
                "2024 procedure"
                + (", Chinchilla form by scalecalc.fit" if self.has_chinchilla else "")
                + f", {self.provenance.get('date', '')}"
            ).rstrip(", "),
        }
        kaplan = {k: self.constants[k] for k in KAPLAN if k in self.constants}
        if self.has_chinchilla:
            law.update(
                form="chinchilla",
                loss="E + A / N**alpha + B / D**beta",
                constants={**{k: self.constants[k] for k in ("E", "A", "B", "alpha", "beta")}, **kaplan},
                flops="6nd",
                params_kind="total",
            )
        elif self.has_kaplan:
            law.update(
                form="kaplan",
                define=dict(_DEFINE),
                params=_ALLOCATION["params"],
                tokens=_ALLOCATION["tokens"],
                constants=kaplan,
                flops="kaplan",
                params_kind="non_embedding",
                hyperparameters={"batch_size": _ALLOCATION["batch_size"]},
            )
        else:
            missing = ", ".join(k for k in KAPLAN if k not in self.constants)
            raise NotEnoughData(
                f"cannot write a plannable law: {missing} not estimated and no "
                "IsoFLOP sweep; add a batch-size sweep (calibrate/batch-size.yaml) "
                "or an IsoFLOP grid (calibrate/isoflop.yaml)"
            )
        if "Bstar" in kaplan and "alpha_B" in kaplan:
            law["critical_batch"] = "Bstar / L**(1/alpha_B)"
        law["fitted_range"] = {k: list(v) for k, v in self.fitted_range.items()}
        if self.provenance.get("shape"):
            law["shape"] = dict(self.provenance["shape"])  # the sweep's vocab, context, aspect
        cols = {k: list(v) for k, v in self.bootstrap.items() if k in law["constants"]}
        if cols:
            law["bootstrap"] = cols
        law["warnings"] = list(self.warnings)
        if not self.has_chinchilla:
            law["warnings"].append(
                "allocation is Kaplan's App. B frontier (eq B.9) at C_min = C/2, "
                "i.e. training at B = B_crit; N counts non-embedding parameters"
            )
        law["provenance"] = {
            **self.provenance,
            "estimates": {k: v for k, v in self.constants.items() if k not in law["constants"]},
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "method": dict(self.method),
            "formulas": dict(_FORMULAS) if self.has_kaplan else {},
        }
        return law

    def write_law(self, path, name: str = "calibrated") -> Path:
        """Write :meth:`to_law` as YAML to ``path`` atomically (temp file, fsync, os.replace),
        keys in reading order (``sort_keys=False``) like a published law file."""
        return write_yaml(self.to_law(name), path)


def write_yaml(law: dict, path) -> Path:
    """Write a law mapping with the one law-file writer (:mod:`scalecalc.laws.lawfile`), creating
    the folder first."""
    from scalecalc.laws.lawfile import write_law

    return write_law(path, law, make_parents=True)
