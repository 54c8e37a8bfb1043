"""Integration: real sweeps on a real local Ray (2 CPUs) with digits."""

import os
import shutil
import subprocess
import sys

import pytest
from helpers.sweeps import trial_ends

from regsweep._results import read_results
from regsweep._state import SweepStateError, list_sweeps
from regsweep._sweep import start_sweep
from regsweep._validate import load_sweep

pytestmark = pytest.mark.ray


def run(spec_path, tmp_path, executor="ray", **kwargs):
    sweep = load_sweep(spec_path, {"resources.executor": executor})
    frame = start_sweep(sweep, str(tmp_path / "results"), **kwargs)
    return sweep, frame


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_grid_sweep_runs_every_point_and_seed(ray_local, tmp_path, write_spec, executor):
    spec = write_spec({
        "name": "grid", "trainable": "cnn", "dataset": "digits",
        "fixed": {"epochs": 2, "filters": 8, "fc_units": [32]},
        "search_space": {"dropout": {"grid": [0.0, 0.4]}, "norm": {"grid": ["batch", "none"]}},
        "search": {"algorithm": "grid"}, "seeds": 2,
    })
    _, frame = run(spec, tmp_path, executor)
    ends = trial_ends(frame)
    assert len(ends) == 8 and set(ends["status"]) == {"completed"}
    combos = set(zip(ends["config/dropout"], ends["config/norm"], ends["seed"]))
    assert combos == {(d, n, s) for d in (0.0, 0.4) for n in ("batch", "none") for s in (0, 1)}
    # Replicates share a config_id; different configs do not.
    assert ends.groupby("config_id")["seed"].nunique().tolist() == [2, 2, 2, 2]
    assert sorted(frame.groupby("trial_id")["epoch"].apply(list).tolist()) == [[1, 2]] * 8
    on_disk = read_results(str(tmp_path / "results" / "grid"))
    assert len(on_disk) == 16 and {"val_acc", "train_loss", "gap", "params", "status", "seed"} <= set(on_disk)
    assert list_sweeps(str(tmp_path / "results"))[0]["status"] == "finished"


@pytest.mark.parametrize("executor, budget, epochs", [("ray", 25, 400), ("local", 10, 200)])
def test_the_time_budget_stops_running_trials_as_stopped_early_and_starts_no_more(ray_local, tmp_path, write_spec,
                                                                                  executor, budget, epochs):
    """Under Ray, Tune stops the trials running at the budget without reporting their end; the journal
    still gets it. Budgets leave room for a busy machine (`make test` runs other tests beside this one): the local
    workers' second trial started after 3 s under load, and Ray's actors took 5-8 s to start on a slow day and
    over 10 s with a second pytest worker busy. A trial takes `epochs` x 0.1 s, well past the budget."""
    spec = write_spec({
        "name": "budget", "trainable": "helpers.user_trainables:slow_epochs",
        "fixed": {"epochs": epochs, "sleep": 0.1},
        "search_space": {"x": {"grid": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}},
        "search": {"algorithm": "grid"}, "resources": {"time_budget_s": budget},
    })
    _, frame = run(spec, tmp_path, executor, mlflow=False)
    ends = trial_ends(frame)
    assert len(ends) == 2, ends  # two CPUs; trials still pending at the budget never start
    assert set(ends["stopped_by"]) == {"time_budget"} and set(ends["status"]) == {"stopped_early"}
    assert ends["epoch"].between(1 if executor == "ray" else 5, epochs - 1).all()
    assert list_sweeps(str(tmp_path / "results"))[0]["status"] == "finished"


def test_trials_the_local_ray_cannot_place_fail_before_anything_is_written(ray_local, tmp_path, write_spec,
                                                                           monkeypatch):
    """Tune would wait forever for a GPU this machine lacks; the sweep stops with the key instead."""
    from mlflow.tracking import MlflowClient

    from regsweep._spec import SpecError

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = write_spec({
        "name": "nogpu", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 1},
        "search_space": {"dropout": {"grid": [0.0]}}, "search": {"algorithm": "grid"},
        "resources": {"cpu": 3, "gpu": 0.25},
    })
    with pytest.raises(SpecError) as caught:
        run(spec, tmp_path)
    message = str(caught.value)
    assert "resources.gpu: given 0.25" in message and "0 GPUs" in message
    assert "resources.cpu: given 3" in message and "2 CPUs" in message and str(spec) in message
    assert not (tmp_path / "results" / "nogpu").exists()
    assert MlflowClient().get_experiment_by_name("nogpu") is None


