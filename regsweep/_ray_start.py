"""Starting or joining the Ray a sweep runs on.

A local Ray that regsweep starts for one sweep is started without the two head processes a sweep never uses:
the autoscaler monitor (a one-machine Ray has nothing to scale) and the log monitor (it forwards the workers'
output to drivers that ask for it, and regsweep's driver does not: `log_to_driver=False`). `ray start` has
flags for both (`--no-monitor`, `--include-log-monitor=false`); `ray.init` has none, so they are given to the
`RayParams` it builds. On two cores this takes about 1.5 s of wall time and 2.5 s of CPU off each sweep's Ray
start and stop. Where the user has turned Ray's usage stats off, it also has no API server (without the
dashboard, only the usage-stats reporter runs in it): 1.5 s of CPU less.

On such a Ray, Tune's trial actors also start in the worker processes Ray prestarted (one per CPU, Ray already
imported in them) instead of new ones: see tune_actors_in_prestarted_workers. 1-3 s less per sweep on two cores.
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


QUIET = {"logging_level": logging.ERROR, "log_to_driver": False}
IDLE_WORKER_KILLING_ENV = "RAY_idle_worker_killing_time_threshold_ms"

# The Ray this process started last: its node (a new ID at every start), and the environment its processes
# inherited from this one.
_own_ray: tuple[str, dict[str, str]] | None = None


def ensure_ray() -> None:
    """Join the cluster in RAY_ADDRESS, or start a quiet local Ray."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**QUIET)
        return
    # Ray leaves every GPU visible to a trial that asked for none (resources.gpu: 0), so `device: auto`
    # would put all of them on the GPU, unaccounted. With this, Ray hides the GPUs from such trials;
    # the local Ray's processes inherit it (cluster.yaml sets it on the cluster's nodes).
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "1")
    if _joins_running_ray():
        ray.init(include_dashboard=False, **QUIET)
    else:
        # Ray counts cgroup quotas but not CPU affinity: under `taskset -c 0-3` on a 64-core machine it
        # would run 64 one-CPU trials on four cores.
        start_local_ray(usable_cpus())


def start_local_ray(num_cpus: int) -> None:
    """Start a quiet local Ray of this process's own with `num_cpus` CPUs, as a sweep's own Ray starts."""
    global _own_ray
    # What Tune gives its trial actors as a runtime env (for PyTorch Lightning, ray#28197), inherited instead.
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    with without_unused_head_processes(), _without_idle_api_server(), _prestarted_workers_kept():
        ray.init(num_cpus=num_cpus, include_dashboard=False, **QUIET)
    _own_ray = (ray.get_runtime_context().get_node_id(), dict(os.environ))


@contextlib.contextmanager
def _prestarted_workers_kept() -> Iterator[None]:
    """A Ray started inside ends a surplus idle worker after 30 s idle, not Ray's 1 s. Once Tune's placement groups
    have reserved the CPUs, Ray counts the workers it prestarted as surplus; Tune asks for its actors a moment
    later, and half the time (in a test, 3 of 6 runs) Ray had already ended them and started new processes for
    the actors. The setting is a RayConfig name read from the environment by the processes ray.init starts, so it
    is this Ray's alone (this process's environment is put back); Ray ignores a name it does not know."""
    if IDLE_WORKER_KILLING_ENV in os.environ:  # the user's own setting stands
        yield
        return
    os.environ[IDLE_WORKER_KILLING_ENV] = "30000"
    try:
        yield
    finally:
        os.environ.pop(IDLE_WORKER_KILLING_ENV, None)


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


@contextlib.contextmanager
def _without_idle_api_server() -> Iterator[None]:
    """While inside, a local Ray that ray.init(include_dashboard=False) starts has no API server when the user has
    turned Ray's usage stats off (RAY_USAGE_STATS_ENABLED=0, `ray disable-usage-stats`). Without the dashboard,
    that process loads one module, the usage-stats reporter, which sends nothing for a Ray that ray.init started
    with the stats off; it costs 1.5 s of CPU at every start. With the stats on, it is left to report them.
    Ray has no setting for this: its private `Node.start_api_server` is skipped; where that or the stats check has
    moved, Ray starts as it always does."""
    try:
        from ray._common.usage import usage_lib
        from ray._private.node import Node

        original = Node.start_api_server
        arranged = (not usage_lib.usage_stats_enabled()
                    and "include_dashboard" in inspect.signature(original).parameters)
    except Exception:  # any change to Ray's private modules means "start Ray as Ray does"
        arranged = False
    if not arranged:
        yield
        return

    def without_reporter(node: Any, *, include_dashboard: bool | None, **kwargs: Any) -> None:
        if include_dashboard is not False:  # a dashboard asked for (or Ray's default) is started as always
            original(node, include_dashboard=include_dashboard, **kwargs)

    Node.start_api_server = without_reporter
    try:
        yield
    finally:
        Node.start_api_server = original


@contextlib.contextmanager
def tune_actors_in_prestarted_workers() -> Iterator[None]:
    """While inside, on a Ray this process started, Tune starts its trial actors in the worker processes Ray
    prestarted instead of new ones.

    Tune gives each trial actor a runtime env of environment variables (PL_DISABLE_FORK, and the driver's values
    of a few others such as AWS keys). Ray never places a task with a runtime env in a worker prestarted without
    one: it starts a new process (which imports Ray again) and ends a prestarted one. A Ray this process started
    inherited this process's environment, so Tune is left to pass only the variables whose values the workers
    lack: none, unless one was set or changed after Ray started. Tune keeps these in module-level names of its
    own; where they have moved, Tune starts its actors as it always does. Elsewhere (RAY_ADDRESS, a `ray start`
    Ray) nothing changes."""
    try:
        from ray.tune.execution import class_cache

        defaults, propagated = class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE
        own = _own_ray is not None and ray.is_initialized() and ray.get_runtime_context().get_node_id() == _own_ray[0]
    except Exception:  # any change to Tune's private module means "start actors as Tune does"
        own = False
    if not own:
        yield
        return
    inherited = _own_ray[1]
    class_cache.DEFAULT_ENV_VARS = {k: v for k, v in defaults.items() if inherited.get(k) != v}
    class_cache.ENV_VARS_TO_PROPAGATE = {k for k in propagated if os.environ.get(k) != inherited.get(k)}
    try:
        yield
    finally:
        class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE = defaults, propagated
