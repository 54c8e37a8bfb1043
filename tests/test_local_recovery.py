"""The local executor interrupted: Ctrl-C, a driver killed mid-sweep, and what `regsweep resume` makes of each.
Real worker processes, real Optuna, no Ray."""

import json
import os
import subprocess
import sys

from helpers.sweeps import search_study, trial_ends

from regsweep._results import SUMMARY_KEYS, read_journal


def kill_local_sweep(tmp_path, write_spec, spec, **until):
    """Run `spec` with the local executor (no MLflow, a checkpoint every epoch) as `regsweep run` in a process of
    its own and SIGKILL it mid-sweep (see kill_mid_sweep); returns the results folder, the journal and the
    journal's records at the kill."""
    from helpers.interrupt import kill_mid_sweep

    path = write_spec({**spec, "resources": {"executor": "local", "checkpoint_every_s": 0}})
    results = tmp_path / "results"
    journal = results / spec["name"] / "journal.jsonl"
    command = [sys.executable, "-m", "regsweep", "run", str(path), "--results", str(results), "--no-mlflow"]
    return results, journal, kill_mid_sweep(command, journal, tmp_path, dict(os.environ), **until)


def resume(tmp_path, results, name):
    """`regsweep resume NAME` in a process of its own; it must succeed, without importing torch (its workers do)."""
    code = ("import sys\nfrom regsweep.cli import main\n"
            f"code = main(['resume', {name!r}, '--results', {str(results)!r}])\n"
            "print('torch imported:', 'torch' in sys.modules)\nsys.exit(code)")
    resumed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "torch imported: False" in resumed.stdout


def test_ctrl_c_stops_the_workers_and_leaves_a_resumable_sweep(tmp_path, write_spec):
    import signal
    import time

    spec = write_spec({
        "name": "localint", "trainable": "helpers.user_trainables:slow_epochs", "fixed": {"epochs": 40, "sleep": 0.2},
        "search_space": {"x": {"grid": [0.1, 0.2, 0.3, 0.4]}}, "search": {"algorithm": "grid"},
        "resources": {"executor": "local"},
    })
    results = tmp_path / "results"
    # Its own process group, which a terminal's Ctrl-C reaches whole: driver, fork server and workers.
    driver = subprocess.Popen([sys.executable, "-m", "regsweep", "run", str(spec), "--results", str(results),
                               "--no-mlflow"], cwd=tmp_path, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = results / "localint" / "journal.jsonl"
    deadline = time.time() + 120
    while len(read_journal(journal)) < 4:
        assert time.time() < deadline and driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    group = subprocess.run(["pgrep", "-g", str(driver.pid)], capture_output=True, text=True).stdout.split()
    assert len(group) >= 3  # the driver, the fork server and the workers
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130 and "regsweep: interrupted" in err and "Traceback" not in err
    deadline = time.time() + 20
    while subprocess.run(["pgrep", "-g", str(driver.pid)], capture_output=True).returncode == 0:
        assert time.time() < deadline, "processes of the sweep outlived it"
        time.sleep(0.2)
    listed = subprocess.run([sys.executable, "-m", "regsweep", "list", "--results", str(results)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert "localint" in listed.stdout and "interrupted" in listed.stdout


def test_a_killed_asha_sweep_resumes_its_trials_as_the_same_optuna_trials(tmp_path, write_spec):
    """ASHA's rungs compare what each trial reported; a trial resumed after a crash keeps the epochs it
    reported before it, and the study holds each trial once."""
    from helpers.interrupt import unfinished

    from regsweep._results import read_results

    results, _, before_kill = kill_local_sweep(tmp_path, write_spec, {
        "name": "killasha", "trainable": "cnn", "dataset": "digits",
        "fixed": {"epochs": 6, "filters": 16, "batch_size": 32},
        "search_space": {"dropout": {"uniform": [0.0, 0.6]}},
        "search": {"algorithm": "optuna", "num_samples": 6},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    })
    interrupted = unfinished(before_kill, min_epochs=2)
    assert interrupted, "the kill must land mid-trial"
    resume(tmp_path, results, "killasha")

    study = search_study(results, "killasha")
    by_key = {t.user_attrs["regsweep_trial"]: t for t in study.trials}
    assert len(study.trials) == len(by_key) == 6
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    for key, last_before in interrupted.items():
        # Its epochs from before the kill are still the study's, and it went on from there.
        steps = sorted(by_key[key].intermediate_values)
        assert steps[: last_before - 1] == list(range(1, last_before)), (key, last_before, steps)
    frame = read_results(str(results / "killasha"))
    ends = trial_ends(frame)
    assert len(ends) == 6 and set(ends["status"]) <= {"completed", "stopped_early"}
    assert not frame.duplicated(["trial_id", "epoch"]).any()
    assert all(sorted(group) == list(range(1, len(group) + 1)) for _, group in frame.groupby("trial_id")["epoch"])


def test_a_trial_asha_pruned_is_journaled_as_pruned_when_the_driver_died_before_its_end(tmp_path, write_spec):
    """The study is told of a pruning before the journal: a kill between the two must not leave the trial without
    an end, nor train it past the rung that stopped it."""
    from regsweep._results import read_results

    def pruned_ends(records):
        return [r for r in records if r.get("kind") == "end" and str(r.get("stopped_by")).startswith("asha@")]

    results, journal, before_kill = kill_local_sweep(tmp_path, write_spec, {
        "name": "prunekill", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 8, "hidden": [32]},
        "search_space": {"lr": {"loguniform": [1e-4, 1e-1]}},
        "search": {"algorithm": "optuna", "num_samples": 12},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
    }, until=pruned_ends)
    victim = pruned_ends(before_kill)[0]
    # The state a kill after the study's tell and before the journal's end leaves: the end is not written.
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if not (
        '"kind": "end"' in line and json.loads(line)["trial_id"] == victim["trial_id"])))
    trained = max(r["epoch"] for r in before_kill if r.get("kind") == "epoch" and r["trial_id"] == victim["trial_id"])

    resume(tmp_path, results, "prunekill")
    frame = read_results(str(results / "prunekill"))
    ends = trial_ends(frame).set_index("trial_id")
    assert len(ends) == 12
    assert ends.loc[victim["trial_id"], "status"] == "stopped_early"
    assert ends.loc[victim["trial_id"], "stopped_by"] == victim["stopped_by"]
    assert frame[frame["trial_id"] == victim["trial_id"]]["epoch"].max() == trained  # not trained on
    study = search_study(results, "prunekill")
    assert len(study.trials) == 12 and {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}


