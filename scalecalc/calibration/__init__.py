"""The calibration half of scalecalc: train tiny GPTs on the user's data, re-estimate the constants.

A recipe (:mod:`.recipe`, ``calibrate/*.yaml``) expands into runs; :mod:`.sweep` trains them
(:mod:`.model` the GPT, :mod:`.data` the corpus, :mod:`.loop` one run) into a SQLite results store
(:mod:`.store`); :mod:`.estimate` turns the stored learning curves into constants and a law file
that ``scalecalc plan --law`` reads like a published one. See ``docs/architecture.md``.

:mod:`.recipe`, :mod:`.store` and :mod:`.estimate` need only numpy and scipy; :mod:`.model`,
:mod:`.data`, :mod:`.loop` and :mod:`.sweep` need torch (the ``calibrate`` extra) and say so in one
line when it is missing.
"""
