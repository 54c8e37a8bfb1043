"""What every executor writes for a trial: its epoch and end records in the journal, and the same
records handed to the driver's listeners (the live view). Ray-free, so the local executor and the
progress display never import Ray."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from regsweep._results import SUMMARY_KEYS, Journal, journaled_trials
from regsweep._space import config_id, decode_point

# Driver-side listeners of trial records (the progress display). Module-level rather than held by
# an executor's callback, so a callback unpickled by Tuner.restore reaches the display of the
# process that resumed it.
_LISTENERS: list[Callable[[dict[str, Any]], None]] = []
# How a trial that reported its own end ended (the trainables' `status`); anything else is the executor's doing.
FINAL_STATUSES = ("completed", "stopped_early", "diverged")
# The same end as a journaled epoch tells it: the trainable's `stopped_by` (its `status` is not journaled with
# epochs, where the results table's `status` column is the trial's end).
STATUS_OF_STOP = {"completed": "completed", "patience": "stopped_early", "diverged": "diverged"}
# Keys of a trial's config that are the engine's, not the trainable's.
_RESERVED = {"config_id", "point"}
# What an executor adds to a result that is not a metric of the trial.
_NOT_METRICS = ("config", "done", "trial_id", "date", "timestamp", "pid", "node_ip", "checkpoint_dir_name",
                "should_checkpoint", "iterations_since_restore", "time_since_restore", "status")


def set_trial_listener(listener: Callable[[dict[str, Any]], None] | None) -> None:
    """Call `listener` with every journal record: epochs (kind 'epoch') and ends (kind 'end')."""
    _LISTENERS.clear()
    if listener is not None:
        _LISTENERS.append(listener)


def trial_params(config: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """The searched parameters and seed of a trial, from its config (grid stages nest them in 'point')."""
    params = config["point"] if "point" in config else config
    return decode_point({k: v for k, v in params.items() if k not in _RESERVED}, space)


def trial_name(params: dict[str, Any]) -> str:
    """A short readable name from a trial's parameters."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())[:120]


class TrialRecorder:
    """Journals a stage's results and ends and hands them to the listeners. Picklable (the journal
    opens lazily), so Ray Tune can snapshot the callback that holds it."""

    def __init__(self, journal_path: Path, stage: str, space: dict[str, Any]):
        self.journal = Journal(journal_path)
        self.stage, self.space = stage, space

    def _base(self, trial_id: str, params: dict[str, Any], name: str) -> dict[str, Any]:
        row = {"stage": self.stage, "trial_id": trial_id, "config_id": config_id(params),
               "seed": params.get("seed"), "trial_name": name}
        row.update({f"config/{k}": v for k, v in params.items() if k != "seed"})
        return row

    def epoch(self, trial_id: str, params: dict[str, Any], name: str, result: dict[str, Any]) -> dict[str, Any]:
        """Journal one reported epoch; returns the row written."""
        metrics = {k: v for k, v in result.items() if k not in _NOT_METRICS}
        metrics.setdefault("epoch", result.get("training_iteration"))
        row = {**self._base(trial_id, params, name), **metrics, "kind": "epoch", "reported_at": time.time()}
        self.journal.write(row)
        for listener in _LISTENERS:
            listener(row)
        return row

    def end(self, trial_id: str, params: dict[str, Any], name: str, last: dict[str, Any], status: str,
            stopped_by: str, error: str | None = None) -> None:
        """Journal how a trial ended, with the trial-level summary its last result carries."""
        record = {**self._base(trial_id, params, name), "kind": "end", "status": status, "stopped_by": stopped_by,
                  "error": error}
        for key in SUMMARY_KEYS:
            if key in last:
                record[key] = last[key]
        if "epochs_trained" not in record and last:
            record["epochs_trained"] = last.get("epoch", last.get("training_iteration"))
        self.journal.write(record)
        for listener in _LISTENERS:
            listener({**record, "metrics": last})

    def close(self) -> None:
        self.journal.close()


def end_unended(journal_path: Path, stage: str, space: dict[str, Any], stopped_by: str, error: str) -> list[str]:
    """Journal an error end for each trial of `stage` that reported epochs but has no end, once its executor
    is done with the stage (it can no longer end them itself); returns their ids."""
    ends, last = journaled_trials(journal_path, stage)
    unended = [trial for trial in last if trial not in ends]
    recorder = TrialRecorder(journal_path, stage, space)
    for trial in unended:
        record = last[trial]
        params = {key[len("config/"):]: value for key, value in record.items() if key.startswith("config/")}
        if record.get("seed") is not None:
            params["seed"] = record["seed"]
        recorder.end(trial, params, record.get("trial_name") or trial, record, "error", stopped_by, error)
    recorder.close()
    return unended
