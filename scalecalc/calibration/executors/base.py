"""The executor interface, its options and the unit of work sent to remote workers."""

from __future__ import annotations

import importlib
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scalecalc.errors import MissingDependency, UsageError

EXECUTORS = ("local", "ray", "slurm")
EXTRA_MODULE = {"ray": ("ray", "ray"), "slurm": ("submitit", "slurm")}  # executor -> (module, extra)


@dataclass(frozen=True)
class ExecutorOptions:
    """What ``calibrate run`` passes to an executor (CLI option names in comments).

    ``gpus_per_run`` may be a fraction on Ray (several tiny runs share a GPU); ``time`` is a
    Slurm time limit (minutes or ``[D-]HH:MM:SS``); ``sbatch_flags`` are passed through verbatim.
    """

    name: str = "local"  # --executor
    address: str | None = None  # --address (ray: auto or HOST:PORT)
    gpus_per_run: float | None = None  # --gpus-per-run
    partition: str | None = None  # --partition (slurm)
    time: str | None = None  # --time (slurm)
    array_parallelism: int | None = None  # --array-parallelism (slurm)
    sbatch_flags: tuple[str, ...] = ()  # --sbatch-flag, repeatable (slurm)
    shared_dir: str | None = None  # --shared-dir: checkpoints every node sees
    max_retries: int = 3  # --max-retries: lost workers, node failures
    poll_s: float = 1.0  # how often the driver looks for finished work


@dataclass(frozen=True)
class WorkUnit:
    """One remote task: a list of runs (resolved stored configs) trained one after another.

    One run per unit today; a packed group of same-shape runs can be a unit later
    without changing the driver. JSON in, JSON out: no pickle of user data.
    """

    unit_id: str
    run_ids: tuple[str, ...]
    configs: tuple[dict, ...]
    checkpoint_dir: str | None = None  # on --shared-dir; None: a temp dir on the worker
    threads: int | None = None
    checkpoint_every_steps: int | None = None
    device: str = "auto"  # on the worker: auto (cuda, mps, cpu) or a device name

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunOutcome:
    """What a remote worker returns for one run: its final state and its whole curve.

    ``points`` are ``[step, tokens, flops, train_loss, val_loss, lr, wall_time]`` rows from step
    0 (those before a resumed checkpoint included); ``info`` is what
    :meth:`Store.set_run_info` takes; ``resumed_from`` is the checkpoint step it restarted at.
    """

    run_id: str
    status: str  # done | diverged | failed | interrupted
    error: str | None = None
    final_loss: float | None = None
    wall_time: float = 0.0
    info: dict = field(default_factory=dict)
    points: list = field(default_factory=list)
    resumed_from: int = 0
    host: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> RunOutcome:
        return cls(**d)


class Executor(ABC):
    """Runs a sweep's queued runs and reports them to the store (one writer: the driver)."""

    name = "?"

    def __init__(self, options: ExecutorOptions):
        self.options = options

    def validate(self) -> None:
        """Check options that need no cluster (extra installed, binaries on PATH, shared dir
        writable); raise :class:`UsageError` or :class:`MissingDependency`. Nothing is written."""
        check_shared_dir(self.options.shared_dir)

    def connect(self) -> None:  # noqa: B027 - a hook, empty by default
        """Reach the cluster and check the options against it (partition, GPUs per node); the
        local executor has nothing to reach."""

    @abstractmethod
    def run(self, store, out_dir: Path, ids: list[str], progress, stop, **train_kwargs):
        """Train the runs ``ids`` not yet done; return (results, interrupted)."""

    def close(self) -> None:  # noqa: B027 - a hook, empty by default
        """Release the connection to the cluster (nothing to release locally)."""


def check_shared_dir(shared_dir: str | None) -> None:
    if shared_dir is None:
        return
    path = Path(shared_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".scalecalc-write-test"):
            pass
    except OSError as exc:
        raise UsageError(
            f"--shared-dir {shared_dir}: not writable ({exc.strerror or exc}); give "
            f"a folder every node can write, e.g. on the cluster's shared "
            f"filesystem"
        ) from None


def require_extra(executor: str) -> None:
    module, extra = EXTRA_MODULE[executor]
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"--executor {executor}: {module} is not installed; install it with: pip install 'scalecalc[{extra}]'"
        ) from None


def make_executor(options: ExecutorOptions) -> Executor:
    """The executor named by ``options.name``, validated (no cluster contacted yet)."""
    if options.name not in EXECUTORS:
        raise UsageError(f"--executor {options.name}: unknown executor; choose local, ray or slurm")
    _check_common(options)
    if options.name == "local":
        from scalecalc.calibration.executors.local import LocalExecutor as cls
    elif options.name == "ray":
        require_extra("ray")
        from scalecalc.calibration.executors.ray import RayExecutor as cls
    else:
        require_extra("slurm")
        from scalecalc.calibration.executors.slurm import SlurmExecutor as cls
    executor = cls(options)
    executor.validate()
    return executor


def _check_common(o: ExecutorOptions) -> None:
    remote_only = {
        "--address": o.address,
        "--gpus-per-run": o.gpus_per_run,
        "--partition": o.partition,
        "--time": o.time,
        "--array-parallelism": o.array_parallelism,
        "--sbatch-flag": o.sbatch_flags or None,
    }
    if o.name == "local":
        given = [k for k, v in remote_only.items() if v is not None]
        if given:
            raise UsageError(
                f"{given[0]}: only for --executor ray or slurm; add --executor ray|slurm or drop {given[0]}"
            )
    if o.name == "ray":
        given = [
            k for k in ("--partition", "--time", "--array-parallelism", "--sbatch-flag") if remote_only[k] is not None
        ]
        if given:
            raise UsageError(f"{given[0]}: only for --executor slurm; drop it for Ray")
    if o.name == "slurm" and o.address is not None:
        raise UsageError("--address: only for --executor ray; Slurm is found through sbatch")
    if o.gpus_per_run is not None and o.gpus_per_run < 0:
        raise UsageError(f"--gpus-per-run {o.gpus_per_run}: give 0 or more GPUs")
    if o.name == "slurm" and o.gpus_per_run is not None and o.gpus_per_run != int(o.gpus_per_run):
        raise UsageError(
            f"--gpus-per-run {o.gpus_per_run}: Slurm allocates whole GPUs; give an "
            f"integer (fractions work with --executor ray)"
        )
    if o.max_retries < 0:
        raise UsageError(f"--max-retries {o.max_retries}: give 0 or more")
    if o.array_parallelism is not None and o.array_parallelism < 1:
        raise UsageError(f"--array-parallelism {o.array_parallelism}: give 1 or more")


def scratch_dir() -> str:
    """A worker-local folder for checkpoints when there is no --shared-dir."""
    return tempfile.mkdtemp(prefix="scalecalc-unit-", dir=os.environ.get("TMPDIR"))
