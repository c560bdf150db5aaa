"""Calibration estimates: stored learning curves -> Kaplan / Su et al. constants -> law file.

Library use::

    from scalecalc.calibration.store import Store
    from scalecalc.calibration.estimate import estimate, heldout_check
    est = estimate(Store("runs/"), bootstrap=100, seed=0)
    law = est.to_law("my-corpus")          # mapping in the law-file format (yaml.safe_dump it)
    check = heldout_check(Store("runs/"))  # L(N) on the smaller sizes predicts the largest final loss

The math works on plain :class:`Curve` records (no torch, no store), see ``curves.py``; the
procedure is in ``procedure.py``, the contour method in ``contour.py``, the forward Kaplan model
and the synthetic-curve generator in ``kaplan.py``.
"""

from .contour import BcritFit, Contour, contours, fit_bcrit
from .curves import Curve, curves_from_store, make_curve, replicate_groups, seed_spread
from .fits import CurveFit, PowerLawN, fit_curves, fit_loss_n, fit_loss_n_e
from .kaplan import KAPLAN_TABLE5, loss_nsb, synthetic_curves
from .procedure import estimate, heldout_check
from .result import Estimate

__all__ = [
    "Curve",
    "make_curve",
    "curves_from_store",
    "replicate_groups",
    "seed_spread",
    "Estimate",
    "estimate",
    "heldout_check",
    "Contour",
    "BcritFit",
    "contours",
    "fit_bcrit",
    "PowerLawN",
    "CurveFit",
    "fit_loss_n",
    "fit_loss_n_e",
    "fit_curves",
    "loss_nsb",
    "synthetic_curves",
    "KAPLAN_TABLE5",
]