def test_trials_without_a_gpu_from_ray_see_no_gpu(tmp_path, write_spec):
    """Ray leaves every GPU visible to a trial that asked for none unless told otherwise; the local Ray
    regsweep starts is told, so `device: auto` cannot train on a GPU the trial was not given.
    Also: without MLflow the driver never imports it (Tune's usage stats would, 1.5 s), and Ray still records
    which callbacks the run used."""
    spec = write_spec({
        "name": "gpus", "trainable": "helpers.user_trainables:reports_visible_gpus",
        "search_space": {"x": {"grid": [1, 2]}}, "resources": {"gpu": 0},
    })
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO")}
    code = ("import sys\nfrom regsweep.cli import main\n"
            f"code = main(['run', {str(spec)!r}, '--no-mlflow', '--results', {str(tmp_path / 'results')!r}])\n"
            "from ray._common.usage import usage_lib\n"
            "print('mlflow imported:', 'mlflow' in sys.modules)\n"
            "print('callbacks tag:', usage_lib._recorded_extra_usage_tags.get('air_callbacks'))\nsys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    frame = read_results(str(tmp_path / "results" / "gpus"))
    assert frame["visible_gpus"].tolist() == ["", ""]
    assert "mlflow imported: False" in done.stdout
    assert 'callbacks tag: {"CustomCallback": 2}' in done.stdout


@pytest.mark.parametrize("every, kept", [(None, [(0, 3)]), (0, [(1, 2), (2, 3)])], ids=["default", "every-epoch"])
def test_trial_checkpoints_follow_checkpoint_every_s(ray_local, tmp_path, write_spec, every, kept):
    """Short epochs save only the last one by default; checkpoint_every_s: 0 saves each epoch (Tune
    keeps the newest two)."""
    import torch

    resources = {} if every is None else {"checkpoint_every_s": every}
    spec = write_spec({
        "name": "ckpt", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 3, "hidden": [16]},
        "search_space": {"dropout": {"grid": [0.0, 0.3]}}, "search": {"algorithm": "grid"},
        "resources": resources,
    })
    _, frame = run(spec, tmp_path)
    assert set(trial_ends(frame)["status"]) == {"completed"}
    for trial_id in frame["trial_id"].unique():
        folders = sorted((tmp_path / "results" / "ckpt" / "search" / trial_id).glob("checkpoint_*"))
        saved = [(int(f.name.split("_")[1]), torch.load(f / "trial.pt", weights_only=False)["epoch"]) for f in folders]
        assert saved == kept


