"""What one push of the MLflow follower writes, on a real sqlite store (no Ray, no sweep)."""

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from regsweep._mlflow import MlflowSync
from regsweep._trial_log import TrialLog, update_trials

METRICS = {"train_loss": 0.5, "val_loss": 0.6, "val_acc": 0.9}


@pytest.fixture
def sync(tmp_path):
    made = MlflowSync(f"sqlite:///{tmp_path / 'mlflow.db'}", "pushed", {"dataset": "digits", "epochs": 3})
    made.ensure_parent(None, "a hypothesis", {"trainable": "mlp"}, {}, None)
    return made


@pytest.fixture
def commits():
    """Counts the store's committed transactions while a block runs: `with commits() as counted: ...`."""
    count = [0]

    def on_commit(_connection):
        count[0] += 1

    event.listen(Engine, "commit", on_commit)

    class Counted:
        def __enter__(self):
            count[0] = 0
            return self

        def __exit__(self, *exc):
            self.n = count[0]

    yield Counted
    event.remove(Engine, "commit", on_commit)


def trial(trial_id, status="running", error=None):
    made = TrialLog("search", trial_id, f"search_{trial_id}", "cfg", 0, {"dropout": 0.1, "hidden": [16, 8]})
    made.epochs = {epoch: dict(METRICS) for epoch in (1, 2, 3)}
    made.status, made.error = status, error
    if status != "running":
        made.final = {"best_val_acc": 0.9}
    return made


def test_a_trial_that_ended_before_its_first_push_gets_its_end_tags_with_its_run(sync, commits):
    """A short trial usually ends before the follower's next push: its run is created with its end tags, so
    ending it costs only the run's termination on top of what logging a running trial costs."""
    with commits() as running:
        sync.push([trial("00001")])
    with commits() as ended:
        sync.push([trial("00002", "error", "RuntimeError: boom")])
    with commits() as terminate:
        sync.client.set_terminated(sync.runs["search/00001"], "FINISHED")
    assert ended.n == running.n + terminate.n

    run = sync.client.get_run(sync.runs["search/00002"])
    assert run.info.status == "FAILED"
    assert {k: run.data.tags[k] for k in ("status", "stopped_by", "error", "trial_id", "stage")} == {
        "status": "error", "stopped_by": "None", "error": "RuntimeError: boom", "trial_id": "00002", "stage": "search"}
    assert run.data.params == {"dataset": "digits", "epochs": "3", "dropout": "0.1", "hidden": "[16, 8]", "seed": "0"}
    assert run.data.metrics == {**METRICS, "epoch": 3.0, "best_val_acc": 0.9}
    assert [m.step for m in sync.client.get_metric_history(run.info.run_id, "val_acc")] == [1, 2, 3]


def test_a_trial_that_ends_after_its_first_push_gets_its_end_tags_when_it_ends(sync):
    running = trial("00003")
    running.epochs = {1: dict(METRICS)}
    sync.push([running])
    run_id = sync.runs["search/00003"]
    assert sync.client.get_run(run_id).data.tags["status"] == "running"
    assert sync.client.get_run(run_id).info.status == "RUNNING"

    sync.push([trial("00003", "completed")])
    run = sync.client.get_run(run_id)
    assert (run.info.status, run.data.tags["status"], run.data.tags["stopped_by"]) == ("FINISHED", "completed", "None")
    assert [m.step for m in sync.client.get_metric_history(run_id, "val_acc")] == [1, 2, 3]
    sync.push([trial("00003", "completed")])  # pushed again (a retry): nothing is logged twice
    assert [m.step for m in sync.client.get_metric_history(run_id, "val_acc")] == [1, 2, 3]


def test_runs_and_metrics_carry_the_trials_own_times_and_no_bookkeeping_metrics(sync):
    """A run pushed after its trial ended starts and ends when the trial did (not when it was pushed), and each
    epoch's metrics are stamped with the epoch's report, so MLflow's durations and wall-time charts are true."""
    start, resumed = 1_795_915_500.0, 1_795_915_600.0
    base = {"stage": "search", "trial_id": "00005", "trial_name": "dropout=0.1", "config_id": "cfg", "seed": 0,
            "config/dropout": 0.1, "node_id": "local:vm"}
    records = [{**base, "kind": "epoch", "epoch": epoch, **METRICS, "attempt_started_at": began,
                "reported_at": began + 0.5 * epoch} for epoch, began in ((1, start), (2, start), (3, resumed))]
    records.append({**base, "kind": "end", "status": "completed", "stopped_by": "completed", "best_val_acc": 0.9})
    trials = {}
    update_trials(trials, records)
    sync.push(trials.values())

    run = sync.client.get_run(sync.runs["search/00005"])
    assert (run.info.start_time, run.info.end_time) == (1_795_915_500_000, 1_795_915_601_500)
    history = sync.client.get_metric_history(run.info.run_id, "val_acc")
    assert [(m.step, m.timestamp) for m in history] == [
        (1, 1_795_915_500_500), (2, 1_795_915_501_000), (3, 1_795_915_601_500)]
    assert set(run.data.metrics) == {*METRICS, "epoch", "best_val_acc"}
