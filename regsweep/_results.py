"""Results: a write-ahead journal of every reported epoch (so a killed driver loses nothing),
compacted into one Parquet table per sweep that the leaderboard and reports read."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

RESULTS_FILE = "results.parquet"
JOURNAL_FILE = "journal.jsonl"
KEY = ["stage", "trial_id", "epoch"]
# What a trial reports once, at its end (the trainables' summary); every row of the trial carries it.
SUMMARY_KEYS = ("params", "best_epoch", "best_val_loss", "best_val_acc", "test_loss", "test_acc", "epochs_trained",
                "device")
TRIAL_LEVEL = (*SUMMARY_KEYS, "stopped_by", "error")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Journal:
    """Append-only JSON lines, flushed per record. Picklable: the file opens lazily."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._handle = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_handle": None}

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        line = json.dumps({k: _clean(v) for k, v in record.items()}, default=str)
        self._handle.write(line + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Records of a journal; a last line cut short by a killed process is skipped."""
    records = []
    if not Path(path).exists():
        return records
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def ended_trials(path: Path, stage: str) -> frozenset[str]:
    """Trials of a stage whose end is in the journal: on resume they are done, whatever Tune's last
    snapshot (taken every few seconds) says about them."""
    return frozenset(journaled_trials(path, stage)[0])


def journaled_trials(path: Path, stage: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """A stage's journaled ends by trial, and each trial's last journaled epoch (the record the table keeps)."""
    ends: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    for record in read_journal(path):
        if record.get("stage") != stage:
            continue
        trial = record.get("trial_id")
        if record.get("kind") == "end":
            ends[trial] = record
        elif record.get("kind") == "epoch" and (record.get("epoch") or 0) >= (last.get(trial, {}).get("epoch") or 0):
            last[trial] = record
    return ends, last


def _encode_nested(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns holding lists or dicts (e.g. fc_units) become JSON text: Parquet needs one type."""
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, dict))).any():
            frame[column] = frame[column].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
    return frame


def build_table(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per (stage, trial, epoch), the last report winning, with how each trial ended."""
    epochs, ends = [], {}
    for record in records:
        kind = record.pop("kind", "epoch")
        if kind == "end":
            ends[(record["stage"], record["trial_id"])] = record
        else:
            epochs.append(record)
    frame = pd.DataFrame(epochs)
    if frame.empty:
        frame = pd.DataFrame(columns=KEY + ["config_id", "seed", "status"])
    frame = frame.drop_duplicates(subset=KEY, keep="last")
    # Trials that crashed before their first epoch still get a row.
    known = set(zip(frame["stage"], frame["trial_id"])) if len(frame) else set()
    missing = [{k: v for k, v in end.items() if k not in ("status",)} | {"epoch": 0}
               for key, end in ends.items() if key not in known]
    if missing:
        frame = pd.concat([frame, pd.DataFrame(missing)], ignore_index=True)
    status = {key: end["status"] for key, end in ends.items()}
    frame["status"] = [status.get((s, t), "running") for s, t in zip(frame["stage"], frame["trial_id"])]
    for column in TRIAL_LEVEL:
        values = {key: end.get(column) for key, end in ends.items()}
        if any(v is not None for v in values.values()):
            frame[column] = [values.get((s, t)) for s, t in zip(frame["stage"], frame["trial_id"])]
    frame = frame.sort_values(KEY, kind="stable").reset_index(drop=True)
    return _encode_nested(frame)


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and path for a local path or any URI pyarrow knows (s3://, gs://, ...)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def holds_files(uri: str) -> bool:
    """Whether a local folder or URI holds anything."""
    fs, folder = filesystem_for(uri)
    return bool(fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True)))


def delete_folder(uri: str) -> None:
    """Delete a local folder or URI prefix and all it holds; one that does not exist is no error."""
    fs, folder = filesystem_for(uri)
    if fs.get_file_info(folder).type != pafs.FileType.NotFound:
        fs.delete_dir(folder)


def write_results(frame: pd.DataFrame, root_uri: str) -> str:
    """Write the table as `<root>/results.parquet`, replacing it atomically where the filesystem can."""
    fs, root = filesystem_for(root_uri)
    fs.create_dir(root, recursive=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    final = f"{root}/{RESULTS_FILE}"
    if isinstance(fs, pafs.LocalFileSystem):
        temporary = f"{root}/.{RESULTS_FILE}.tmp"
        pq.write_table(table, temporary, filesystem=fs)
        os.replace(temporary, final)
    else:
        pq.write_table(table, final, filesystem=fs)
    return final


def read_results(root_uri: str) -> pd.DataFrame:
    """The sweep's results table (pyarrow only; no Ray)."""
    fs, root = filesystem_for(root_uri)
    return pq.read_table(f"{root}/{RESULTS_FILE}", filesystem=fs).to_pandas()


def compact(journal_path: Path, root_uri: str) -> pd.DataFrame:
    """Rebuild the Parquet table from the journal; safe to repeat (idempotent)."""
    frame = build_table(read_journal(journal_path))
    write_results(frame, root_uri)
    return frame
