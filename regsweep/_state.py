"""A sweep's folder and state file (`results/NAME/sweep.json`): where it lives, whether it is running,
finished or interrupted, and the list of every sweep. Reads no spec and imports no engine."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regsweep._processes import process_alive
from regsweep._results import JOURNAL_FILE, build_table, read_journal, read_results

if TYPE_CHECKING:
    from regsweep._validate import Sweep

STATE_FILE = "sweep.json"
DEFAULT_RESULTS = "results"


class SweepStateError(ValueError):
    """A sweep that cannot be started or resumed as asked; the message says what to do."""


@dataclass
class SweepPaths:
    """Local folder (journal, state) and storage root (Tune's experiments, the Parquet table)."""

    local: Path
    storage: str

    @classmethod
    def for_sweep(cls, name: str, results_root: str | os.PathLike, storage: str | None) -> "SweepPaths":
        local = (Path(results_root) / name).absolute()
        return cls(local, f"{storage.rstrip('/')}/{name}" if storage else str(local))

    @property
    def journal(self) -> Path:
        return self.local / JOURNAL_FILE

    @property
    def state(self) -> Path:
        return self.local / STATE_FILE


def sweep_name(sweep: Sweep) -> str:
    """Smoke runs keep their own results so they never overwrite a real sweep."""
    return f"{sweep.spec.name}-smoke" if sweep.smoke else sweep.spec.name


def write_state(paths: SweepPaths, state: dict[str, Any]) -> None:
    """Replace the state file in one step (a reader never sees half of it), stamping `updated_at`."""
    state["updated_at"] = time.time()
    temporary = paths.state.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2, default=str))
    os.replace(temporary, paths.state)


def read_state(path: Path) -> dict[str, Any]:
    """The state file's contents; SweepStateError if it is not a state file regsweep wrote (edited by hand,
    cut short by a full disk)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepStateError(f"{path}: cannot read this sweep's state ({exc})") from None
    if not isinstance(state, dict) or "name" not in state:
        raise SweepStateError(f"{path}: not a sweep state file (it names no sweep)")
    return state


def read_sweep_state(name: str, results_root: str | os.PathLike = DEFAULT_RESULTS) -> dict[str, Any]:
    """The state of the sweep called `name`; SweepStateError naming the sweeps there if it has none."""
    path = Path(results_root) / name / STATE_FILE
    if not path.exists():
        known = sorted(p.parent.name for p in Path(results_root).glob(f"*/{STATE_FILE}"))
        raise SweepStateError(f"no sweep called {name!r} in {results_root}/; known: {', '.join(known) or 'none'}")
    return read_state(path)


def _pid_alive(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # another machine's driver: assume it is still going
    return process_alive(pid)


def sweep_status(state: dict[str, Any]) -> str:
    """finished, running, or interrupted (its driver stopped on an error or Ctrl-C, or is gone)."""
    if state.get("status") == "running" and not _pid_alive(state.get("pid", -1), state.get("host", "")):
        return "interrupted"
    return state.get("status", "unknown")


def list_sweeps(results_root: str = DEFAULT_RESULTS) -> list[dict[str, Any]]:
    """Every sweep under the results folder with its state and trial counts."""
    rows = []
    for state_path in sorted(Path(results_root).glob(f"*/{STATE_FILE}")):
        try:
            state = read_state(state_path)
        except SweepStateError:  # one unreadable folder must not hide the other sweeps
            rows.append({"name": state_path.parent.name, "status": "unreadable", "trials": 0, "started_at": None,
                         "spec": None})
            continue
        ends = [r for r in read_journal(state_path.parent / JOURNAL_FILE) if r.get("kind") == "end"]
        counts: dict[str, int] = {}
        for end in ends:
            counts[end["status"]] = counts.get(end["status"], 0) + 1
        rows.append({"name": state["name"], "status": sweep_status(state), "trials": len(ends), **counts,
                     "started_at": state.get("started_at"), "spec": state.get("spec_path")})
    return rows


def read_sweep_results(name: str, results_root: str | os.PathLike, state: dict[str, Any]) -> Any:
    """A sweep's results as a table: its Parquet table once it finished; while it runs, or after it was
    interrupted, what its journal holds so far (the table is written as each stage ends). SweepStateError
    when there is nothing to read yet."""
    journal = Path(results_root) / name / JOURNAL_FILE
    status = sweep_status(state)
    try:
        frame = (build_table(read_journal(journal)) if status != "finished" and journal.exists()
                 else read_results(state["storage"]))
    except FileNotFoundError:
        frame = None
    if frame is None or frame.empty:
        raise SweepStateError(f"sweep {name} ({status}) has no results yet")
    return frame
