"""MLflow tracking: one parent run per sweep, one nested child run per trial.

Trials log from the Ray driver, not from the workers: the driver already holds every result (the
journal), so only the head node needs to reach the tracking server, which can then stay bound to
127.0.0.1, and workers need no credentials. Logging follows the journal in a background thread and
never blocks training; when the server is away the journal keeps everything and the next push (or
`regsweep sync-mlflow`) reconciles against what MLflow already has, so no step is logged twice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from regsweep._trial_log import TrialLog

# One failed request must not stall the driver for minutes of backoff; we retry ourselves.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

DEFAULT_DIR = "mlruns"
RUN_STATUS = {"completed": "FINISHED", "stopped_early": "FINISHED", "diverged": "FAILED", "error": "FAILED"}


def resolve_tracking_uri(spec_uri: str | None) -> str:
    """MLFLOW_TRACKING_URI, else the spec's tracking_uri, else sqlite in ./mlruns."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or spec_uri
    if uri:
        return uri
    folder = Path(DEFAULT_DIR).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` tracking URI; None for any other store."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _end_tags(trial: TrialLog) -> dict[str, str]:
    tags = {"status": trial.status, "stopped_by": str(trial.stopped_by)}
    if trial.error:
        tags["error"] = trial.error[:5000]
    return tags


def _quiet_mlflow() -> None:
    """MLflow's store set-up chatter (alembic migrations, "Creating initial MLflow database tables") is not the
    user's business. Once MLflow is imported: its import sets its logger to INFO."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


class MlflowSync:
    """Pushes a sweep's trials to MLflow idempotently: runs are found by tags before they are created,
    and steps MLflow already has are not sent again."""

    def __init__(self, tracking_uri: str, experiment: str, fixed: dict[str, Any]):
        from mlflow.tracking import MlflowClient

        _quiet_mlflow()
        if tracking_uri.startswith("sqlite:"):
            _sqlite_in_wal_mode()
        self.uri, self.experiment_name, self.fixed = tracking_uri, experiment, fixed
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.runs: dict[str, str] = {}
        self.logged: dict[str, set[int]] = {}
        self.ended: set[str] = set()
        self._params_due: dict[str, list[Any]] = {}

    def _experiment(self) -> str:
        if self.experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is not None:
                self.experiment_id = found.experiment_id
            else:
                location = None
                database = sqlite_file(self.uri)
                if database is not None:
                    location = str((database.parent / "artifacts").absolute())
                self.experiment_id = self.client.create_experiment(self.experiment_name, artifact_location=location)
        return self.experiment_id

    def ensure_parent(self, parent_id: str | None, description: str, params: dict[str, Any],
                      tags: dict[str, str], spec_file: Path | None) -> str:
        """Reuse the sweep's parent run (resume) or create it with its params, tags and spec file."""
        from mlflow.entities import Param, RunTag

        experiment = self._experiment()
        if parent_id and not self._has_run(parent_id):
            parent_id = None  # remembered from another store (MLFLOW_TRACKING_URI changed since) or a deleted one
        if not parent_id and tags.get("regsweep.sweep_id"):
            # A driver killed before its state file had the parent's id: the run it created is found by tag.
            found = self.client.search_runs([experiment], f"tags.`regsweep.sweep_id` = '{tags['regsweep.sweep_id']}'",
                                            max_results=1)
            parent_id = found[0].info.run_id if found else None
        if parent_id:
            self.parent_id = parent_id
            self.client.update_run(parent_id, status="RUNNING")
            return parent_id
        run = self.client.create_run(experiment, run_name=self.experiment_name,
                                     tags={"mlflow.note.content": description, **tags})
        self.parent_id = run.info.run_id
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.parent_id, params=items[start:start + 100])
        commit = git_commit()
        if commit:
            self.client.log_batch(self.parent_id, tags=[RunTag("mlflow.source.git.commit", commit)])
        if spec_file is not None and spec_file.exists():
            self.client.log_artifact(self.parent_id, str(spec_file))
        return self.parent_id

    def _has_run(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise  # the store is unreachable or failing: the caller retries
        return True

    def _find_children(self) -> None:
        token = None
        while True:
            page = self.client.search_runs([self._experiment()], f"tags.mlflow.parentRunId = '{self.parent_id}'",
                                           max_results=1000, page_token=token)
            for run in page:
                key = run.data.tags.get("regsweep.trial_key")
                if key:
                    self.runs[key] = run.info.run_id
                    if run.info.status != "RUNNING":
                        self.ended.add(key)
            token = page.token
            if not token:
                break

    def _child(self, trial: TrialLog, reconcile: bool) -> tuple[str, list[Any], bool]:
        """The trial's run id, the params still to log when the run was created just now, and whether it was
        created with its end tags (a trial that had ended by its first push: one transaction less)."""
        from mlflow.entities import Param

        if trial.key in self.runs:
            run_id = self.runs[trial.key]
            if reconcile or trial.key not in self.logged:
                history = self.client.get_metric_history(run_id, "epoch")
                self.logged[trial.key] = {int(m.step) for m in history}
            return run_id, self._params_due.get(trial.key, []), False
        tags = {"mlflow.parentRunId": self.parent_id, "regsweep.trial_key": trial.key, "trial_id": trial.trial_id,
                "config_id": trial.config_id, "seed": str(trial.seed), "stage": trial.stage, "status": trial.status}
        ended = trial.status != "running"
        if ended:
            tags.update(_end_tags(trial))
        run = self.client.create_run(self._experiment(), run_name=trial.name or trial.trial_id, tags=tags,
                                     start_time=trial.started_at)
        run_id = self.runs[trial.key] = run.info.run_id
        self.logged[trial.key] = set()
        config = {**self.fixed, **trial.params, "seed": trial.seed}
        # Logged with the run's first metrics; kept until then, so a failed push sends them again.
        due = self._params_due[trial.key] = [Param(k, json.dumps(v) if isinstance(v, (list, dict)) else str(v))
                                             for k, v in config.items()]
        return run_id, due, ended

    def _log(self, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
        """As few log_batch calls as MLflow's limits allow (each is a transaction on the store:
        most of the cost of a short trial's logging is per call, not per value)."""
        while metrics or params or tags:
            batch_params, params = params[:100], params[100:]
            batch_tags, tags = tags[:100], tags[100:]
            room = 1000 - len(batch_params) - len(batch_tags)
            batch_metrics, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)

    def push(self, trials: Iterable[TrialLog], reconcile: bool = False) -> None:
        """Send what MLflow lacks of these trials. Raises on any tracking error (caller retries)."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        if reconcile:  # once per push: every run of the sweep MLflow already has
            self._find_children()
        for trial in trials:
            run_id, params, created_ended = self._child(trial, reconcile)
            new_steps = sorted(set(trial.epochs) - self.logged[trial.key])
            # Each epoch's values carry the time it was reported, so MLflow's wall-time axes are the trial's own.
            stamps = {step: trial.reported_at.get(step, now) for step in new_steps}
            metrics = [Metric("epoch", step, stamps[step], step) for step in new_steps]
            metrics += [Metric(k, v, stamps[step], step) for step in new_steps for k, v in trial.epochs[step].items()]
            tags = []
            ends = trial.status != "running" and trial.key not in self.ended
            if ends:
                last = max(trial.epochs, default=0)
                if not created_ended:
                    tags = [RunTag(k, v) for k, v in _end_tags(trial).items()]
                ended_at = trial.reported_at.get(last, now)
                metrics += [Metric(k, v, ended_at, last) for k, v in trial.final.items()]
            self._log(run_id, metrics, params, tags)
            self._params_due.pop(trial.key, None)
            self.logged[trial.key].update(new_steps)
            if ends:
                self.client.set_terminated(run_id, RUN_STATUS.get(trial.status, "KILLED"), end_time=ended_at)
                self.ended.add(trial.key)

    def finish_parent(self, summary: dict[str, Any], status: str = "FINISHED") -> None:
        """Log the sweep summary on the parent run and close it."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, 0) for k, v in summary.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
        tags = [RunTag(f"best.{k}", str(v)) for k, v in summary.get("best_config", {}).items()]
        self.client.log_batch(self.parent_id, metrics=metrics, tags=tags)
        self.client.log_dict(self.parent_id, summary, "summary.json")
        self.client.set_terminated(self.parent_id, status)

    def log_model(self, trial_key: str, path: Path) -> None:
        """Attach the best configuration's model file to its run."""
        from mlflow.entities import RunTag

        run_id = self.runs[trial_key]
        self.client.log_artifact(run_id, str(path), artifact_path="model")
        self.client.log_batch(run_id, tags=[RunTag("regsweep.best", "true")])
        self.client.log_batch(self.parent_id, tags=[RunTag("best_run_id", run_id)])


def _set_wal_mode(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _sqlite_in_wal_mode() -> None:
    """SQLAlchemy's sqlite connections in this process (MLflow's store is the only one regsweep opens) use
    write-ahead logging: a commit then waits for no fsync of the database (0.72x the time of a short trial's
    three transactions here, 64 trials), and `mlflow ui` can read the store while a sweep writes it. An
    application crash loses nothing committed; a power cut may lose the last commits, which the journal
    keeps and the next push sends again."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _set_wal_mode):
        event.listen(Engine, "connect", _set_wal_mode)


def warn(message: str) -> None:
    print(f"regsweep: warning: {message}", file=sys.stderr, flush=True)
