"""How many CPUs this process may use, which both executors plan their trials from: the cores its CPU affinity
allows (`taskset`, `numactl`, a batch scheduler's CPU binding, a container's cpuset) and its container's CPU quota
(`docker --cpus`, a Kubernetes CPU limit), whichever is smaller.

Ray counts the quota but not the affinity; `os.sched_getaffinity` counts the affinity but not the quota. Ray's own
count is a private function, and the local executor must not import Ray, so the two cgroup files Ray reads are
read here too."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = "/sys/fs/cgroup"


def usable_cpus(cgroup_root: str = CGROUP_ROOT) -> int:
    """The CPUs this process may use (at least 1): the smaller of its affinity and its cgroup's CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.floor(quota))  # a quota of 1.5 CPUs runs one one-CPU trial, as on Ray
    return max(1, cpus)


def cgroup_cpu_quota(cgroup_root: str = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us` over
    `cpu.cfs_period_us`), or None where there is none or it cannot be read."""
    root = Path(cgroup_root)
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100_000)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
