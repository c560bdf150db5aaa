"""A wall-clock limit on one step that user input can make run for ever (sympy's solver).

:func:`time_limit` uses ``SIGALRM`` (POSIX, main thread); elsewhere it runs the step unbounded,
because a thread cannot be interrupted safely from Python.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from scalecalc.errors import ScalecalcError


class TimeLimitExceeded(ScalecalcError):
    """A step ran past its limit (named in the message)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str, limit_name: str):
    """Raise :class:`TimeLimitExceeded` naming ``what`` and ``limit_name`` after ``seconds``."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _expired(signum, frame):
        raise TimeLimitExceeded(f"{what} took more than {seconds:g} s ({limit_name}); simplify the formula")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
