"""The live sweep view: a pure render of a LiveState, fed by journal events, at most 2 refreshes/s."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

_SHOWN_RUNNING = 12


@dataclass
class LiveState:
    """What the live view shows; plain data, updated from journal records."""

    metric: str
    mode: str
    epochs: int
    stage: str = ""
    total_trials: int | None = None
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    epochs_done: int = 0
    epochs_saved: int = 0
    best: tuple[str, float] | None = None
    started: float = field(default_factory=time.time)

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def apply(self, record: dict[str, Any]) -> None:
        """Fold one journal record into the state."""
        trial = record.get("trial_id")
        if record.get("kind") == "end":
            self.running.pop(trial, None)
            status = record.get("status", "completed")
            self.counts[status] = self.counts.get(status, 0) + 1
            trained = record.get("epochs_trained") or record.get("metrics", {}).get("training_iteration") or 0
            if status in ("stopped_early", "diverged", "error"):
                self.epochs_saved += max(0, self.epochs - int(trained))
            return
        self.epochs_done += 1
        value = record.get(self.metric)
        self.running[trial] = {"name": record.get("trial_name", trial), "epoch": record.get("epoch"), "value": value}
        if isinstance(value, (int, float)) and value == value:
            better = self.best is None or (value > self.best[1] if self.mode == "max" else value < self.best[1])
            if better:
                self.best = (record.get("trial_name", trial), float(value))


def render_live(state: LiveState, now: float | None = None) -> Group:
    """The live view of a sweep (pure: the same state and clock render the same way)."""
    total = state.total_trials or max(state.finished + len(state.running), 1)
    budget = total * state.epochs
    elapsed = (time.time() if now is None else now) - state.started
    bars = Table.grid(padding=(0, 1))
    bars.add_row(Text(f"{state.stage} trials", style="bold"),
                 ProgressBar(total=total, completed=state.finished, width=40), Text(f"{state.finished}/{total}"))
    bars.add_row(Text("epoch budget", style="bold"),
                 ProgressBar(total=budget, completed=min(budget, state.epochs_done + state.epochs_saved), width=40),
                 Text(f"{state.epochs_done} trained, {state.epochs_saved} saved by early stopping of {budget}"))
    running = Table(title=f"running ({len(state.running)})", title_justify="left", expand=False)
    for column in ("trial", "epoch", state.metric):
        running.add_column(column)
    for info in list(state.running.values())[:_SHOWN_RUNNING]:
        value = info["value"]
        running.add_row(str(info["name"]), f"{info['epoch']}/{state.epochs}",
                        f"{value:.4f}" if isinstance(value, (int, float)) else "-")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(state.counts.items())) or "none finished yet"
    best = f"best so far: {state.metric} {state.best[1]:.4f} ({state.best[0]})" if state.best else "best so far: -"
    return Group(bars, running, Text(best), Text(f"{counts}; {elapsed:.0f}s", style="dim"))


class LiveView:
    """Rich Live display of a running sweep, for terminals."""

    def __init__(self, metric: str, mode: str, epochs: int, console: Console | None = None):
        self.console = console or Console()
        self.state = LiveState(metric, mode, epochs)
        self._live: Live | None = None

    def stage_started(self, stage: str, total: int | None) -> None:
        self.stop()
        self.state = LiveState(self.state.metric, self.state.mode, self.state.epochs, stage=stage, total_trials=total)
        self._live = Live(get_renderable=lambda: render_live(self.state), console=self.console,
                          refresh_per_second=2, transient=False)
        self._live.start()

    def __call__(self, record: dict[str, Any]) -> None:
        self.state.apply(record)

    def stop(self) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
