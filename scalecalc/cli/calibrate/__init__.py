"""``scalecalc calibrate``: train tiny-model sweeps, then re-estimate the scaling constants.

``run`` trains a recipe into a results store, ``status`` shows where it stands, ``fit`` estimates
the constants and writes a law file, ``report`` shows them with a held-out check; ``import``
fills a store from your own logs and ``design`` proposes a sweep before you spend on it. torch (the
``calibrate`` extra) is imported only inside ``run``; ``status``, ``fit`` and ``report`` read the
store with the standard library and numpy/scipy.
"""

from scalecalc.cli.base import app
from scalecalc.cli.calibrate import design, fit, import_, report, run, status  # noqa: F401  (each attaches its command)
from scalecalc.cli.calibrate.common import calibrate_app

app.add_typer(calibrate_app, name="calibrate")
