"""Fitting scaling laws to a user's own runs (``scalecalc fit``).

Library use::

    from scalecalc.fit import read_runs, fit_law
    runs = read_runs("runs.csv", drop_top_loss=5)
    result = fit_law(runs, "chinchilla", bootstrap=1000)
    result.params["alpha"], result.intervals["alpha"]
    law = result.to_law(name="mylaw", source="my ladder")   # law-file mapping

Forms: ``chinchilla`` (Hoffmann et al. 2022 approach 3), ``isoflop`` (approach 2), ``envelope``
(approach 1), ``kaplan`` (Kaplan et al. 2020 eq. 1.1, 1.2, 1.5).
"""

from scalecalc.fit.api import FORMS, fit_law
from scalecalc.fit.result import FitResult
from scalecalc.fit.runs import Runs, read_runs

__all__ = ["FORMS", "FitResult", "Runs", "fit_law", "read_runs"]
