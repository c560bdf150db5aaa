"""The Slurm executor: one job array through submitit, requeued on preemption or node failure.

Each array task trains one unit (:func:`scalecalc.calibration.executors.task.train_unit_json`,
JSON in and out) and submitit writes its result beside the job's logs in a folder every node
sees (``--shared-dir``/slurm, else ``OUT/slurm``). The driver polls for results and ``squeue``
(a job gone from the queue with no result failed for good), and commits them to the store.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from scalecalc.calibration.executors.base import RunOutcome
from scalecalc.calibration.executors.driver import RemoteExecutor
from scalecalc.errors import UsageError

GONE_GRACE_S = 30.0  # a job absent from squeue this long with no result has failed


def parse_time(value: str) -> int:
    """``--time`` in minutes: ``90``, ``MM:SS``, ``HH:MM:SS`` or ``D-HH:MM:SS`` (sbatch's forms)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not m:
        raise UsageError(f"--time {value}: give minutes or [D-]HH:MM:SS, e.g. --time 2:00:00")
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if c is not None:
        minutes = a * 60 + b + (c > 0)
    elif b is not None:
        minutes = a * 60 + b if days is not None else a + (b > 0)
    else:
        minutes = a * 60 if days is not None else a
    return (days or 0) * 1440 + minutes


def sbatch_flags_to_params(flags) -> dict:
    """``--qos=low`` / ``--exclusive`` -> submitit's additional parameters."""
    params = {}
    for flag in flags:
        m = re.fullmatch(r"--([A-Za-z][\w-]*)(?:=(.*))?", flag.strip())
        if not m:
            raise UsageError(f"--sbatch-flag {flag}: give a long sbatch flag, e.g. --sbatch-flag=--qos=low")
        params[m.group(1).replace("-", "_")] = True if m.group(2) is None else m.group(2)
    return params


class SlurmExecutor(RemoteExecutor):
    name = "slurm"

    def __init__(self, options):
        super().__init__(options)
        self.jobs: dict = {}  # submitit Job -> unit id
        self.gone: dict = {}  # job id -> when first seen gone from squeue
        self.folder: Path | None = None

    def validate(self) -> None:
        if self.options.time is not None:
            parse_time(self.options.time)
        sbatch_flags_to_params(self.options.sbatch_flags)
        super().validate()
        if shutil.which("sbatch") is None:
            raise UsageError(
                "--executor slurm: sbatch is not on PATH; run on a Slurm login node "
                "(or install the Slurm client), or use --executor local|ray"
            )

    def connect(self) -> None:
        partitions = [p.rstrip("*") for p in _slurm(["sinfo", "-h", "-o", "%P"]).split()]
        part = self.options.partition
        if part is not None and part not in partitions:
            raise UsageError(
                f"--partition {part}: no such Slurm partition; this cluster has {', '.join(partitions) or 'none'}"
            )
        gpus = self.options.gpus_per_run or 0
        if gpus:
            args = ["sinfo", "-h", "-o", "%G"] + (["-p", part] if part else [])
            most = max((int(m.group(1)) for m in re.finditer(r"gpu(?::[^:(,\s]+)?:(\d+)", _slurm(args))), default=0)
            if gpus > most:
                raise UsageError(
                    f"--gpus-per-run {gpus:g}: no node of partition "
                    f"{part or '(default)'} has that many GPUs (the most is {most}); "
                    f"give at most {most}"
                )

    def run(self, store, out_dir, ids, progress, stop, **kwargs):
        base = Path(self.options.shared_dir) if self.options.shared_dir else Path(out_dir)
        self.folder = base / "slurm"
        return super().run(store, out_dir, ids, progress, stop, **kwargs)

    def submit(self, units) -> dict[str, str]:
        import submitit

        from scalecalc.calibration.executors.task import train_unit_json

        o = self.options
        executor = submitit.SlurmExecutor(folder=str(self.folder / "%j"), max_num_timeout=o.max_retries)
        params = {"cpus_per_task": 1, "ntasks_per_node": 1, "nodes": 1}
        if o.partition:
            params["partition"] = o.partition
        if o.time:
            params["time"] = parse_time(o.time)
        if o.gpus_per_run:
            params["gres"] = f"gpu:{int(o.gpus_per_run)}"
        if o.array_parallelism:
            params["array_parallelism"] = o.array_parallelism
        # requeue on node failure or preemption: Slurm restarts the array task, which resumes
        # from its checkpoint on --shared-dir
        params["additional_parameters"] = {"requeue": True, **sbatch_flags_to_params(o.sbatch_flags)}
        executor.update_parameters(**params)
        try:
            jobs = executor.map_array(train_unit_json, [json.dumps(u.to_dict()) for u in units])
        except Exception as exc:  # sbatch refused the array
            raise UsageError(
                f"--executor slurm: sbatch refused the job array "
                f"({str(exc).strip().splitlines()[-1][:200]}); check --partition, "
                f"--time and --sbatch-flag"
            ) from None
        tasks = {}
        for unit, job in zip(units, jobs):
            self.jobs[job] = unit.unit_id
            tasks[unit.unit_id] = job.job_id
        return tasks

    def poll(self):
        out = []
        queued = None
        for job in list(self.jobs):
            if job.paths.result_pickle.exists():
                uid = self.jobs.pop(job)
                try:
                    out.append((uid, [RunOutcome.from_dict(d) for d in json.loads(job.result())]))
                except Exception as exc:  # the task raised: submitit kept its traceback
                    text = str(exc).strip().splitlines()
                    out.append((uid, f"slurm job {job.job_id}: {text[-1] if text else exc}"[:500]))
                continue
            if queued is None:
                queued = _squeue()
            if queued is None or job.job_id in queued:  # squeue failed: ask again next poll
                self.gone.pop(job.job_id, None)
                continue
            first = self.gone.setdefault(job.job_id, time.monotonic())
            if time.monotonic() - first > GONE_GRACE_S and not job.paths.result_pickle.exists():
                uid = self.jobs.pop(job)
                out.append((uid, f"slurm job {job.job_id} left the queue without a result; see {job.paths.stderr}"))
        return out

    def cancel(self) -> list[str]:
        ids = [job.job_id for job in self.jobs]
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, text=True)
        self.jobs.clear()
        return ids


def _slurm(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"--executor slurm: {args[0]} failed ({exc}); is this a Slurm login node?") from None
    if out.returncode != 0:
        reason = (out.stderr or out.stdout).strip().splitlines()
        raise UsageError(
            f"--executor slurm: cannot reach the Slurm controller ({args[0]}: "
            f"{reason[-1] if reason else out.returncode}); check slurmctld or "
            f"use --executor local|ray"
        )
    return out.stdout


def _squeue() -> set[str] | None:
    """Job ids (``123_4`` for array tasks, expanded) still pending, running or requeued; None
    when the controller did not answer."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return set(out.stdout.split())
