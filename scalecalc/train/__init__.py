"""Training side of ``scalecalc calibrate``: the tiny GPT, its data and the training loop.

Everything here needs torch (the ``calibrate`` extra). Importing the package checks for it first,
so a missing torch is one line, "install scalecalc[calibrate]", not an ImportError traceback.
``scalecalc/cli/calibrate.py`` imports this package lazily, inside its commands.
"""

from scalecalc.errors import require

require("torch", "calibrate")
