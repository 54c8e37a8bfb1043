"""The local executor (resources.executor: local): real worker processes, real Optuna, no Ray."""

import json
import os
import subprocess
import sys

import pytest
from helpers.sweeps import search_study, trial_ends
from mlflow.tracking import MlflowClient

from regsweep._results import read_journal, read_results
from regsweep._spec import SpecError
from regsweep._sweep import start_sweep
from regsweep._validate import load_sweep


def run(spec_path, tmp_path, **kwargs):
    sweep = load_sweep(spec_path, {"resources.executor": "local"})
    return sweep, start_sweep(sweep, str(tmp_path / "results"), **kwargs)


def test_trials_run_two_at_once_in_worker_processes_with_checkpoints_and_mlflow_runs(tmp_path, write_spec):
    """What the grid test in test_engine (run under both executors) does not check."""
    spec = write_spec({
        "name": "localgrid", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 3, "hidden": [32]},
        "search_space": {"dropout": {"grid": [0.0, 0.2, 0.4]}}, "search": {"algorithm": "grid"}, "seeds": 2,
    })
    _, frame = run(spec, tmp_path)
    ends = trial_ends(frame)
    assert len(ends) == 6 and set(ends["status"]) == {"completed"} and (ends["epoch"] == 3).all()
    assert ends["node_id"].str.startswith("local:").all() and (ends["device"] == "cpu").all()
    assert ends["val_acc"].min() > 0.1 and ends["best_val_acc"].notna().all() and ends["params"].gt(0).all()
    # Each trial's last checkpoint is where the best-model export looks for it.
    folder = tmp_path / "results" / "localgrid"
    assert len(list(folder.glob("search/*/checkpoint_last/trial.pt"))) == 6
    assert (folder / "best_model.pt").exists()
    # Two trials at once: their attempts overlap in time.
    spans = sorted(zip(ends["attempt_started_at"], ends["reported_at"]))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("localgrid")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(c.data.tags["trial_id"] for c in children) == sorted(ends["trial_id"])
    assert all(c.info.status == "FINISHED" and "val_acc" in c.data.metrics for c in children)
    assert all(c.data.params["dropout"] in ("0.0", "0.2", "0.4") for c in children)


def test_optuna_with_asha_prunes_at_rungs_then_confirms_the_top_configs_with_every_seed(tmp_path, write_spec):
    spec = write_spec({
        "name": "localasha", "trainable": "mlp", "dataset": "digits",
        "fixed": {"epochs": 9, "hidden": [32]},
        "search_space": {"lr": {"loguniform": [1.0e-5, 1.0e-1]}},
        "search": {"algorithm": "optuna", "num_samples": 12, "confirm_top_k": 2},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 3},
        "seeds": 2,
    })
    _, frame = run(spec, tmp_path, mlflow=False)
    search = trial_ends(frame[frame["stage"] == "search"])
    assert len(search) == 12 and search["seed"].eq(0).all()
    pruned = search[search["status"] == "stopped_early"]
    assert len(pruned) >= 4, search[["status", "stopped_by", "epoch"]]
    # Successive halving stops trials only at its rungs: epochs 1, 3 and 9 with grace 1 and factor 3.
    assert set(pruned["stopped_by"]) <= {"asha@1", "asha@3"}
    assert all(int(s.split("@")[1]) == e for s, e in zip(pruned["stopped_by"], pruned["epoch"]))
    confirm = trial_ends(frame[frame["stage"] == "confirm"])
    assert len(confirm) == 4 and set(confirm["status"]) == {"completed"} and (confirm["epoch"] == 9).all()
    assert sorted(confirm["seed"]) == [0, 0, 1, 1] and confirm["config_id"].nunique() == 2
    # TPE's history is Optuna's own journal file, so a resumed sweep keeps it.
    study = search_study(tmp_path / "results", "localasha")
    states = [t.state.name for t in study.trials]
    assert len(states) == 12 and states.count("PRUNED") == len(pruned) and "RUNNING" not in states


