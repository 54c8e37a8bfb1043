"""A sweep whose driver is SIGKILLed mid-way resumes to every trial complete exactly once, under Ray Tune
and under the local executor (which resumes with the executor it started with)."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from helpers.interrupt import journal_records, kill_mid_sweep, unfinished

from regsweep._results import read_results
from regsweep._tune_storage import saved_state

pytestmark = pytest.mark.ray
EPOCHS = 6


def dropout_grid(write_spec, name, **resources):
    """Six CNN trials of EPOCHS epochs on digits, a grid over dropout: the sweep these tests interrupt."""
    return write_spec({
        "name": name, "trainable": "cnn", "dataset": "digits",
        "fixed": {"epochs": EPOCHS, "filters": 16, "batch_size": 32},
        "search_space": {"dropout": {"grid": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}},
        "search": {"algorithm": "grid"}, "resources": resources,
    })


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_killed_driver_resumes_without_duplicates_or_gaps(tmp_path, write_spec, executor):
    spec = dropout_grid(write_spec, "killme", checkpoint_every_s=0)
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "regsweep", "run", str(spec), "--results", str(results), "--executor", executor]
    journal = results / "killme" / "journal.jsonl"
    before_kill = kill_mid_sweep(command, journal, tmp_path, env)
    ended_before = {r["trial_id"] for r in before_kill if r.get("kind") == "end"}
    assert 1 <= len(ended_before) < 6, "the kill must land mid-sweep"

    listed = subprocess.run([sys.executable, "-m", "regsweep", "list", "--results", str(results)],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "killme" in listed.stdout and "interrupted" in listed.stdout

    if executor == "ray":
        refuses_broken_tune_state(results, tmp_path, env, journal)

    # MLflow's parent run is opened on the logging thread, and the state file may not have its id at a kill
    # (made certain here): the resume finds that run by the sweep's id tag instead of opening a second one.
    state_file = results / "killme" / "sweep.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "mlflow_parent_run_id": None}))
    resumed = subprocess.run([sys.executable, "-m", "regsweep", "resume", "killme", "--results", str(results)],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    frame = read_results(str(results / "killme"))
    assert frame["trial_id"].nunique() == 6 and set(frame["status"]) == {"completed"}
    epochs = frame.groupby("trial_id")["epoch"].apply(sorted)
    assert all(e == list(range(1, EPOCHS + 1)) for e in epochs), epochs.to_dict()
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    # The resumed sweep ran on the executor it started with.
    assert frame["node_id"].str.startswith("local:").all() == (executor == "local")
    # Trials that had finished before the kill trained no epoch again.
    after_kill = journal_records(journal)[len(before_kill):]
    retrained = [r for r in after_kill if r.get("kind") == "epoch" and r["trial_id"] in ended_before]
    assert retrained == []
    if executor == "local":
        # Checkpoints every epoch: an interrupted trial resumes after its last journaled epoch (or repeats it,
        # when the kill fell between journaling it and committing its checkpoint), never from scratch. A trial
        # killed after its final epoch's checkpoint but before its end record trains nothing: only its end is left.
        for trial, last in unfinished(before_kill).items():
            trained = [r["epoch"] for r in after_kill if r.get("kind") == "epoch" and r["trial_id"] == trial]
            if not trained:
                assert last == EPOCHS, (trial, last)
                continue
            assert last <= min(trained) <= last + 1, (trial, last, min(trained))
    assert {r["trial_id"] for r in after_kill if r.get("kind") == "end"} | ended_before == set(frame["trial_id"])
    state = json.loads((results / "killme" / "sweep.json").read_text())
    assert state["status"] == "finished"

    # MLflow: the resumed sweep continued the same parent and child runs, each step exactly once.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("killme")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [p.info.run_id for p in parents] == [state["mlflow_parent_run_id"]]
    assert parents[0].info.status == "FINISHED"
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(set(frame["trial_id"]))
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val_acc")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
        assert child.info.status == "FINISHED"


def test_ctrl_c_leaves_a_ray_sweep_interrupted_and_resumable(tmp_path, write_spec, s3_bucket):
    """Tune's own Ctrl-C handler would stop the running trials and return as if the stage had finished.
    Tune's state and checkpoints are in a bucket on a real S3 server (a loopback port), as on a cluster."""
    spec = dropout_grid(write_spec, "ctrlc")
    results = tmp_path / "results"
    storage = f"{s3_bucket}/sweeps"
    command = [sys.executable, "-m", "regsweep", "run", str(spec), "--results", str(results), "--no-mlflow",
               "--storage", storage]
    finished = []
    # As a terminal's Ctrl-C: SIGINT to the driver's whole process group.
    before = kill_mid_sweep(command, results / "ctrlc" / "journal.jsonl", tmp_path, os.environ, sig=signal.SIGINT,
                            finished=finished)
    assert finished[0] == 130 and "regsweep: interrupted" in finished[1] and "Traceback" not in finished[1]
    assert len(unfinished(before)) >= 1
    state = json.loads((results / "ctrlc" / "sweep.json").read_text())
    assert state["status"] == "interrupted" and "search" not in state.get("stages", {})
    # What the resume restores is in the bucket, nothing of Tune's on this disk.
    assert saved_state(f"{storage}/ctrlc/search") and not (results / "ctrlc" / "search").exists()
    resumed = subprocess.run([sys.executable, "-m", "regsweep", "resume", "ctrlc", "--results", str(results)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Last result" not in resumed.stdout + resumed.stderr  # Tune's printer, for the trials it skips
    # The progress counts the trials left, not those that ended before the interrupt.
    left = 6 - sum(r.get("kind") == "end" for r in before)
    assert f"[search] {left} trials" in resumed.stdout and f"[search {left}/{left}]" in resumed.stdout
    frame = read_results(f"{storage}/ctrlc")  # beside Tune's state
    assert frame["trial_id"].nunique() == 6 and set(frame["status"]) == {"completed"}
    assert not frame.duplicated(["trial_id", "epoch"]).any() and (frame.groupby("trial_id").size() == EPOCHS).all()


def test_a_trial_missing_from_tunes_snapshot_is_recorded_not_left_running(tmp_path, write_spec):
    """A kill between the files of one of Tune's snapshots can leave a trial out of its experiment state
    (made certain here by taking one out): Tune's resume never runs it again, and the journal says so."""
    spec = dropout_grid(write_spec, "lost", checkpoint_every_s=0)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "regsweep", "run", str(spec), "--results", str(results), "--no-mlflow"]
    before = kill_mid_sweep(command, results / "lost" / "journal.jsonl", tmp_path, os.environ)
    lost = next(iter(unfinished(before)))
    [state_file] = (results / "lost" / "search").glob("experiment_state-*.json")
    state = json.loads(state_file.read_text())
    state["trial_data"] = [t for t in state["trial_data"] if json.loads(t[0])["trial_id"] != lost]
    assert len(state["trial_data"]) == 5
    state_file.write_text(json.dumps(state))
    resumed = subprocess.run([sys.executable, "-m", "regsweep", "resume", "lost", "--results", str(results)],
                             capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ends = read_results(str(results / "lost")).groupby("trial_id").last()
    assert len(ends) == 6
    assert ends.loc[lost, "status"] == "error" and ends.loc[lost, "stopped_by"] == "lost"
    assert "did not list this trial" in ends.loc[lost, "error"]
    assert set(ends.drop(index=lost)["status"]) == {"completed"}


# Through the Python API, in one process: Ctrl-C (SIGINT, raised once the first trial has ended), then a
# resume from the same process, which must neither refuse the sweep as running nor wait for the CPUs of
# the interrupted trials.
INTERRUPT_THEN_RESUME = """
import signal, sys
import regsweep
from regsweep._record import set_trial_listener
sweep = regsweep.load_sweep(sys.argv[1])
set_trial_listener(lambda record: record.get("kind") == "end" and signal.raise_signal(signal.SIGINT))
try:
    regsweep.start_sweep(sweep, sys.argv[2], mlflow=False)
    sys.exit("not interrupted")
except KeyboardInterrupt:
    print("status:", regsweep.list_sweeps(sys.argv[2])[0]["status"])
set_trial_listener(None)
_, frame = regsweep.resume_sweep(sweep.spec.name, sys.argv[2])
print("trials:", frame["trial_id"].nunique(), sorted(set(frame["status"])), len(frame))
"""


def test_an_interrupted_sweep_resumes_from_the_same_python_process(tmp_path, write_spec):
    spec = write_spec({
        "name": "inprocess", "trainable": "cnn", "dataset": "digits",
        "fixed": {"epochs": 4, "filters": 8, "batch_size": 64},
        "search_space": {"dropout": {"grid": [0.0, 0.2, 0.4, 0.6]}}, "search": {"algorithm": "grid"},
    })
    done = subprocess.run([sys.executable, "-c", INTERRUPT_THEN_RESUME, str(spec), str(tmp_path / "results")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status: interrupted" in done.stdout
    assert "trials: 4 ['completed'] 16" in done.stdout


def refuses_broken_tune_state(results, tmp_path, env, journal):
    """Tune's state survived the kill whole, and a state Tune could not read is refused before anything
    starts: Tune itself would start the stage again as a new experiment, from an empty config."""
    stage = results / "killme" / "search"
    assert saved_state(str(stage))
    for pattern in ("experiment_state-*.json", "basic-variant-state-*.json", "tuner.pkl"):
        broken = tmp_path / "broken" / pattern.split("-")[0]
        shutil.copytree(stage, broken)
        [file] = broken.glob(pattern)
        file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        with pytest.raises(ValueError, match=f"{file.name}: Ray Tune's saved state cannot be read"):
            saved_state(str(broken))
    [state] = stage.glob("experiment_state-*.json")
    whole = state.read_bytes()
    state.write_bytes(whole[: len(whole) // 2])
    journaled = journal.read_bytes()
    refused = subprocess.run([sys.executable, "-m", "regsweep", "resume", "killme", "--results", str(results)],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"cannot resume stage 'search': {state}: Ray Tune's saved state cannot be read" in refused.stderr
    assert journal.read_bytes() == journaled  # no trial ran
    state.write_bytes(whole)
