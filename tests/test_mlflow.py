"""MLflow tracking against a real `mlflow server` on loopback and the embedded sqlite default."""

import sqlite3
import threading
import time
from contextlib import closing

import pytest
from mlflow.tracking import MlflowClient

from mlflow_server import MlflowServer
from regsweep._results import read_journal
from regsweep._sweep import start_sweep, sync_mlflow
from regsweep._validate import load_sweep

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def _shared_server(tmp_path_factory):
    running = MlflowServer(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


@pytest.fixture
def server(_shared_server):
    """One server for the module (each start takes 10-15 s on two cores); every test logs to an experiment of
    its own, and finds the server running even after a test that stopped it failed."""
    if _shared_server.process is None:
        _shared_server.start()
    return _shared_server


def runs_of(client, name):
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def steps(client, run, key="val_acc"):
    return sorted(m.step for m in client.get_metric_history(run.info.run_id, key))


def check_sweep_in_mlflow(client, name, frame, epochs_key="val_acc"):
    parents, children = runs_of(client, name)
    assert len(parents) == 1
    parent = parents[0]
    assert len(children) == frame["trial_id"].nunique()
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    for child in children:
        rows = frame[frame["trial_id"] == child.data.tags["trial_id"]]
        assert steps(client, child, epochs_key) == sorted(rows["epoch"].tolist())
        assert child.data.tags["status"] == rows["status"].iloc[-1]
    return parent, children


def when_journaled(journal, records, action, release):
    """A thread that runs `action` once the sweep's journal holds `records` records, then creates `release`,
    the file the trials' held epochs wait for. It gives up if `release` appears first: the sweep has ended."""

    def run():
        try:
            while len(read_journal(journal)) < records:
                if release.exists():
                    return
                time.sleep(0.1)
            action()
        finally:
            release.touch()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


GRID = {
    "name": "tracked", "trainable": "cnn", "dataset": "digits", "hypothesis": "dropout 0.1 beats 0.5",
    "fixed": {"epochs": 3, "filters": 8, "fc_units": [16]},
    "search_space": {"dropout": {"grid": [0.1, 0.5]}}, "search": {"algorithm": "grid"}, "seeds": 2,
}


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_smoke_sweep_against_real_server(ray_local, tmp_path, write_spec, server, monkeypatch, executor):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    name = f"tracked-{executor}"
    frame = start_sweep(load_sweep(write_spec({**GRID, "name": name}), {"resources.executor": executor}),
                        str(tmp_path / "results"))
    assert frame["node_id"].str.startswith("local:").all() == (executor == "local")
    client = MlflowClient(server.uri)
    parent, children = check_sweep_in_mlflow(client, name, frame)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.note.content"] == "dropout 0.1 beats 0.5"
    assert parent.data.params["search.algorithm"] == "grid" and parent.data.params["seeds"] == "2"
    assert parent.data.metrics["trials_completed"] == 4 and "best_val_acc_mean" in parent.data.metrics
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    names = sorted(c.info.run_name for c in children)
    assert names == ["dropout=0.1 seed=0", "dropout=0.1 seed=1", "dropout=0.5 seed=0", "dropout=0.5 seed=1"]
    child = children[0]
    assert child.data.params["dropout"] in ("0.1", "0.5") and child.data.params["epochs"] == "3"
    assert child.data.params["dataset"] == "digits" and child.info.status == "FINISHED"
    assert {"trial_id", "config_id", "seed", "status", "stopped_by"} <= set(child.data.tags)
    assert all(len(client.get_metric_history(child.info.run_id, k)) == 3 for k in ("train_loss", "val_loss", "gap"))
    rows = frame[frame["trial_id"] == child.data.tags["trial_id"]]  # the run's times are the trial's own
    assert child.info.start_time == int(rows["attempt_started_at"].min() * 1000)
    assert child.info.end_time == int(rows["reported_at"].max() * 1000)
    assert "attempt_started_at" not in child.data.metrics
    best = [c for c in children if c.data.tags.get("regsweep.best") == "true"]
    assert len(best) == 1 and parent.data.tags["best_run_id"] == best[0].info.run_id
    artifacts = [a.path for a in client.list_artifacts(best[0].info.run_id, "model")]
    assert artifacts == ["model/best_model.pt"]


def test_embedded_sqlite_default(ray_local, tmp_path, write_spec, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    frame = start_sweep(load_sweep(write_spec(GRID)), "results")
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(uri)
    parent, children = check_sweep_in_mlflow(client, "tracked", frame)
    assert parent.info.status == "FINISHED"
    best = [c for c in children if c.data.tags.get("regsweep.best") == "true"][0]
    assert (tmp_path / "mlruns" / "artifacts").is_dir()
    assert [a.path for a in client.list_artifacts(best.info.run_id, "model")] == ["model/best_model.pt"]
    # Write-ahead logging (kept in the file): commits wait for no fsync of the database, and readers such as
    # `mlflow ui` are not locked out while a sweep writes.
    with closing(sqlite3.connect(tmp_path / "mlruns" / "mlflow.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_outage_mid_sweep_loses_nothing(ray_local, tmp_path, write_spec, server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    server_back = tmp_path / "server-back"  # epochs from the 5th wait for it: a restart takes 7-20 s
    spec = write_spec({
        "name": "outage", "trainable": "helpers.user_trainables:slow_epochs",
        "fixed": {"epochs": 6, "sleep": 0.5, "hold": str(server_back), "hold_from": 5},
        "search_space": {"x": {"grid": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}},
    })
    journal = tmp_path / "results" / "outage" / "journal.jsonl"
    events = []

    def outage():
        server.stop()
        events.append(len(read_journal(journal)))
        time.sleep(2)
        server.start()
        events.append(len(read_journal(journal)))

    chaos = when_journaled(journal, 4, outage, release=server_back)
    try:
        frame = start_sweep(load_sweep(spec), str(tmp_path / "results"))
    finally:
        server_back.touch()
        chaos.join()
    assert len(events) == 2 and events[0] < events[1] < len(read_journal(journal)), \
        "the outage must fall inside the sweep"
    client = MlflowClient(server.uri)
    # The server came back while the sweep ran: the automatic retry has already caught up.
    check_sweep_in_mlflow(client, "outage", frame)
    # sync-mlflow afterwards is idempotent: nothing duplicated.
    assert sync_mlflow("outage", str(tmp_path / "results")) == 6
    parent, children = check_sweep_in_mlflow(client, "outage", frame)
    assert len(children) == 6 and all(len(steps(client, c)) == 6 for c in children)
    assert parent.info.status == "FINISHED"


def test_a_server_that_comes_up_after_the_start_gets_every_trial_and_no_trial_waited_for_it(
        tmp_path, write_spec, monkeypatch, capfd):
    """MLflow opens on the follower's thread: trials start without it, and a server that answers only later
    receives the parent run and every trial during the sweep, with no sync-mlflow."""
    later = MlflowServer(tmp_path / "later")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", later.uri)
    server_up = tmp_path / "server-up"  # the trials' later epochs wait for it: the server's start takes 7-20 s
    spec = write_spec({
        "name": "late", "trainable": "helpers.user_trainables:slow_epochs",
        "fixed": {"epochs": 4, "sleep": 0.5, "hold": str(server_up)},
        "search_space": {"x": {"grid": [0.1, 0.2, 0.3, 0.4]}}, "resources": {"executor": "local"},
    })
    journal = tmp_path / "results" / "late" / "journal.jsonl"
    up = []

    def start_late():
        later.start()
        up.append(len(read_journal(journal)))

    starter = when_journaled(journal, 1, start_late, release=server_up)
    try:
        frame = start_sweep(load_sweep(spec), str(tmp_path / "results"))
        server_up.touch()
        starter.join()
        assert up and up[0] < len(read_journal(journal)), "the server must come up inside the sweep"
        assert "regsweep sync-mlflow" not in capfd.readouterr().err
        parent, children = check_sweep_in_mlflow(MlflowClient(later.uri), "late", frame)
        assert parent.info.status == "FINISHED" and len(children) == 4
    finally:
        server_up.touch()
        starter.join()
        later.stop()


def test_server_down_from_the_start_then_sync(ray_local, tmp_path, write_spec, monkeypatch, capfd):
    later = MlflowServer(tmp_path / "later")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", later.uri)
    frame = start_sweep(load_sweep(write_spec(GRID)), str(tmp_path / "results"))
    assert frame["trial_id"].nunique() == 4
    assert "regsweep sync-mlflow tracked" in capfd.readouterr().err
    later.start()
    try:
        assert sync_mlflow("tracked", str(tmp_path / "results")) == 4
        parent, _ = check_sweep_in_mlflow(MlflowClient(later.uri), "tracked", frame)
        assert parent.info.status == "FINISHED" and parent.data.metrics["trials_completed"] == 4
    finally:
        later.stop()


def test_sync_into_another_store_makes_the_sweep_there_quietly(tmp_path, write_spec, monkeypatch):
    """The state remembers the parent run of the store the sweep ran with; `sync-mlflow` after
    MLFLOW_TRACKING_URI changed to a new store used to fail on it (run not found). Nothing of MLflow's own set-up
    chatter ("Creating initial MLflow database tables") reaches the terminal either."""
    import os
    import subprocess
    import sys

    first, second = (f"sqlite:///{tmp_path / name}.db" for name in ("first", "second"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", first)
    frame = start_sweep(load_sweep(write_spec({**GRID, "resources": {"executor": "local"}})), str(tmp_path / "results"))
    done = subprocess.run([sys.executable, "-m", "regsweep", "sync-mlflow", "tracked", "--results",
                           str(tmp_path / "results")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLFLOW_TRACKING_URI": second})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout == "sweep tracked: 4 trials in MLflow\n"
    for uri in (first, second):
        parent, _ = check_sweep_in_mlflow(MlflowClient(uri), "tracked", frame)
        assert parent.info.status == "FINISHED"
