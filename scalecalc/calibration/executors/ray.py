"""The Ray executor: one Ray task per unit, ``num_gpus`` per run (fractions share a GPU),
``max_retries`` for lost workers; results come back to the driver through the object store."""

from __future__ import annotations

import os
import socket

from scalecalc.calibration.executors.base import RunOutcome
from scalecalc.calibration.executors.driver import RemoteExecutor
from scalecalc.errors import UsageError


class RayExecutor(RemoteExecutor):
    name = "ray"

    def __init__(self, options):
        super().__init__(options)
        self.refs: dict = {}  # ObjectRef -> unit id

    def connect(self) -> None:
        import ray

        address = self.options.address or "auto"
        _check_reachable(address)  # ray.init retries an unreachable address for minutes
        try:
            ray.init(
                address=address,
                log_to_driver=False,
                ignore_reinit_error=True,
                logging_level="ERROR",
                configure_logging=True,
            )
        except Exception as exc:  # ConnectionError, RuntimeError, auth errors: all one message
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"--address {address}: no Ray cluster reachable ({reason[:160]}); "
                f"start one with `ray start --head` and pass its HOST:PORT (with "
                f"RAY_AUTH_TOKEN set if the cluster uses token auth)"
            ) from None
        gpus = self.options.gpus_per_run or 0
        most = max((n["Resources"].get("GPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if gpus > most:
            ray.shutdown()
            raise UsageError(
                f"--gpus-per-run {gpus:g}: no node of the Ray cluster at {address} "
                f"has that many GPUs (the most is {most:g}); give at most {most:g}"
            )

    def submit(self, units) -> dict[str, str]:
        import ray

        from scalecalc.calibration.executors.task import train_unit

        remote = ray.remote(train_unit).options(
            num_gpus=self.options.gpus_per_run or 0,
            num_cpus=1,
            max_retries=self.options.max_retries,
            retry_exceptions=False,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}},
        )
        tasks = {}
        for unit in units:
            ref = remote.remote(unit.to_dict())
            self.refs[ref] = unit.unit_id
            tasks[unit.unit_id] = ref.task_id().hex()
        return tasks

    def poll(self):
        import ray

        if not self.refs:
            return []
        ready, _ = ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        out = []
        for ref in ready:
            uid = self.refs.pop(ref)
            try:
                out.append((uid, [RunOutcome.from_dict(d) for d in ray.get(ref)]))
            except Exception as exc:  # the task failed for good (retries spent)
                text = str(exc).strip().splitlines()
                out.append((uid, f"ray: {type(exc).__name__}: {text[-1] if text else ''}"[:500]))
        return out

    def cancel(self) -> list[str]:
        import ray

        cancelled = []
        for ref in list(self.refs):
            ray.cancel(ref, force=True)
            cancelled.append(ref.task_id().hex())
        self.refs.clear()
        return cancelled

    def close(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _check_reachable(address: str) -> None:
    """A TCP connect to HOST:PORT (5 s), so a wrong --address fails at once."""
    if address == "auto" or address.startswith(("ray://", "local")):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: give auto or HOST:PORT of the Ray head (`ray start --head` prints it)")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(
            f"--address {address}: no Ray cluster reachable ({exc.strerror or exc}); "
            f"start one with `ray start --head` and pass its HOST:PORT"
        ) from None