def test_failed_trials_are_retried_from_their_checkpoint_then_recorded_with_their_error(tmp_path, write_spec):
    counters = tmp_path / "counters"
    counters.mkdir()
    spec = write_spec({
        "name": "localfail", "trainable": "helpers.user_trainables:fails_then_counts",
        "fixed": {"counter_dir": str(counters)},
        "search_space": {"fail_times": {"grid": [1, 5]}, "mode": {"grid": ["raise", "die"]}},
        "search": {"algorithm": "grid"}, "resources": {"max_failures": 1},
    })
    _, frame = run(spec, tmp_path, mlflow=False)
    ends = trial_ends(frame).set_index(["config/mode", "config/fail_times"])
    # max_failures: 1 is two attempts in all: a trial that fails once completes on its second.
    for mode in ("raise", "die"):
        assert ends.loc[(mode, 1), "status"] == "completed" and ends.loc[(mode, 1), "attempts"] == 2
        assert (counters / f"{mode}-5").read_text() == "2"
        assert ends.loc[(mode, 5), "status"] == "error"
    assert ends.loc[("raise", 5), "error"] == "ValueError: attempt 2 failed on purpose"
    assert ends.loc[("die", 5), "error"] == "WorkerDied: the trial's process ended (exit code 3)"
    errors = {p.read_text() for p in (tmp_path / "results" / "localfail" / "search").glob("*/error.txt")}
    assert len(errors) == 2 and any("Traceback" in e and "attempt 2 failed" in e for e in errors)


@pytest.mark.parametrize("change, key, allowed", [
    ({"resources": {"storage": "s3://bucket/sweeps"}}, "resources.storage", "local folder"),
    ({"resources": {"cpu": 64}}, "resources", "too few for one trial"),
    ({"scheduler": {"type": "asha", "reduction_factor": 2.5}}, "scheduler.reduction_factor", "whole number"),
])
def test_what_the_local_executor_cannot_do_is_refused_before_anything_is_written(tmp_path, write_spec, change, key,
                                                                                 allowed):
    spec = write_spec({
        "name": "localbad", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 1},
        "search_space": {"dropout": {"grid": [0.0]}}, **change,
    })
    with pytest.raises(SpecError) as caught:
        run(spec, tmp_path)
    assert key in str(caught.value) and allowed in str(caught.value) and str(spec) in str(caught.value)
    assert not (tmp_path / "results" / "localbad").exists()


