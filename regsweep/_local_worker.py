"""A worker process of the local executor: runs the trials the driver sends, one at a time.

The driver talks to it over a pipe. It sends a task (a dict) or None (exit); the worker answers
("epoch", metrics) after every epoch and, when the task is stoppable (ASHA, a time budget), waits for
"go" or "stop"; then ("end", None) when the trial finished or ("error", {"message", "traceback", ...})
when it raised. A worker whose driver is gone (the pipe breaks) exits. Imports only what a trial needs:
the process is forked from a server that already imported torch and the trainables.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import traceback
from typing import Any, Iterator

from regsweep._ahead import CHECKPOINT_FILE

CHECKPOINT_FOLDER = "checkpoint_last"
PENDING_FILE = "saving.pt"
PENDING_KEY = "_checkpoint"  # in an epoch's message: the checkpoint to commit once the epoch is journaled
# Imported once by the fork server, which every worker is forked from: torch, the trainables and this module.
# Not scikit-learn: the datasets it prepares are read from the data cache (trainables.data), and only a
# cold cache makes a worker import it.
PRELOAD = ["regsweep._preload", "regsweep._local_worker"]


def start_fork_server() -> Any:
    """The multiprocessing context the workers come from. Its fork server starts now and imports
    PRELOAD in its own process while the caller goes on (it is here, in a module that imports nothing
    heavy, so the CLI can start it before validating the sweep)."""
    import multiprocessing
    from multiprocessing import forkserver

    # A process forked after CUDA was initialised cannot use CUDA: torch.cuda.is_available(), should the
    # preloaded modules call it, then asks NVML instead of initialising CUDA (PyTorch's switch for forks).
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()
    return context


class _DriverGone(Exception):
    """The pipe to the driver broke: the driver exited or was killed."""


def _talk(conn: Any, message: tuple, answer: bool) -> Any:
    try:
        conn.send(message)
        return conn.recv() if answer else None
    except (EOFError, OSError) as exc:
        raise _DriverGone from exc


def serve(conn: Any, visible_devices: str, environ: dict[str, str]) -> None:
    """The worker's main loop. `environ` is the driver's environment (a forked worker would otherwise
    have the fork server's, from when it started); `visible_devices` becomes CUDA_VISIBLE_DEVICES
    ('' for CPU trials), before anything touches CUDA: this process sees only its slot's GPUs."""
    os.environ.clear()
    os.environ.update(environ)
    os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    # Ctrl-C reaches the whole process group; the driver handles it and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                task = conn.recv()
            except (EOFError, OSError):
                return
            if task is None:
                return
            try:
                finished = _run(task, conn)
            except _DriverGone:
                return
            except BaseException as exc:  # any failure of the trial's code is the trial's, not the worker's
                _talk(conn, ("error", {"message": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__,
                                       "text": str(exc), "traceback": traceback.format_exc()}), answer=False)
                continue
            if finished:
                _talk(conn, ("end", None), answer=False)
    except _DriverGone:
        return


def _run(task: dict[str, Any], conn: Any) -> bool:
    """Train one trial; True when it ran to its end, False when the driver stopped it. A preflight task
    checks that the sweep's configs build models that run, answering ("problems", [problems per config])
    when any does not, then loads the data of `config` and builds its model: the data check, which also
    leaves the data loaded here.
    An export task writes the best model (trainables.loop.export_model)."""
    if task.get("preflight"):
        import trainables

        found = [trainables.get_trainable(task["trainable"]).check_model(c) for c in task["check_models"]]
        if any(found):
            _talk(conn, ("problems", found), answer=False)
            return False
        if task["config"] is not None:
            trainables.get_trainable(task["trainable"]).check_data(task["config"])
        _talk(conn, ("ready", None), answer=False)
        return False
    if "export" in task:
        from trainables.loop import export_model

        export_model(*task["export"])
        _talk(conn, ("ready", None), answer=False)
        return False
    placement = {"node_id": f"local:{socket.gethostname()}", "attempt_started_at": time.time()}
    for metrics in _epochs(task):
        # Without ASHA or a time budget nothing can stop a trial: no need to wait for the driver's answer.
        if _talk(conn, ("epoch", {**metrics, **placement}), answer=task["stoppable"]) == "stop":
            return False
    return True


def _epochs(task: dict[str, Any]) -> Iterator[dict[str, Any]]:
    config = task["config"]
    if task["trainable"].count(":") == 1:
        from regsweep._validate import load_user_trainable

        yield from load_user_trainable(task["trainable"])(config)
        return
    from regsweep._ahead import epochs_with_checkpoints

    trial = _builtin_trial(task)
    folder = task["checkpoint_dir"]
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):  # checkpoints of an earlier attempt whose epochs never reached the journal
        if name.startswith(f"{CHECKPOINT_FILE}.epoch"):
            os.remove(os.path.join(folder, name))
    checkpoint = os.path.join(folder, CHECKPOINT_FILE)
    if os.path.exists(checkpoint):  # a retry or a resumed sweep: continue after the last committed epoch
        trial.load(checkpoint)
    for metrics, saved_in in epochs_with_checkpoints(trial, PENDING_FILE, task["checkpoint_every_s"], folder):
        if saved_in is not None:
            # A checkpoint counts only once the driver has journaled its epoch (it then renames this file
            # to CHECKPOINT_FILE): a driver killed in between must not resume after an epoch it never recorded.
            pending = os.path.join(folder, f"{CHECKPOINT_FILE}.epoch{metrics['epoch']}")
            os.replace(os.path.join(folder, PENDING_FILE), pending)
            metrics = {**metrics, PENDING_KEY: pending}
        yield metrics


def _builtin_trial(task: dict[str, Any]) -> Any:
    import trainables

    return trainables.get_trainable(task["trainable"]).make_trial({"threads": task["threads"], **task["config"]})