def test_a_trial_whose_last_epoch_was_journaled_but_not_its_end_is_ended_from_the_journal(tmp_path, write_spec):
    """A kill after the journal has a trial's last epoch and before its end (and the study's tell) must not run it
    again: its end comes from that epoch, and the study gets its final value."""
    from regsweep._results import read_results

    def completed(records):
        return [r for r in records if r.get("kind") == "end" and r.get("status") == "completed"]

    results, journal, before_kill = kill_local_sweep(tmp_path, write_spec, {
        "name": "endkill", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 4, "hidden": [32]},
        "search_space": {"lr": {"loguniform": [1e-3, 1e-1]}}, "search": {"algorithm": "optuna", "num_samples": 8},
    }, until=completed)
    victim = completed(before_kill)[0]["trial_id"]
    last_epoch = [r for r in before_kill if r.get("kind") == "epoch" and r["trial_id"] == victim][-1]
    assert last_epoch["epoch"] == 4 and last_epoch["stopped_by"] == "completed"
    # The state a kill right after the last epoch's journal line leaves: neither the end nor the study's tell.
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if not (
        '"kind": "end"' in line and json.loads(line)["trial_id"] == victim)))
    log = results / "endkill" / "optuna-search.log"
    ops = [json.loads(line) for line in log.read_text().splitlines()]
    number = next(op["trial_id"] for op in ops if op.get("user_attr", {}).get("regsweep_trial") == victim)
    told = [op for op in ops if op["op_code"] == 6 and op["trial_id"] == number]
    log.write_text("".join(json.dumps(op) + "\n" for op in ops if op not in told))

    resume(tmp_path, results, "endkill")
    frame = read_results(str(results / "endkill"))
    rows = frame[frame["trial_id"] == victim]
    assert sorted(rows["epoch"]) == [1, 2, 3, 4]  # not trained again
    ends = [r for r in read_journal(journal) if r.get("kind") == "end" and r["trial_id"] == victim]
    assert len(ends) == 1 and ends[0]["status"] == "completed" and ends[0]["stopped_by"] == "completed"
    summary = {key: last_epoch[key] for key in SUMMARY_KEYS if key in last_epoch}
    assert "best_val_acc" in summary and {key: ends[0].get(key) for key in summary} == summary
    study = search_study(results, "endkill")
    assert len(study.trials) == 8 and {t.state.name for t in study.trials} == {"COMPLETE"}
    assert study.trials[number].value == last_epoch["val_acc"]


def test_a_trial_asked_for_but_not_named_when_the_driver_died_becomes_the_next_new_trial(tmp_path, write_spec):
    """A kill between the study's ask and naming the trial leaves a RUNNING trial that never ran: the resume runs
    it as its next new trial, so the study holds num_samples trials and no FAIL."""
    results, journal, _ = kill_local_sweep(tmp_path, write_spec, {
        "name": "askkill", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 3, "hidden": [32]},
        "search_space": {"lr": {"loguniform": [1e-3, 1e-1]}}, "search": {"algorithm": "optuna", "num_samples": 6},
    }, until=lambda records: any(r.get("kind") == "end" for r in records))
    asked = search_study(results, "askkill").ask()  # the state such a kill leaves

    resume(tmp_path, results, "askkill")
    study = search_study(results, "askkill")
    assert len(study.trials) == 6 and {t.state.name for t in study.trials} == {"COMPLETE"}
    assert "regsweep_trial" in study.trials[asked.number].user_attrs
    ends = [r for r in read_journal(journal) if r.get("kind") == "end"]
    assert sorted(r["trial_id"] for r in ends) == [f"search_{i:05d}" for i in range(6)]