def test_the_cli_runs_a_local_sweep_without_importing_ray_or_torch(tmp_path, write_spec, monkeypatch):
    """Torch is the workers' (1.2 s to import): the driver checks the configs' schema, a worker builds their
    models and writes the best model's file."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    spec = write_spec({
        "name": "localcli", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 2, "hidden": [16]},
        "search_space": {"dropout": {"uniform": [0.0, 0.5]}},
        "search": {"algorithm": "optuna", "num_samples": 4}, "resources": {"executor": "local"},
    })
    code = ("import sys\nfrom regsweep.cli import main\n"
            f"code = main(['run', {str(spec)!r}, '--results', 'results'])\n"
            "print('imported:', sorted({'ray', 'torch'} & set(sys.modules)))\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported: []" in done.stdout and "sweep localcli: 4 trials completed 4" in done.stdout
    folder = tmp_path / "results" / "localcli"
    state = json.loads((folder / "sweep.json").read_text())
    assert state["status"] == "finished" and state["overrides"] == {}
    journal = read_journal(folder / "journal.jsonl")
    assert len([r for r in journal if r["kind"] == "end"]) == 4

    import torch

    import trainables

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    run = client.get_run(client.get_run(state["mlflow_parent_run_id"]).data.tags["best_run_id"])
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == ["model/best_model.pt"]
    ends = trial_ends(read_results(str(folder))).set_index("trial_id")
    best = ends.loc[run.data.tags["trial_id"]]
    assert best["val_acc"] == ends["val_acc"].max()
    saved = torch.load(folder / "best_model.pt", weights_only=False)
    assert saved["trainable"] == "mlp" and saved["epoch"] == 2 and saved["val_acc"] == best["val_acc"]
    assert saved["config"]["dropout"] == best["config/dropout"] and saved["config"]["hidden"] == [16]
    # The weights are the best trial's last checkpoint's, and load into the model its config builds.
    checkpoint = torch.load(folder / "search" / best.name / "checkpoint_last" / "trial.pt", weights_only=False)
    assert saved["state_dict"].keys() == checkpoint["model"].keys()
    assert all(torch.equal(saved["state_dict"][k], v) for k, v in checkpoint["model"].items())
    trainables.get_trainable("mlp").make_trial(saved["config"]).model.load_state_dict(saved["state_dict"])


def test_the_driver_imports_optuna_and_the_leaderboards_statistics_while_the_workers_import_torch(tmp_path,
                                                                                                 write_spec):
    """What the driver needs after the fork server is ready is imported while it imports torch: Optuna, which
    hands out the first trial (0.2-0.4 s to import), and scipy.special, for the leaderboard's intervals after the
    last trial (0.2-0.6 s). Both are in the driver when the first stage starts."""
    spec = write_spec({
        "name": "localwarm", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 1, "hidden": [8]},
        "search_space": {"dropout": {"grid": [0.0, 0.2]}}, "search": {"algorithm": "grid"},
        "resources": {"executor": "local"},
    })
    code = ("import sys\nimport regsweep\nif __name__ == '__main__':\n"
            f"    sweep = regsweep.load_sweep({str(spec)!r})\n"
            "    seen = []\n"
            "    watched = {'scipy.special', 'optuna'}\n"
            "    regsweep.start_sweep(sweep, 'results', mlflow=False,\n"
            "                         on_stage=lambda stage, n: seen.append(sorted(watched & set(sys.modules))))\n"
            "    print('imported at the stage start:', seen)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported at the stage start: [['optuna', 'scipy.special']]" in done.stdout, done.stdout + done.stderr
    assert len(trial_ends(read_results(str(tmp_path / "results" / "localwarm")))) == 2


@pytest.mark.parametrize("cpus, gpus, cpu, gpu, limit, expected", [
    (2, 0, 1, 0, None, ["", ""]),
    (2, 0, 0.5, 0, 3, ["", "", ""]),
    (2, 0, 4, 0, None, []),
    (16, 2, 1, 0.25, None, ["0", "0", "0", "0", "1", "1", "1", "1"]),
    (16, 2, 1, 1, None, ["0", "1"]),
    (16, 4, 2, 2, None, ["0,1", "2,3"]),
    (16, 1, 1, 0.5, 1, ["0"]),
    (16, 0, 1, 1, None, []),
    (3, 1, 1, 0.25, None, ["0", "0", "0"]),
])
def test_slots_pack_trials_onto_the_cpus_and_gpus_they_ask_for(cpus, gpus, cpu, gpu, limit, expected):
    from regsweep._local_slots import plan_slots

    assert plan_slots(cpus, gpus, cpu, gpu, limit) == expected


def test_a_trainable_may_start_processes_of_its_own(tmp_path, write_spec):
    spec = write_spec({
        "name": "localdl", "trainable": "helpers.user_trainables:loads_with_dataloader_workers",
        "search_space": {"x": {"grid": [1, 2]}}, "search": {"algorithm": "grid"},
    })
    _, frame = run(spec, tmp_path, mlflow=False)
    ends = trial_ends(frame)
    assert set(ends["status"]) == {"completed"}, ends["error"].tolist()
    assert (ends["total"] == 4950.0).all()


def test_workers_come_from_a_fork_server_whose_preloaded_objects_are_frozen(tmp_path, write_spec):
    """The fork server freezes what it preloaded (torch, torch._dynamo: about 300,000 objects), so its exit after
    `regsweep run` returns does not walk them (2 s of a core here), nor does a worker's collection. It imported
    them with the collector paused, which is on again in the workers."""
    spec = write_spec({"name": "frozen", "trainable": "helpers.user_trainables:reports_frozen_objects",
                       "search_space": {"x": {"grid": [1, 2]}}, "search": {"algorithm": "grid"}})
    _, frame = run(spec, tmp_path, mlflow=False)
    assert len(frame) == 2 and (frame["frozen"] > 100_000).all(), frame["frozen"].tolist()
    assert (frame["collecting"] == 1.0).all()


def test_the_commands_start_runs_no_collection_and_ends_frozen_with_the_collector_on(tmp_path, write_spec):
    """`regsweep run` (a process of its own: main() without arguments) pauses the garbage collector while it
    starts, MLflow's store opening on its thread included; unpaused, that start ran hundreds of collections, five
    of them full. The first collection after it finds the start's objects frozen."""
    spec = write_spec({
        "name": "paused", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 2, "hidden": [8]},
        "search_space": {"dropout": {"grid": [0.0, 0.2, 0.4]}}, "search": {"algorithm": "grid"},
        "resources": {"executor": "local"},
    })
    code = ("import gc, sys\nif __name__ == '__main__':\n"
            "    from regsweep.cli import main\n"
            "    seen = []\n"
            "    gc.callbacks.append(lambda phase, info: seen.append((info['generation'], gc.get_freeze_count(),\n"
            "                                                        'mlflow' in sys.modules))\n"
            "                        if phase == 'start' else None)\n"
            f"    sys.argv = ['regsweep', 'run', {str(spec)!r}, '--results', 'results']\n"
            "    code = main()\n"
            "    print('collections:', seen)\n"
            "    sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = eval(done.stdout.split("collections: ")[1])
    # Before the pause, parsing the command line may take a young collection or two; none after, until the end.
    before = [generation for generation, frozen, _ in seen if frozen == 0]
    assert len(before) <= 3 and 2 not in before, before
    after = [(frozen, mlflow) for generation, frozen, mlflow in seen if frozen > 0]
    assert after, "the collector is on again once the trials run"
    assert after[0][0] > 100_000 and after[0][1], "MLflow, Optuna and pandas were imported in the start, then frozen"
    assert "sweep paused: 3 trials completed 3" in done.stdout


def test_a_trainable_module_beside_the_sweep_imports_from_a_console_script(tmp_path):
    """`trainable: mytrain:quad` with mytrain.py in the working directory: the `regsweep` console script's
    sys.path starts at its bin folder, not there. The launcher below is such a script, in a folder of its own."""
    work, launcher = tmp_path / "work", tmp_path / "bin" / "regsweep_launcher.py"
    work.mkdir()
    launcher.parent.mkdir()
    launcher.write_text("import sys\nfrom regsweep.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n")
    (work / "mytrain.py").write_text(
        "def quad(config):\n"
        "    for epoch in range(1, config['epochs'] + 1):\n"
        "        yield {'epoch': epoch, 'val_loss': (config['x'] - 0.3) ** 2 + 1.0 / epoch}\n")
    (work / "quad.yaml").write_text(
        "name: quad\ntrainable: mytrain:quad\nfixed: {epochs: 2}\nsearch_space: {x: {grid: [0.1, 0.3]}}\n"
        "search: {algorithm: grid}\nmetric: val_loss\nmode: min\nresources: {executor: local}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(launcher), "run", "quad.yaml", "--no-mlflow"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sweep quad: 2 trials completed 2" in done.stdout
    frame = read_results(str(work / "results" / "quad"))
    best = frame[frame["epoch"] == 2].sort_values("val_loss").iloc[0]
    assert best["config/x"] == 0.3 and best["val_loss"] == 0.5
