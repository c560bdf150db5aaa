"""Where a sweep's runs train: one small interface, three engines (local, Ray, Slurm).

``make_executor(options)`` returns an :class:`~scalecalc.calibration.executors.base.Executor`.
The local executor trains in this process (or one process per device) and streams points into
the store. The Ray and Slurm executors send :class:`WorkUnit` s (a list of run configs: one run
today, a packed group of same-shape runs later) to remote workers that never open the SQLite
store; each unit returns its runs' points and final state and the driver
(:func:`scalecalc.calibration.executors.driver.drive`) commits them. README "Calibrating on a
cluster" says what runs where.
"""

from scalecalc.calibration.executors.base import (
    EXECUTORS,
    Executor,
    ExecutorOptions,
    RunOutcome,
    WorkUnit,
    make_executor,
)

__all__ = ["EXECUTORS", "Executor", "ExecutorOptions", "RunOutcome", "WorkUnit", "make_executor"]
