"""The garbage collector paused while a process of regsweep's own starts, then its start frozen.

A start imports libraries that make a few hundred thousand objects, which live as long as the process. While they
are made, the collector's full collections walk them again and again: in the driver of a local 64 x 3 sweep with
MLflow, five full collections took 0.8 s of CPU and the younger generations 0.45 s more; in the workers' fork
server, torch's and torch._dynamo's imports take 0.5-1 s longer with the collector on (BENCHMARKS.md). On two cores
that CPU is taken from trials. So the processes regsweep owns (the `regsweep run` and `regsweep resume` commands,
the workers' fork server, a Ray worker until its first trial has imported torch: `regsweep._preload`) `pause()` the
collector as they start and `release()` it once started (`finish()` at a command's end); a thread that
imports beside the start (MLflow's store opens on one) holds the pause until it is done (`held()`). The last
release freezes what was made (`gc.freeze()`: later collections skip it, and none of it would be freed anyway),
then turns the collector back on: the pattern CPython's gc documentation gives for a process that forks workers.
A sweep started from Python never pauses the collector: the caller's process is the caller's.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import threading
from typing import Iterable, Iterator

_lock = threading.Lock()
_holds = 0
_was_enabled = False


def pause() -> None:
    """Turn the collector off until every hold is released (this call is one hold)."""
    global _holds, _was_enabled
    with _lock:
        if _holds == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holds += 1


def release() -> None:
    """End one hold; the last freezes what the start made and turns the collector back on. A no-op when the
    collector was not paused (a sweep started from Python)."""
    global _holds
    with _lock:
        if _holds == 0:
            return
        _holds -= 1
        if _holds == 0:
            gc.freeze()
            if _was_enabled:
                gc.enable()


def finish() -> None:
    """End every hold left (the command ends, or failed before its trials started): freeze, collector back on."""
    global _holds
    with _lock:
        if _holds:
            _holds = 1
    release()


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Keep the collector paused while the block runs, if it is paused now; otherwise change nothing."""
    global _holds
    with _lock:
        holding = _holds > 0
        if holding:
            _holds += 1
    try:
        yield
    finally:
        if holding:
            release()


def import_paused(modules: Iterable[str]) -> None:
    """Import `modules` as a process's start: the collector paused, then what they made frozen."""
    pause()
    try:
        for name in modules:
            importlib.import_module(name)
    finally:
        release()
