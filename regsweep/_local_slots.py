"""Trial slots of the local executor: how many trials fit this machine at once, which GPUs each sees, and
the pool of worker processes, one per slot (under Ray, one helper: see regsweep._sweep.execute)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from regsweep._cpus import usable_cpus
from regsweep._local_worker import serve, start_fork_server
from regsweep._spec import SpecError
from regsweep._validate import Sweep, model_problems
from trainables import DatasetError, Problem


def slot_devices(sweep: Sweep) -> list[str]:
    """CUDA_VISIBLE_DEVICES of every trial slot on this machine (see plan_slots)."""
    res = sweep.spec.resources
    gpus = 0
    if res.gpu > 0:
        import torch

        gpus = torch.cuda.device_count()
    return plan_slots(usable_cpus(), gpus, res.cpu, res.gpu, sweep.spec.search.max_concurrent)


def plan_slots(cpus: int, gpus: int, cpu: float, gpu: float, max_concurrent: int | None) -> list[str]:
    """As many trial slots as `cpus` and `gpus` allow for trials asking `cpu` and `gpu` each (and at most
    `max_concurrent`), each with the GPUs it sees: a fraction of a GPU packs slots onto one GPU in turn
    (0.25: four per GPU), a whole number gives each slot its own GPUs; '' for CPU trials."""
    count = int(cpus // cpu)
    if max_concurrent:
        count = min(count, max_concurrent)
    if gpu <= 0:
        return [""] * count
    width = max(1, math.ceil(gpu))
    count = min(count, int(gpus // gpu) if gpu <= 1 else gpus // width)
    first = [int(i * gpu) if gpu <= 1 else i * width for i in range(count)]
    return [",".join(str(d) for d in range(start, start + width)) for start in first]


def check_fits(sweep: Sweep, storage: str) -> list[str]:
    """The trial slots (see slot_devices); what the local executor cannot do is said here, before anything
    is written."""
    res, source = sweep.spec.resources, str(sweep.spec_path)
    slots = slot_devices(sweep)
    problems = []
    if "://" in storage:
        problems.append(Problem("resources.storage", storage, "the local executor keeps checkpoints on this machine's "
                                "disk: leave storage unset or name a local folder, or use resources.executor: ray",
                                source))
    if not slots:
        cpus = usable_cpus()
        have = f"{cpus} CPUs" if res.gpu <= 0 else f"{cpus} CPUs and the GPUs torch sees"
        problems.append(Problem("resources", {"cpu": res.cpu, "gpu": res.gpu}, f"this machine has {have}, too few for "
                                "one trial; ask for less, or run on a machine or cluster that has them "
                                "(resources.executor: ray)", source))
    if problems:
        raise SpecError(problems)
    return slots


@dataclass
class Slot:
    """One trial at a time: its worker process, the pipe to it, and the GPUs it sees."""

    devices: str
    process: Any = None
    conn: Any = None
    running: Any = None  # the trial it runs now (a _local._Running), or None


class WorkerPool:
    """The worker processes of one sweep, reused by its stages."""

    def __init__(self, sweep: Sweep, storage: str, devices: list[str] | None = None):
        """One worker per trial slot of this machine (check_fits), or one per entry of `devices` (each its
        CUDA_VISIBLE_DEVICES): `[""]` is the helper of a sweep under Ray, which runs no trial."""
        slots = check_fits(sweep, storage) if devices is None else devices
        self.slots = [Slot(visible) for visible in slots]
        self.sweep, self.storage = sweep, storage
        self._context = start_fork_server()  # a no-op when the CLI started it already

    def start(self, slot: Slot) -> None:
        ours, theirs = self._context.Pipe()
        # Not a daemon: a trainable may start processes of its own (DataLoader workers). close() ends it.
        slot.process = self._context.Process(target=serve, args=(theirs, slot.devices, dict(os.environ)),
                                             daemon=False, name="regsweep-worker")
        slot.process.start()
        theirs.close()
        slot.conn = ours

    def preflight(self, config: dict[str, Any] | None) -> None:
        """In the first worker, which has torch loaded: build and run the model of every config load_sweep left
        unchecked (sweep.unchecked_models), raising the SpecError load_sweep would have; then load the data of
        `config` and build its model (the data check of preflight_data, which also leaves the data loaded there),
        whose DatasetError is raised here. Either is one clear error before anything is written. Closes the pool
        on any error."""
        slot, sweep = self.slots[0], self.sweep
        try:
            unchecked = [unchecked_config for _, unchecked_config in sweep.unchecked_models]
            if config is None and not unchecked:
                return
            self.start(slot)  # waits until the fork server has imported torch
            slot.conn.send({"preflight": True, "trainable": sweep.spec.trainable, "config": config,
                            "check_models": unchecked, "threads": sweep.threads})
            found = self._answer(slot, "check the sweep's configs and data")
            problems = model_problems(sweep, found)  # none when the worker answered "ready"
            if problems:
                raise SpecError(problems)
            sweep.unchecked_models = []
        except BaseException:
            self.close()
            raise

    def export(self, checkpoint: str, target: str, meta: dict[str, Any]) -> None:
        """trainables.loop.export_model, run in an idle worker (this process need not import torch)."""
        slot = next((s for s in self.slots if s.process is not None and s.running is None), self.slots[0])
        if slot.process is None or not slot.process.is_alive():
            self.start(slot)
        slot.conn.send({"export": (checkpoint, target, meta)})
        self._answer(slot, "write the best model")

    def _answer(self, slot: Slot, what: str) -> list[list[Problem]]:
        try:
            kind, body = slot.conn.recv()
        except (EOFError, OSError):
            slot.process.join(timeout=5)
            raise RuntimeError(f"regsweep's worker process ended (exit code {slot.process.exitcode}) before it could "
                               f"{what}; a script of yours that starts sweeps must guard its entry point with "
                               "`if __name__ == '__main__':`, as any multiprocessing program") from None
        if kind == "error":
            if body["type"] == "DatasetError":
                raise DatasetError(body["text"])
            raise RuntimeError(f"a worker could not {what}:\n{body['traceback']}")
        return body if kind == "problems" else []

    def close(self) -> None:
        """Stop every worker (a trial still running is abandoned, as on Ctrl-C)."""
        for slot in self.slots:
            if slot.process is None:
                continue
            if slot.running is None:
                try:
                    slot.conn.send(None)
                except OSError:
                    pass
                slot.process.join(timeout=2)
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join(timeout=5)
            slot.conn.close()
            slot.process = slot.conn = slot.running = None
