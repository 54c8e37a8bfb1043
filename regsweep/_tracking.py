"""Tracking a sweep in MLflow: start (parent run, live follower), finish (summary, best model),
and `sync-mlflow`, which replays from the Parquet results whatever MLflow is missing."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from regsweep import _collector
from regsweep._aggregate import best_trial, config_params, param_columns, sweep_summary
from regsweep._ahead import CHECKPOINT_FILE
from regsweep._follower import JournalFollower
from regsweep._mlflow import MlflowSync, resolve_tracking_uri, sqlite_file, warn
from regsweep._trial_log import trials_from_frame
from regsweep._validate import Sweep

BEST_MODEL_FILE = "best_model.pt"
# Writes a best_model.pt: trainables.loop.export_model, or a local executor's worker running it.
Export = Callable[[str, str, dict[str, Any]], None]


def without_credentials(uri: str) -> str:
    """The URI with any user:password@ removed, for state files and messages."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def _parent_params(sweep: Sweep) -> dict[str, Any]:
    spec = sweep.spec
    params = {"trainable": spec.trainable, "seeds": spec.seeds, "metric": spec.metric, "mode": spec.mode,
              "smoke": sweep.smoke, "spec_hash": sweep.spec_hash}
    params.update({f"search.{k}": v for k, v in spec.search.model_dump().items()})
    params.update({f"scheduler.{k}": v for k, v in spec.scheduler.model_dump().items()})
    params.update({f"fixed.{k}": v for k, v in sweep.fixed.items()})
    params.update({f"resources.{k}": v for k, v in spec.resources.model_dump().items() if k != "storage"})
    return params


def _sync_for(sweep: Sweep, name: str) -> MlflowSync:
    return MlflowSync(resolve_tracking_uri(sweep.spec.tracking_uri), name, sweep.fixed)


def _open_parent(sync: MlflowSync, sweep: Sweep, paths: Any, state: dict[str, Any]) -> None:
    tags = {"regsweep.sweep": state["name"], "regsweep.spec_hash": sweep.spec_hash}
    if state.get("sweep_id"):
        tags["regsweep.sweep_id"] = state["sweep_id"]
    state["mlflow_parent_run_id"] = sync.ensure_parent(state.get("mlflow_parent_run_id"), sweep.spec.hypothesis,
                                                       _parent_params(sweep), tags, paths.local / "spec.yaml")
    state["mlflow_uri"] = without_credentials(sync.uri)


def open_client(sweep: Sweep, state: dict[str, Any]) -> MlflowSync | None:
    """The sweep's MLflow client, with its store opened (half a second on sqlite, more for a new
    database), so it can be built while the workers start; it creates no run. None when tracking is off
    or the client cannot be built (the follower then tries again and says why). MLflow's import is part of
    the command's start: the garbage collector stays paused for it if the start paused it."""
    if not state.get("mlflow", True):
        return None
    try:
        with _collector.held():
            return _sync_for(sweep, state["name"])
    except Exception:  # reported by the follower
        return None


def creates_store(sweep: Sweep, state: dict[str, Any]) -> bool:
    """True when tracking will create its sqlite database: MLflow then builds the schema (its migrations),
    which a process killed midway leaves broken, so that opening is not left to run beside the trials."""
    uri = resolve_tracking_uri(sweep.spec.tracking_uri) if state.get("mlflow", True) else ""
    database = sqlite_file(uri)
    return database is not None and not database.exists()


def start_tracking(sweep: Sweep, paths: Any, state: dict[str, Any],
                   client: Callable[[], MlflowSync | None] | None = None, wait: bool = False) -> JournalFollower | None:
    """Follow the journal into MLflow: a thread that opens (or reopens, on resume) the parent run, with
    the client `client()` returns (open_client's, built beforehand) or a new one, then logs every trial.
    A store that cannot be reached is tried again every round. With `wait`, the first round (the parent
    run) is done here, before the trials start; else nothing here waits for MLflow. None when tracking is
    off."""
    if not state.get("mlflow", True):
        return None
    # Set now, so the follower's thread only replaces values while the caller writes the state file (a walk over it).
    state.setdefault("mlflow_parent_run_id", None)
    state.setdefault("mlflow_uri", None)

    def opener() -> MlflowSync:
        sync = (client() if client is not None else None) or _sync_for(sweep, state["name"])
        _open_parent(sync, sweep, paths, state)
        return sync

    uri = without_credentials(resolve_tracking_uri(sweep.spec.tracking_uri))
    follower = JournalFollower(opener, paths.journal, uri)
    if wait:
        follower.push_once()
    return follower.start()


def save_best_model(sweep: Sweep, paths: Any, frame: pd.DataFrame,
                    export: Export | None = None) -> tuple[str, Path] | None:
    """Write the best configuration's weights and config to results/NAME/best_model.pt, through `export`
    (trainables.loop.export_model's signature; by default that function, in this process)."""
    if not sweep.builtin:
        return None
    best = best_trial(frame, sweep.spec.metric, sweep.spec.mode)
    if best is None or "://" in paths.storage:
        return None
    pattern = os.path.join(paths.storage, best["stage"], best["trial_id"], "checkpoint_*", CHECKPOINT_FILE)
    found = sorted(glob.glob(pattern))
    if not found:
        return None
    if export is None:
        from trainables.loop import export_model as export
    params = config_params(best, param_columns(frame))
    config = {**sweep.fixed, **params, "seed": int(best["seed"])}
    target = paths.local / BEST_MODEL_FILE
    export(found[-1], str(target), {"trainable": sweep.spec.trainable, "config": config,
                                    sweep.spec.metric: float(best[sweep.spec.metric])})
    return f"{best['stage']}/{best['trial_id']}", target


def _finish(sync: MlflowSync, sweep: Sweep, frame: pd.DataFrame, finished: bool,
            best: tuple[str, Path] | None) -> None:
    if best is not None and best[0] in sync.runs:
        sync.log_model(*best)
    if finished:
        sync.finish_parent(sweep_summary(frame, sweep.spec.metric, sweep.spec.mode))


def finish_tracking(follower: JournalFollower | None, sweep: Sweep, paths: Any, state: dict[str, Any],
                    frame: pd.DataFrame, export: Export | None = None) -> None:
    """Write the best model (by `export`, see save_best_model), flush the follower, then log the summary and
    the model on the parent run. Without tracking (`follower` None), only the model is written."""
    try:
        best = save_best_model(sweep, paths, frame, export)
    except Exception as exc:
        warn(f"could not write {BEST_MODEL_FILE} ({type(exc).__name__}: {exc})")
        best = None
    if follower is None:
        return
    if not follower.stop():
        warn(f"MLflow still lacks some results; run `regsweep sync-mlflow {state['name']}` when it is back")
        return
    try:
        _finish(follower.sync, sweep, frame, state.get("status") == "finished", best)
    except Exception as exc:
        warn(f"could not write the sweep summary to MLflow ({exc}); run `regsweep sync-mlflow {state['name']}`")


def sync_results(sweep: Sweep, paths: Any, state: dict[str, Any], frame: pd.DataFrame) -> MlflowSync:
    """Replay the Parquet results into MLflow; idempotent (runs found by tags, steps not re-sent)."""
    sync = _sync_for(sweep, state["name"])
    _open_parent(sync, sweep, paths, state)
    sync.push(trials_from_frame(frame).values(), reconcile=True)
    _finish(sync, sweep, frame, state.get("status") == "finished", save_best_model(sweep, paths, frame))
    if state.get("status") != "finished":
        sync.client.set_terminated(sync.parent_id, "KILLED")
    return sync
