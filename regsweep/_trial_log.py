"""Trial logs: what MLflow needs of each trial (its config, every epoch's metrics and report time, its end),
folded from the sweep's journal or read back from the Parquet results table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

from regsweep._results import SUMMARY_KEYS

# Times and ids are not metrics: reported_at and attempt_started_at become the runs' and the metrics' times.
_SKIP_METRICS = {"epoch", "seed", "training_iteration", "reported_at", "attempt_started_at", *SUMMARY_KEYS}


@dataclass
class TrialLog:
    """Everything MLflow needs about one trial, built from the journal or the Parquet table."""

    stage: str
    trial_id: str
    name: str
    config_id: str
    seed: Any
    params: dict[str, Any]
    epochs: dict[int, dict[str, float]] = field(default_factory=dict)
    status: str = "running"
    stopped_by: str | None = None
    error: str | None = None
    final: dict[str, float] = field(default_factory=dict)
    # Milliseconds since the epoch, as MLflow takes them: when its first attempt began, when each epoch was reported.
    started_at: int | None = None
    reported_at: dict[int, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.trial_id}"


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numeric(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if _finite_number(v) and k not in _SKIP_METRICS and not k.startswith("config/")}


def _millis(seconds: Any) -> int | None:
    return int(seconds * 1000) if _finite_number(seconds) else None


def update_trials(trials: dict[str, TrialLog], records: Iterable[dict[str, Any]]) -> set[str]:
    """Fold journal records into `trials`; returns the keys that changed."""
    changed = set()
    for record in records:
        key = f"{record['stage']}/{record['trial_id']}"
        trial = trials.get(key)
        if trial is None:
            params = {k[len("config/"):]: v for k, v in record.items() if k.startswith("config/")}
            trial = trials[key] = TrialLog(record["stage"], record["trial_id"], record.get("trial_name", ""),
                                           record.get("config_id", ""), record.get("seed"), params)
        started = _millis(record.get("attempt_started_at"))
        if started is not None and (trial.started_at is None or started < trial.started_at):
            trial.started_at = started
        if record.get("kind") == "end":
            trial.status = record["status"]
            trial.stopped_by, trial.error = record.get("stopped_by"), record.get("error")
            trial.final = {k: float(record[k]) for k in SUMMARY_KEYS
                           if isinstance(record.get(k), (int, float)) and math.isfinite(record[k])}
        elif record.get("epoch"):
            epoch = int(record["epoch"])
            trial.epochs[epoch] = _numeric(record)
            reported = _millis(record.get("reported_at"))
            if reported is not None:
                trial.reported_at[epoch] = reported
        changed.add(key)
    return changed


def trials_from_frame(frame: Any) -> dict[str, TrialLog]:
    """TrialLogs from the Parquet results table (for sync-mlflow)."""
    def present(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}

    trials: dict[str, TrialLog] = {}
    update_trials(trials, [{**present(row), "kind": "epoch"} for row in frame.to_dict("records")])
    last_rows = frame.sort_values("epoch").groupby(["stage", "trial_id"]).tail(1).to_dict("records")
    update_trials(trials, [{**present(row), "kind": "end"} for row in last_rows
                           if row.get("status") not in (None, "running")])
    return trials
