"""Training a short epoch ahead while Ray Tune carries the previous epoch's report.

`tune.report` blocks the training thread until the driver has processed the result and asked for the
next one: a round trip of 5-10 ms on two busy cores, a third of a 20 ms epoch. Here a helper thread
trains and checkpoints the epochs; the trial's own thread only reports them, so the next epoch trains
during the round trip. Determinism is unaffected: one thread at a time touches the trial.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from typing import Any, Callable, Iterator

from regsweep._processes import process_alive

# A trial's checkpoint file, under either executor; the best-model export looks for it.
CHECKPOINT_FILE = "trial.pt"
# Temporary checkpoint folders (Ray Tune copies each into storage) are named PREFIX<pid>-<random>.
TEMPORARY_PREFIX = "regsweep-checkpoint-"
# Epochs at least this long are not run ahead: the round trip is noise beside them, and a trial that
# Tune stops must end within Tune's 2 s wait before it reuses the actor (TUNE_FUNCTION_THREAD_TIMEOUT_S).
RUN_AHEAD_BELOW_S = 1.0
ORPHAN_AGE_S = 600.0  # a dead process's temporary checkpoint folder older than this is removed
_DONE = object()
_orphans_removed = False  # by this process, once


def epochs_with_checkpoints(trial: Any, checkpoint_file: str, every_s: float,
                            folder: str | None = None) -> Iterator[tuple[dict, str | None]]:
    """Each epoch's metrics (the last with the trial's summary) and the folder holding its checkpoint,
    or None: a checkpoint is saved with the last epoch and once `every_s` of training has passed, in
    a new temporary folder or, given `folder`, over the checkpoint there (written beside it, then
    renamed, so a crash never leaves half a file)."""
    last_saved = time.monotonic()
    while not trial.finished:
        metrics = trial.run_epoch()
        if trial.finished:
            metrics.update(trial.summary())
        saved_in = None
        if trial.finished or time.monotonic() - last_saved >= every_s:
            saved_in = folder or _temporary_folder()
            path = os.path.join(saved_in, checkpoint_file)
            trial.save(path + ".tmp")
            os.replace(path + ".tmp", path)
            last_saved = time.monotonic()
        yield metrics, saved_in


def _temporary_folder() -> str:
    global _orphans_removed
    if not _orphans_removed:
        _orphans_removed = True
        remove_orphaned_folders()
    return tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-")


def remove_orphaned_folders(root: str | None = None, older_than_s: float = ORPHAN_AGE_S) -> list[str]:
    """Remove the temporary checkpoint folders in `root` (the temp folder) whose process has died; returns
    them. A trial process that is killed (Ctrl-C on a sweep, Ray stopping a stuck actor) never removes
    its own, so each trial process clears its dead predecessors' once, before its first checkpoint."""
    root = root or tempfile.gettempdir()
    removed = []
    # A folder lives from a checkpoint's save to its report, seconds at most: one older than `older_than_s`
    # is never in use, even where this process cannot see its owner (another PID namespace sharing /tmp).
    written_before = time.time() - older_than_s
    for entry in os.scandir(root):
        pid = entry.name[len(TEMPORARY_PREFIX):].split("-", 1)[0]
        if (entry.name.startswith(TEMPORARY_PREFIX) and pid.isdigit() and not process_alive(int(pid))
                and entry.stat().st_mtime < written_before):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def report_ahead(epochs: Iterator[tuple[dict, str | None]], report: Callable[[dict, str | None], None]) -> None:
    """Drain `epochs` on a helper thread, at most one epoch ahead of `report`; each checkpoint folder is
    removed once reported. Errors in training are raised here; a stop (Tune raises SystemExit in
    `report`) lets the helper finish its epoch and discard it."""
    results: queue.Queue = queue.Queue()
    permits = threading.Semaphore(0)  # released when the helper may train the next epoch
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in epochs:
                results.put(item)
                permits.acquire()
                if stop.is_set():
                    return
            results.put(_DONE)
        except BaseException as exc:  # handed to the reporting thread
            results.put(exc)

    helper = threading.Thread(target=produce, name="regsweep-epochs", daemon=True)
    helper.start()
    try:
        while (item := results.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            metrics, folder = item
            short = metrics.get("epoch_seconds", RUN_AHEAD_BELOW_S) < RUN_AHEAD_BELOW_S
            if short:
                permits.release()
            try:
                report(metrics, folder)
            finally:
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
            if not short:
                permits.release()
    finally:
        stop.set()
        permits.release()
        helper.join(timeout=2 * RUN_AHEAD_BELOW_S)
        while not results.empty():
            left = results.get_nowait()
            if isinstance(left, tuple) and left[1] is not None:
                shutil.rmtree(left[1], ignore_errors=True)
