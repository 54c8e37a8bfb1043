"""The live view during a real sweep: Rich Live on a terminal, one plain line per trial otherwise."""

import io

import pytest
from rich.console import Console

from regsweep._commands import PlainProgress, _attach_view, _finish_view
from regsweep._live import LiveState, LiveView, render_live
from regsweep._sweep import start_sweep
from regsweep._validate import load_sweep

pytestmark = pytest.mark.ray

SPEC = {
    "name": "live", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 4, "hidden": [16]},
    "search_space": {"lr": {"loguniform": [1.0e-4, 3.0e-2]}},
    "search": {"algorithm": "optuna", "num_samples": 6, "seed": 0, "max_concurrent": 2},
    "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
}


def run_with(console, tmp_path, write_spec):
    sweep = load_sweep(write_spec(SPEC))
    view = _attach_view("val_acc", "max", sweep.epochs, console)
    try:
        frame = start_sweep(sweep, str(tmp_path / "results"), on_stage=view.stage_started, mlflow=False)
    finally:
        _finish_view(view)
    return view, frame


def test_terminal_mode_shows_live_progress(ray_local, tmp_path, write_spec):
    console = Console(record=True, force_terminal=True, width=120, color_system=None, file=io.StringIO())
    view, frame = run_with(console, tmp_path, write_spec)
    assert isinstance(view, LiveView)
    state = view.state
    ends = frame.sort_values("epoch").groupby("trial_id").tail(1)
    assert state.finished == 6 and state.epochs_done == len(frame)
    stopped = ends[ends["status"] == "stopped_early"]
    assert state.epochs_saved == int((4 - stopped["epoch"]).sum())
    assert state.best[1] == pytest.approx(frame["val_acc"].max())
    text = console.export_text()
    assert "search trials" in text and "6/6" in text and "epoch budget" in text
    assert f"{state.epochs_done} trained, {state.epochs_saved} saved by early stopping of 24" in text
    assert "best so far: val_acc" in text


def test_non_terminal_mode_prints_one_line_per_trial(ray_local, tmp_path, write_spec, capsys):
    console = Console(force_terminal=False, file=io.StringIO())
    view, frame = run_with(console, tmp_path, write_spec)
    assert isinstance(view, PlainProgress)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[search ")]
    assert len(lines) == 6 and len(set(lines)) == 6
    assert all("val_acc=" in line and ("completed" in line or "stopped_early" in line) for line in lines)
    assert "\x1b[" not in "".join(lines)


def test_plain_progress_says_what_stopped_a_trial_only_where_its_status_does_not():
    stream = io.StringIO()
    progress = PlainProgress("val_acc", stream)
    progress.stage_started("search", 3)
    for trial, status, stopped_by in (("a", "completed", "completed"), ("b", "stopped_early", "asha@2"),
                                      ("c", "diverged", "diverged")):
        progress({"kind": "epoch", "trial_id": trial, "epoch": 1})
        progress({"kind": "end", "trial_id": trial, "trial_name": f"lr={trial}", "status": status,
                  "stopped_by": stopped_by, "metrics": {"val_acc": 0.5} if status != "diverged" else {}})
    assert stream.getvalue().splitlines() == [
        "[search] 3 trials",
        "[search 1/3] lr=a: completed val_acc=0.5000",
        "[search 2/3] lr=b: stopped_early (asha@2) val_acc=0.5000",
        "[search 3/3] lr=c: diverged val_acc=-",
    ]


def test_render_live_is_pure():
    state = LiveState("val_acc", "max", 5, stage="search", total_trials=4)
    state.apply({"kind": "epoch", "trial_id": "a", "trial_name": "lr=0.01 seed=0", "epoch": 1, "val_acc": 0.5})
    state.apply({"kind": "epoch", "trial_id": "a", "trial_name": "lr=0.01 seed=0", "epoch": 2, "val_acc": 0.7})
    state.apply({"kind": "end", "trial_id": "a", "status": "stopped_early", "epochs_trained": 2})

    def text():
        console = Console(record=True, width=100, color_system=None, file=io.StringIO())
        console.print(render_live(state, now=state.started + 42))
        return console.export_text()

    assert text() == text()
    shown = text()
    assert "1/4" in shown and "2 trained, 3 saved by early stopping of 20" in shown
    assert "best so far: val_acc 0.7000 (lr=0.01 seed=0)" in shown and "stopped_early 1; 42s" in shown