def test_optuna_asha_stops_trials_and_confirms_top_k(ray_local, tmp_path, write_spec):
    spec = write_spec({
        "name": "tpe", "trainable": "mlp", "dataset": "digits",
        "fixed": {"epochs": 6, "hidden": [32]},
        "search_space": {"lr": {"loguniform": [1.0e-4, 3.0e-2]}, "dropout": {"uniform": [0.0, 0.5]}},
        "search": {"algorithm": "optuna", "num_samples": 10, "seed": 1, "max_concurrent": 2, "confirm_top_k": 2},
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "seeds": 2,
    })
    _, frame = run(spec, tmp_path)
    search = trial_ends(frame[frame["stage"] == "search"])
    assert len(search) == 10 and set(search["seed"]) == {0}
    stopped = search[search["status"] == "stopped_early"]
    assert len(stopped) >= 1 and (stopped["epoch"] < 6).all()
    assert stopped["stopped_by"].str.startswith("asha@").all()
    confirm = trial_ends(frame[frame["stage"] == "confirm"])
    assert len(confirm) == 4 and set(confirm["status"]) == {"completed"} and (confirm["epoch"] == 6).all()
    assert confirm.groupby("config_id")["seed"].apply(sorted).tolist() == [[0, 1], [0, 1]]
    # The confirmed configurations are the search's best full-budget ones.
    full = search[search["epoch"] == 6].sort_values("val_acc", ascending=False)
    assert set(confirm["config_id"]) == set(full["config_id"].head(2))


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_random_search_runs_its_seeded_draws_for_every_grid_point(ray_local, tmp_path, write_spec, executor):
    from regsweep._space import random_points

    spec = write_spec({
        "name": "rand", "trainable": "helpers.user_trainables:slow_epochs", "fixed": {"epochs": 1, "sleep": 0.0},
        "search_space": {"x": {"uniform": [0.0, 1.0]}, "g": {"grid": [1, 2]}},
        "search": {"algorithm": "random", "num_samples": 3, "seed": 7},
    })
    sweep, frame = run(spec, tmp_path, executor, mlflow=False)
    ends = trial_ends(frame)
    ran = sorted(zip(ends["config/x"], ends["config/g"]))
    assert ran == sorted((p["x"], p["g"]) for p in random_points(sweep.space, 3, seed=7))
    assert len(ran) == 6 and len({x for x, _ in ran}) == 3 and set(ends["status"]) == {"completed"}


def test_conditional_parameter_only_where_condition_holds(ray_local, tmp_path, write_spec):
    spec = write_spec({
        "name": "cond", "trainable": "cnn", "dataset": "digits", "fixed": {"epochs": 1, "filters": 8},
        "search_space": {"norm": {"choice": ["batch", "group"]},
                         "norm_groups": {"choice": [2, 4], "when": {"norm": "group"}}},
        "search": {"algorithm": "optuna", "num_samples": 6, "seed": 3},
    })
    _, frame = run(spec, tmp_path)
    ends = trial_ends(frame)
    assert len(ends) == 6 and {"batch", "group"} == set(ends["config/norm"])
    assert ends.loc[ends["config/norm"] == "batch", "config/norm_groups"].isna().all()
    assert ends.loc[ends["config/norm"] == "group", "config/norm_groups"].isin([2, 4]).all()


def test_crashing_trial_is_recorded_and_others_finish(ray_local, tmp_path, write_spec):
    spec = write_spec({
        "name": "crash", "trainable": "helpers.user_trainables:crashes_on_boom",
        "fixed": {"epochs": 2},
        "search_space": {"mode": {"grid": ["fine", "boom", "also_fine"]}},
        "resources": {"max_failures": 0},
    })
    _, frame = run(spec, tmp_path)
    ends = trial_ends(frame).set_index("config/mode")
    assert ends.loc["boom", "status"] == "error"
    assert "the user's trainable exploded at epoch 2" in ends.loc["boom", "error"]
    assert ends.loc["fine", "status"] == ends.loc["also_fine", "status"] == "completed"
    assert ends.loc["fine", "epoch"] == 2


def test_diverging_trial_is_recorded_as_diverged(ray_local, tmp_path, write_spec):
    spec = write_spec({
        "name": "nan", "trainable": "mlp", "dataset": "digits",
        "fixed": {"epochs": 3, "optimizer": "sgd", "momentum": 0.0, "lr": 10.0},
        "search_space": {"l2": {"grid": [0.0, 1.0]}},
    })
    _, frame = run(spec, tmp_path)
    ends = trial_ends(frame).set_index("config/l2")
    assert ends.loc[1.0, "status"] == "diverged" and ends.loc[1.0, "stopped_by"] == "diverged"
    assert ends.loc[0.0, "status"] in ("completed", "diverged")
    assert ends.loc[1.0, "diverged_epoch"] == 1


