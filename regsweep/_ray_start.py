"""Starting or joining the Ray a sweep runs on.

A local Ray that regsweep starts for one sweep is started without the two head processes a sweep never uses:
the autoscaler monitor (a one-machine Ray has nothing to scale) and the log monitor (it forwards the workers'
output to drivers that ask for it, and regsweep's driver does not: `log_to_driver=False`). `ray start` has
flags for both (`--no-monitor`, `--include-log-monitor=false`); `ray.init` has none, so they are given to the
`RayParams` it builds. On two cores this takes about 1.5 s of wall time and 2.5 s of CPU off each sweep's Ray
start and stop.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from typing import Any, Iterator

import ray

from regsweep._cpus import usable_cpus

# What a sweep's own local Ray leaves out: RayParams' fields, as `ray start` sets them from its flags.
UNUSED_HEAD_PROCESSES = {"no_monitor": True, "include_log_monitor": False}


def ensure_ray() -> None:
    """Join the cluster in RAY_ADDRESS, or start a quiet local Ray."""
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    starts_own_ray = False
    if not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False
        # Ray leaves every GPU visible to a trial that asked for none (resources.gpu: 0), so `device: auto`
        # would put all of them on the GPU, unaccounted. With this, Ray hides the GPUs from such trials;
        # the local Ray's processes inherit it (cluster.yaml sets it on the cluster's nodes).
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "1")
        if not _joins_running_ray():
            # Ray counts cgroup quotas but not CPU affinity: under `taskset -c 0-3` on a 64-core machine it
            # would run 64 one-CPU trials on four cores.
            options["num_cpus"] = usable_cpus()
            starts_own_ray = True
    with without_unused_head_processes() if starts_own_ray else contextlib.nullcontext():
        ray.init(**options)


def _joins_running_ray() -> bool:
    """Whether ray.init() without an address will join a Ray that `ray start` left running on this machine (as
    on cluster.yaml's head) instead of starting one; it then refuses num_cpus. Ray's own lookup is private: where
    it has moved, assume a join, so the local Ray keeps Ray's own CPU count."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(None) is not None
    except Exception:  # any failure of a private function means "cannot tell"
        return True


@contextlib.contextmanager
def without_unused_head_processes() -> Iterator[None]:
    """While inside, a local Ray that ray.init() starts has no autoscaler monitor and no log monitor. RayParams
    is Ray's private class: where it has moved or lost these fields, Ray starts as it always does."""
    try:
        from ray._private import parameter

        original = parameter.RayParams
        fields = inspect.signature(original.__init__).parameters
        arranged = all(name in fields for name in UNUSED_HEAD_PROCESSES)
    except Exception:  # any change to a private class means "start Ray as Ray does"
        arranged = False
    if not arranged:
        yield
        return

    def lean_params(*args: Any, **kwargs: Any) -> Any:
        for name, value in UNUSED_HEAD_PROCESSES.items():
            kwargs.setdefault(name, value)
        return original(*args, **kwargs)

    parameter.RayParams = lean_params
    try:
        yield
    finally:
        parameter.RayParams = original
