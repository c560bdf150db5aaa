"""One exception hierarchy for the core; the CLI turns it into ``Error: ...`` and an exit code.

Every message names the option or file at fault and says how to fix it, because the CLI prints
it verbatim as a single line on stderr.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (documented in the README and the man page); :func:`exit_status` is
    the one rule that maps a failure to them."""

    OK = 0
    FAILURE = 1  # a valid request that could not be carried out (bad data, infeasible target)
    USAGE = 2  # the command line or an input file is malformed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class ScalecalcError(Exception):
    """Base class: a user-facing failure with a one-line message."""

    exit_code: ExitCode = ExitCode.FAILURE


class UsageError(ScalecalcError):
    """A malformed option value, a conflicting or missing option."""

    exit_code = ExitCode.USAGE


class UnknownName(UsageError):
    """An unknown law, GPU, convention or other named choice."""

    def __init__(self, kind: str, name: str, valid: Iterable[str], option: str):
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(valid)}"
        super().__init__(f"{option}: unknown {kind} {name!r}; {hint}")
        self.name, self.valid, self.close = name, valid, close


class MissingInput(UsageError):
    """A file or folder named on the command line does not exist (a usage error, exit 2, like a
    bad option value: the command line names something that is not there)."""


class LawFileError(UsageError):
    """A law file that is malformed or uses a construct outside the formula whitelist."""


class InfeasibleTarget(ScalecalcError):
    """A target the law cannot reach (a loss at or below its floor, a budget too small)."""


class DataError(ScalecalcError):
    """Input data (runs CSV, corpus, store) that is missing, empty or invalid."""


class MalformedRuns(UsageError):
    """A runs file whose structure is wrong (e.g. tokens decreasing within a run): exit 2."""


class NotEnoughData(DataError):
    """Too few points or runs to fit the requested form."""


class RecipeError(UsageError):
    """A calibration recipe with invalid, missing or unknown keys (all listed at once)."""


class StoreError(ScalecalcError):
    """A results store that cannot be opened or belongs to another version."""


class MissingDependency(ScalecalcError):
    """An optional extra (torch, matplotlib) is needed but not installed."""

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingDependency:
        return cls(f"{module} is not installed; install it with: pip install 'scalecalc[{extra}]'")


def require(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingDependency` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency.for_extra(module, extra) from None


def exit_status(exc: BaseException) -> int:
    """The one exit rule (README "Exit codes"): 2 when the command line is wrong (unknown or
    malformed option, missing file named on it, bad input file syntax), 130 on Ctrl-C, 1 for every
    other failure (bad data, infeasible target, missing extra)."""
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, ScalecalcError):
        return int(exc.exit_code)
    code = getattr(exc, "exit_code", None)  # click's exceptions: UsageError and BadParameter say 2
    return int(ExitCode.USAGE) if code == 2 else int(ExitCode.FAILURE)
