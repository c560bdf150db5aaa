"""The named choices of the CLI, validated when the command line is parsed.

Each list has one source, which the help text, the validation and the shell completion
(:mod:`scalecalc.cli.complete`) all read: FLOP conventions and shape rules in
:mod:`scalecalc.flops`, hyperparameter rules in :mod:`scalecalc.hparams`, GPUs in the catalog
(:mod:`scalecalc.hardware`, looked up with its aliases). A bad value is one ``Error:`` line naming
the option and the closest valid names (exit 2) before any work is done.
"""

from __future__ import annotations

from scalecalc.errors import UnknownName
from scalecalc.flops import CONVENTIONS, SHAPE_RULES

LAW_HPARAMS = "law"  # --hparams law: the law file's own rules


def listed(names) -> str:
    """``a, b, c`` for a help text."""
    return ", ".join(names)


def hparams_names() -> list[str]:
    from scalecalc.hparams import RULES

    return [*RULES, LAW_HPARAMS]


def _check(kind: str, option: str, names) -> object:
    def callback(value):
        if value is None:
            return None
        valid = list(names())
        key = str(value).strip().lower()
        if key not in valid:
            raise UnknownName(kind, str(value), valid, option)
        return key

    return callback


check_flops = _check("FLOP convention", "--flops", lambda: CONVENTIONS)
check_shape_rule = _check("shape rule", "--shape-rule", lambda: SHAPE_RULES)
check_hparams = _check("hyperparameter rule", "--hparams", hparams_names)


def check_gpu(value):
    """A catalog name or alias (case, spaces and dashes ignored), returned as given."""
    if value is None:
        return None
    from scalecalc.hardware import get_gpu

    get_gpu(value, "--gpu")
    return value
