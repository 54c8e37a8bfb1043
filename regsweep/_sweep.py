"""A sweep's life: starting one (its state, its results folder), running its stages with MLflow alongside,
resuming it, and replaying its results into MLflow."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from regsweep import _collector
from regsweep._discard import discard_folder
from regsweep._preflight import check_storage, preflight_config, preflight_data
from regsweep._results import compact, delete_folder, holds_files, read_results
from regsweep._stages import run_stages
from regsweep._stats import import_quantile
from regsweep._state import (DEFAULT_RESULTS, SweepPaths, SweepStateError, read_state, read_sweep_state,
                             sweep_name, sweep_status, write_state)
from regsweep._tune_storage import resumable_stage
from regsweep._validate import Sweep, load_sweep


def _in_background(work: Callable[[], Any], name: str) -> Callable[[], Any]:
    """Start `work` on a thread now; the function returned waits for it and returns its result or raises
    its error."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((work(), None))
        except BaseException as exc:  # handed to the caller by wait()
            outcome.append((None, exc))

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()

    def wait() -> Any:
        thread.join()
        result, error = outcome[0]
        if error is not None:
            raise error
        return result

    return wait


def _beside_ray_start(sweep: Sweep, prepare: Callable[[], None]) -> None:
    """Run `prepare` in a thread while Ray starts on this one and is checked to fit a trial; raise the
    first error of either.

    Starting Ray is mostly waiting for its processes, and ray.init must run on the main thread; the data
    loads meanwhile (and MLflow opens on a thread of its own)."""
    from regsweep import _tune
    from regsweep._ray_start import ensure_ray

    prepared = _in_background(prepare, "regsweep-prepare")
    try:
        ensure_ray()
        _tune.check_fits(sweep)
    except BaseException:
        with contextlib.suppress(BaseException):  # Ray's error is the one to report
            prepared()
        raise
    prepared()


