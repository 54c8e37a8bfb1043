"""Trial slots of the local executor: how many trials fit this machine at once, and which GPUs each sees."""

from __future__ import annotations

import math
import os

from regsweep._spec import SpecError
from regsweep._validate import Sweep
from trainables import Problem


def slot_devices(sweep: Sweep) -> list[str]:
    """CUDA_VISIBLE_DEVICES of every trial slot on this machine (see plan_slots)."""
    res = sweep.spec.resources
    gpus = 0
    if res.gpu > 0:
        import torch

        gpus = torch.cuda.device_count()
    return plan_slots(len(os.sched_getaffinity(0)), gpus, res.cpu, res.gpu, sweep.spec.search.max_concurrent)


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
        cpus = len(os.sched_getaffinity(0))
        have = f"{cpus} CPUs" if res.gpu <= 0 else f"{cpus} CPUs and the GPUs torch sees"
        problems.append(Problem("resources", {"cpu": res.cpu, "gpu": res.gpu}, f"this machine has {have}, too few for "
                                "one trial; ask for less, or run on a machine or cluster that has them "
                                "(resources.executor: ray)", source))
    if problems:
        raise SpecError(problems)
    return slots
