"""The local executor: this machine's devices, one worker per device, runs claimed from the store
(the sweep's original path, :func:`scalecalc.calibration.sweep._worker_loop`)."""

from __future__ import annotations

from pathlib import Path

from scalecalc.calibration.executors.base import Executor


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, options, devices: tuple[str, ...] = ("cpu",)):
        super().__init__(options)
        self.devices = devices

    def run(self, store, out_dir: Path, ids, progress, stop, *, device: str = "cpu", **kwargs):
        from scalecalc.calibration import sweep

        devices = self.devices if len(self.devices) > 1 else (device,)
        if len(devices) == 1:
            return sweep._worker_loop(store, Path(out_dir), ids, devices[0], progress, stop, **kwargs)
        return (), sweep._spawn_workers(Path(out_dir), ids, devices, store, progress, kwargs)
