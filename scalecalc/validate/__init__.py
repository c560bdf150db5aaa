"""Validation of every kind of user input, with its limits named in :mod:`.limits`.

One module per input kind: :mod:`.numbers` (option values and budget counts), :mod:`.yamlfile`
(law files and recipes: size, alias and node limits, safe loader only), :mod:`.laws` (a law's
loss behaves like a loss), :mod:`.files` (bounded reads of run files, configs and stdin),
:mod:`.paths` (output paths, checked before any work and written atomically). Each raises a
:class:`~scalecalc.errors.ScalecalcError` whose one-line message names the option or file, the
limit or valid range, and the fix. Importing this package is cheap (no numpy, no yaml).
"""