def test_smoke_make_target_runs_offline(tmp_path):
    import pathlib

    root = pathlib.Path(__file__).parent.parent
    done = subprocess.run(["make", "-s", "sweep-dropout", "SMOKE=1", f"RESULTS={tmp_path}"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sweep dropout-smoke: 18 trials completed 18" in done.stdout
    assert "Traceback" not in done.stderr and "Trial status" not in done.stdout
    frame = read_results(str(tmp_path / "dropout-smoke"))
    # 53,194 parameters is this CNN on 8x8 digits; on 28x28 Fashion-MNIST its head alone is larger.
    assert set(frame["params"]) == {53194}
    assert frame["epoch"].max() == 3 and frame["trial_id"].nunique() == 18
    # Written under Ray by the sweep's helper worker (its driver imports no torch).
    import torch

    saved = torch.load(tmp_path / "dropout-smoke" / "best_model.pt", weights_only=False)
    ends = frame.sort_values("epoch").groupby("trial_id").tail(1)
    assert saved["trainable"] == "cnn" and saved["val_acc"] in set(ends["val_acc"])
    assert saved["val_acc"] >= ends["val_acc"].median() and saved["config"]["dataset"] == "digits"


def test_a_storage_uri_pyarrow_cannot_open_is_one_error_before_the_sweep_folder_is_touched(ray_local, tmp_path,
                                                                                         write_spec):
    from regsweep._spec import SpecError

    spec = write_spec({
        "name": "stored", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 1, "hidden": [16]},
        "search_space": {"dropout": {"grid": [0.0, 0.2]}}, "search": {"algorithm": "grid"},
    })
    earlier = tmp_path / "results" / "stored" / "journal.jsonl"  # an earlier run's, which --fresh would replace
    earlier.parent.mkdir(parents=True)
    earlier.write_text("kept\n")
    with pytest.raises(SpecError, match=r"resources\.storage: given 'zz://bucket/stored'; pyarrow\.fs cannot open it "
                                        r"\(Unrecognized filesystem type in URI"):
        start_sweep(load_sweep(spec), str(tmp_path / "results"), storage="zz://bucket", fresh=True, mlflow=False)
    assert earlier.read_text() == "kept\n"


def test_storage_uri_and_overrides(ray_local, tmp_path, write_spec):
    spec = write_spec({
        "name": "stored", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 3, "hidden": [16]},
        "search_space": {"dropout": {"grid": [0.0, 0.2]}}, "search": {"algorithm": "grid"},
    })
    # A spec key by its dotted path, a trainable key straight into `fixed`.
    sweep = load_sweep(spec, {"seeds": 2, "epochs": 2, "search.max_concurrent": 1})
    assert sweep.spec.seeds == 2 and sweep.epochs == 2 and sweep.spec.search.max_concurrent == 1
    storage = (tmp_path / "bucket").as_uri()  # file://, through pyarrow.fs like s3:// would be
    frame = start_sweep(sweep, str(tmp_path / "results"), storage=storage)
    assert frame["trial_id"].nunique() == 4 and frame["epoch"].max() == 2
    assert (tmp_path / "bucket" / "stored" / "results.parquet").exists()
    assert (tmp_path / "bucket" / "stored" / "search").is_dir()
    assert len(read_results(f"{storage}/stored")) == 8
    assert (tmp_path / "results" / "stored" / "journal.jsonl").exists()

    # The results folder deleted, the storage still holds the sweep: Tune's state left there is what a resume
    # would restore if a new run were killed before Tune's first snapshot. Refused until --fresh replaces it.
    shutil.rmtree(tmp_path / "results" / "stored")
    with pytest.raises(SweepStateError, match=r"/bucket/stored already holds a sweep named stored .*use --fresh"):
        start_sweep(sweep, str(tmp_path / "results"), storage=storage, mlflow=False)
    assert len(read_results(f"{storage}/stored")) == 8 and not (tmp_path / "results" / "stored").exists()
    search = tmp_path / "bucket" / "stored" / "search"
    earlier_trials = {p.name for p in search.iterdir() if p.is_dir()}
    start_sweep(load_sweep(spec, {"epochs": 1}), str(tmp_path / "results"), storage=storage, fresh=True, mlflow=False)
    trials = {p.name for p in search.iterdir() if p.is_dir()}
    assert len(trials) == 2 and not trials & earlier_trials
    assert len(read_results(f"{storage}/stored")) == 2