def execute(sweep: Sweep, paths: SweepPaths, state: dict[str, Any], restore: bool,
            on_stage: Callable[[str, int | None], None] | None = None, check_data: bool = False,
            create: Callable[[], None] | None = None, saved: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Run (or finish) every stage of the sweep, keeping the state file current. A new sweep's data check
    (`check_data`) runs while Ray or the local executor's workers start; `create` (its results folder)
    once they can place a trial. MLflow opens meanwhile and logs from a thread. Under Ray, the stages in
    `saved` resume through Tuner.restore."""
    from regsweep._tracking import creates_store, finish_tracking, open_client, start_tracking

    new_store = creates_store(sweep, state)
    # Importing MLflow and opening its store: 1.5 s on two cores, beside everything below.
    client = (_in_background(lambda: open_client(sweep, state), "regsweep-open-mlflow")
              if state.get("mlflow", True) else None)
    local = sweep.spec.resources.executor == "local"
    data_config = preflight_config(sweep) if check_data and sweep.builtin else None
    # The local executor's workers, one per trial slot; under Ray, when load_sweep left the models unchecked, one
    # worker forked from the server the CLI started (its torch import ran beside this process's validation), which
    # checks them and writes the best model, so this process imports no torch.
    workers = None
    try:
        if local:
            from regsweep._local import import_stage_modules
            from regsweep._local_slots import WorkerPool

            workers = WorkerPool(sweep, paths.storage)
            # The fork server imports torch for 3-5 s, and this process has nothing else to do meanwhile.
            import_quantile()
            import_stage_modules()
            # In a worker, which keeps the data for its trials; the driver never loads it.
            workers.preflight(data_config)
        else:
            if sweep.unchecked_models:
                from regsweep._local_slots import WorkerPool

                workers = WorkerPool(sweep, paths.storage, devices=[""])

            def prepare() -> None:
                check_storage(sweep, paths.storage)
                if workers is not None:
                    workers.preflight(data_config)
                elif check_data:
                    preflight_data(sweep)

            _beside_ray_start(sweep, prepare)
    except BaseException:
        if workers is not None:
            workers.close()
        if new_store:  # MLflow's migrations, stopped midway by this process's exit, would leave its database broken
            with contextlib.suppress(Exception):
                client()
        raise
    try:
        # Only once trials can be placed: a sweep that cannot run leaves no folder and no MLflow run behind.
        if create is not None:
            create()
        if new_store:
            client()  # before any trial: a kill while MLflow creates its database would leave it broken
        # Under Ray the store opened while Ray started, and the parent run is made before Tune starts: made
        # beside Tune's start, it delayed the first trial by 1.3 s (A/B, three runs each; the driver's threads
        # share one interpreter lock). The local executor's trials start without waiting for MLflow.
        follower = start_tracking(sweep, paths, state, client, wait=not local)
        write_state(paths, state)
        _collector.release()  # the command's start is over (a no-op for a sweep started from Python)
        try:
            frame = run_stages(sweep, paths, state, restore, on_stage, workers if local else None, saved)
        except BaseException:
            if follower is not None:
                follower.stop(attempts=1)
            # Said now, not only when this process is gone: a resume from this same process (the Python API)
            # must not take the sweep for one still running.
            state["status"] = "interrupted"
            write_state(paths, state)
            raise
        # The best model is written by an idle worker: this process imported no torch (load_sweep's model checks
        # ran in a worker too), and importing it here, 1.2 s, would come after the last trial.
        finish_tracking(follower, sweep, paths, state, frame, export=workers.export if workers is not None else None)
    finally:
        if workers is not None:
            workers.close()
    write_state(paths, state)
    return frame


def start_sweep(sweep: Sweep, results_root: str = DEFAULT_RESULTS, storage: str | None = None,
                fresh: bool = False, on_stage: Callable[[str, int | None], None] | None = None,
                mlflow: bool = True) -> pd.DataFrame:
    """Run a validated sweep from the start. Refuses to overwrite an existing sweep unless `fresh`."""
    name = sweep_name(sweep)
    paths = SweepPaths.for_sweep(name, results_root, storage or sweep.spec.resources.storage)
    if paths.local.exists() and not fresh:
        try:
            status = sweep_status(read_state(paths.state)) if paths.state.exists() else "unknown"
        except SweepStateError:
            status = "its state file is unreadable"
        hint = f"`regsweep resume {name}` to continue it, or " if status == "interrupted" else ""
        raise SweepStateError(f"{results_root}/{name} already exists ({status}); use {hint}--fresh to start over")
    state = {
        "name": name, "spec_path": str(sweep.spec_path), "spec_text": sweep.spec_text, "spec_hash": sweep.spec_hash,
        "overrides": sweep.overrides, "smoke": sweep.smoke, "storage": paths.storage, "status": "running",
        "pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time(), "argv": sys.argv,
        "mlflow": mlflow, "metric": sweep.spec.metric, "mode": sweep.spec.mode, "epochs": sweep.epochs,
        "fixed": sweep.fixed, "sweep_id": uuid.uuid4().hex,
    }

    def create() -> None:
        # After the data and resource checks: a sweep that cannot start leaves no results folder behind.
        # Storage apart from the results folder (s3://, another disk) may hold an earlier sweep of this name
        # (its results folder deleted, or made on another machine): Tune's state left there would be what a
        # resume restores, should this sweep be killed before Tune's first snapshot.
        separate = paths.storage != str(paths.local)
        if separate and not fresh and holds_files(paths.storage):
            raise SweepStateError(f"{paths.storage} already holds a sweep named {name} (Ray Tune's state, results); "
                                  f"use --fresh to replace it")
        if paths.local.exists():
            discard_folder(paths.local)
        if separate and fresh:  # without --fresh it was just found empty
            delete_folder(paths.storage)
        paths.local.mkdir(parents=True)
        (paths.local / "spec.yaml").write_text(sweep.spec_text)
        write_state(paths, state)

    return execute(sweep, paths, state, restore=False, on_stage=on_stage, check_data=True, create=create)


def resume_sweep(name: str, results_root: str = DEFAULT_RESULTS,
                 on_stage: Callable[[str, int | None], None] | None = None) -> tuple[Sweep, pd.DataFrame]:
    """Continue an interrupted sweep through Tuner.restore; finished trials are not rerun."""
    sweep, paths, state = open_sweep(name, results_root, check_models=False)  # in a worker, see execute
    status = sweep_status(state)
    if status == "running":
        raise SweepStateError(f"sweep {name} is still running (pid {state['pid']})")
    if status == "finished":
        return sweep, compact(paths.journal, paths.storage)
    saved: frozenset[str] = frozenset()
    if sweep.spec.resources.executor != "local":
        # Before anything starts: which unfinished stages Tune saved, and can it read what it saved?
        saved = frozenset(stage for stage in ("search", "confirm")
                          if state.get("stages", {}).get(stage) != "finished" and resumable_stage(paths, stage))
    state.update(status="running", pid=os.getpid(), host=socket.gethostname(), resumed_at=time.time())
    write_state(paths, state)
    return sweep, execute(sweep, paths, state, restore=True, on_stage=on_stage, saved=saved)


def open_sweep(name: str, results_root: str = DEFAULT_RESULTS,
               check_models: bool = True) -> tuple[Sweep, SweepPaths, dict[str, Any]]:
    """A sweep's validated spec (see load_sweep for `check_models`), paths and state, from its results folder."""
    local = (Path(results_root) / name).absolute()
    state = read_sweep_state(name, results_root)
    original = Path(state["spec_path"])
    unchanged = original.exists() and original.read_text() == state["spec_text"]
    sweep = load_sweep(original if unchanged else local / "spec.yaml", state.get("overrides") or {},
                       smoke=state.get("smoke", False), check_models=check_models)
    return sweep, SweepPaths(local, state["storage"]), state


def sync_mlflow(name: str, results_root: str = DEFAULT_RESULTS) -> int:
    """Replay a sweep's results into MLflow; returns the number of trials checked."""
    from regsweep._tracking import sync_results

    sweep, paths, state = open_sweep(name, results_root)
    frame = compact(paths.journal, paths.storage) if paths.journal.exists() else read_results(paths.storage)
    sync_results(sweep, paths, state, frame)
    write_state(paths, state)
    return frame["trial_id"].nunique()
