"""The driver's MLflow logger: a background thread that follows the sweep's journal and pushes what is new.

It opens MLflow itself (the client, then the sweep's parent run), so the local executor's trials do not wait
for the tracking store (importing MLflow and opening it take 1.5 s on two cores), and a server that is down
at the start is tried again every round, like one that goes away mid-sweep, until it answers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from regsweep._mlflow import MlflowSync, warn
from regsweep._trial_log import TrialLog, update_trials


class JournalFollower:
    """Every `interval` seconds: open MLflow with `opener` until that succeeds, then push the new journal
    records. A failure warns once, keeps the records, and makes the next push reconcile against MLflow."""

    def __init__(self, opener: Callable[[], MlflowSync], journal: Path, uri: str, interval: float = 0.5):
        self.opener, self.journal, self.uri, self.interval = opener, Path(journal), uri, interval
        self.sync: MlflowSync | None = None
        self.trials: dict[str, TrialLog] = {}
        self.pending: set[str] = set()
        self.offset = 0
        self.failures = 0
        self.reconcile = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="regsweep-mlflow", daemon=True)

    def start(self) -> "JournalFollower":
        self._thread.start()
        return self

    def _read_new(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        with open(self.journal, encoding="utf-8") as handle:
            handle.seek(self.offset)
            records = []
            while True:
                line = handle.readline()
                if not line.endswith("\n"):
                    break  # a line still being written; read it next time
                self.offset += len(line.encode("utf-8"))
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def push_once(self) -> bool:
        """One round; True when MLflow has everything read so far."""
        self.pending |= update_trials(self.trials, self._read_new())
        try:
            if self.sync is None:
                self.sync = self.opener()
            if self.pending:
                self.sync.push([self.trials[k] for k in sorted(self.pending)], reconcile=self.reconcile)
        except Exception as exc:  # any tracking failure: keep everything, retry later
            self.failures += 1
            if self.failures == 1:
                warn(f"MLflow at {self.uri} is unreachable ({type(exc).__name__}: {str(exc)[:200]}); "
                     "training goes on and results are kept; logging resumes when it is back")
            self.reconcile = True
            return False
        if self.failures:
            warn("MLflow is reachable again; missing results were sent")
            self.failures = 0
        self.pending.clear()
        self.reconcile = False
        return True

    def _loop(self) -> None:
        self.push_once()  # at once: opens MLflow while the first trials train
        while not self._stop.wait(self.interval):
            self.push_once()

    def stop(self, attempts: int = 3) -> bool:
        """Stop the thread and push what is left; False if MLflow still lacks something."""
        self._stop.set()
        self._thread.join()
        for attempt in range(attempts):
            if self.push_once():
                return True
            time.sleep(1.0 + attempt)
        return False
