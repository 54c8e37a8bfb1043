"""`regsweep validate` and the start of `regsweep run`: every error class, reported before anything starts."""

import subprocess
import sys

import pytest
import yaml

import trainables

from regsweep._spec import SpecError
from regsweep._validate import load_sweep

BASE = {
    "name": "v", "trainable": "cnn", "dataset": "digits", "fixed": {"epochs": 2},
    "search_space": {"dropout": {"grid": [0.0, 0.3]}}, "search": {"algorithm": "grid"},
}


def problems(write_spec, **changes):
    spec = {**BASE, **changes}
    path = write_spec({k: v for k, v in spec.items() if v is not None})
    with pytest.raises(SpecError) as info:
        load_sweep(path)
    return [str(p) for p in info.value.problems], str(path)


def test_good_spec_validates(write_spec):
    sweep = load_sweep(write_spec(BASE))
    assert sweep.epochs == 2 and list(sweep.space) == ["dropout"]


def test_unknown_key_with_did_you_mean(write_spec):
    found, path = problems(write_spec, seeeds=3)
    assert found == [f"{path}: seeeds: given 'seeeds'; unknown key (did you mean 'seeds'?); allowed: "
                     "name, hypothesis, trainable, dataset, fixed, search_space, search, scheduler, seeds, metric, "
                     "mode, resources, tracking_uri, claims"]


def test_unknown_nested_key(write_spec):
    found, _ = problems(write_spec, search={"algorithm": "grid", "num_sample": 3})
    assert "search.num_sample: given 'num_sample'; unknown key (did you mean 'num_samples'?)" in found[0]


def test_wrong_type(write_spec):
    found, _ = problems(write_spec, seeds="three")
    assert "seeds: given 'three'; input should be a valid integer" in found[0]


def test_out_of_range_value(write_spec):
    found, _ = problems(write_spec, fixed={"epochs": 2, "lr": -0.1})
    assert any("fixed.lr: given -0.1; input should be greater than 0" in f for f in found)


def test_negative_checkpoint_interval(write_spec):
    found, _ = problems(write_spec, resources={"checkpoint_every_s": -1})
    assert any("resources.checkpoint_every_s: given -1; input should be greater than or equal to 0" in f
               for f in found)


def test_cuda_device_without_a_gpu_from_ray(write_spec):
    found, path = problems(write_spec, fixed={"epochs": 2, "device": "cuda"})
    assert found == [f"{path}: fixed.device: given 'cuda'; trials get a GPU only when they ask Ray for one: set "
                     "resources.gpu (1, or 0.25 to share a GPU between four trials), or use device: auto (the GPU "
                     "when given one)"]
    found, _ = problems(write_spec, search_space={"device": {"grid": ["cpu", "cuda"]}})
    assert found[0].split(": ")[1] == "search_space.device"
    assert load_sweep(write_spec({**BASE, "fixed": {"epochs": 2, "device": "cuda"}, "resources": {"gpu": 0.25}}))


def test_unknown_trainable(write_spec):
    found, _ = problems(write_spec, trainable="cnnn")
    assert any("trainable: given 'cnnn'; allowed: cnn, mlp, resmlp, convlstm or package.module:function "
               "(did you mean 'cnn'?)" in f for f in found)


def test_user_trainable_that_cannot_be_imported(write_spec):
    found, _ = problems(write_spec, trainable="no_such_package.mod:fn")
    assert "cannot import 'no_such_package.mod'" in found[0]


def test_unknown_dataset(write_spec):
    found, _ = problems(write_spec, dataset="fashion-mnist")
    assert any("dataset: given 'fashion-mnist'; allowed: digits, mnist_5k, fashion_mnist, mnist "
               "(did you mean 'fashion_mnist'?)" in f for f in found)


def test_unknown_norm_in_search_space(write_spec):
    found, _ = problems(write_spec, search_space={"norm": {"grid": ["batch", "instnce"]}})
    assert any("search_space.norm: given 'instnce'; allowed: none, batch, instance, layer, group "
               "(did you mean 'instance'?)" in f for f in found)


def test_unknown_distribution(write_spec):
    found, _ = problems(write_spec, search_space={"dropout": {"unifrom": [0.0, 0.5]}})
    assert any("search_space.dropout.unifrom: given 'unifrom'; unknown key (did you mean 'uniform'?)" in f
               for f in found)


def test_bad_range(write_spec):
    found, _ = problems(write_spec, search={"algorithm": "random"}, search_space={"dropout": {"uniform": [0.5, 0.1]}})
    assert "uniform needs [low, high] with low < high, given [0.5, 0.1]" in found[0]


def test_quniform_bounds_must_be_multiples_of_q(write_spec):
    """Ray Tune's quantized domain raised on such bounds only once the sweep had started."""
    found, _ = problems(write_spec, search={"algorithm": "random"},
                        search_space={"dropout": {"quniform": [0.0, 0.5, 0.2]}})
    assert "search_space.dropout" in found[0]
    assert "quniform needs low and high that are multiples of q, given [0.0, 0.5, 0.2]" in found[0]


def test_impossible_model_config(write_spec):
    found, _ = problems(write_spec, search_space={"layers": {"grid": [2, 3, 4]}})
    assert found == [f"{found[0].split(':')[0]}: search_space.layers: given 4; "
                     "pooling after block 4 of 4 would shrink the 8x8 input below 1x1; use fewer layers, a larger "
                     "pool_every, or pooling: false"]


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_an_impossible_model_stops_run_before_anything_is_written(tmp_path, write_spec, executor):
    """`regsweep run` builds the models in a worker (the local executor's first; under Ray a helper beside Ray's
    start), so its driver imports no torch; the error and what is left behind are the same as where the driver
    builds them."""
    path = write_spec({**BASE, "search_space": {"layers": {"grid": [2, 4]}}})
    wanted = (f"{path}: search_space.layers: given 4; pooling after block 4 of 4 would shrink the 8x8 input below "
              "1x1; use fewer layers, a larger pool_every, or pooling: false")
    with pytest.raises(SpecError) as caught:  # the API's load_sweep checks the models itself by default
        load_sweep(path, {"resources.executor": executor})
    assert [str(p) for p in caught.value.problems] == [wanted]
    done = subprocess.run([sys.executable, "-c", "import sys; from regsweep.cli import main; rc = main(sys.argv[1:]); "
                           "print('torch imported:', 'torch' in sys.modules); sys.exit(rc)",
                           "run", str(path), "--results", "results", "--executor", executor],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.endswith(f"regsweep: {wanted}\n") and done.stderr.count("regsweep:") == 1
    assert "torch imported: False" in done.stdout
    assert not (tmp_path / "results").exists()
    if (tmp_path / "mlruns" / "mlflow.db").exists():
        # MLflow made its new database while the checks ran: made whole (a half-made one fails to open), and
        # without the sweep's experiment.
        from mlflow.tracking import MlflowClient

        assert MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}").get_experiment_by_name("v") is None


def test_range_bounds_are_checked(write_spec):
    found, _ = problems(write_spec, search={"algorithm": "random"}, search_space={"dropout": {"uniform": [0.0, 1.5]}})
    assert any("search_space.dropout: given 1.5; input should be less than 1" in f for f in found)


def test_optuna_with_grid(write_spec):
    found, _ = problems(write_spec, search={"algorithm": "optuna"})
    assert any("search_space.dropout: given {'grid': [0.0, 0.3]}; optuna cannot run a grid" in f for f in found)


def test_grid_with_continuous_distribution(write_spec):
    found, _ = problems(write_spec, search_space={"dropout": {"uniform": [0.0, 0.3]}})
    assert "grid search runs every point and needs a finite list" in found[0]


def test_condition_on_unknown_parameter(write_spec):
    found, _ = problems(write_spec, search_space={"norm_groups": {"grid": [2], "when": {"nrom": "group"}}})
    assert "search_space.norm_groups.when.nrom: given 'group'; a condition must refer to a parameter" in found[0]


def test_duplicate_key_across_search_space_files(tmp_path, write_spec):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"dropout": {"grid": [0.1]}}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"norm": {"grid": ["batch"]}, "dropout": {"grid": [0.2]}}))
    found, path = problems(write_spec, search_space=[str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")])
    assert found == [f"{path}: dropout: given '{tmp_path / 'b.yaml'}'; duplicate parameter, already defined in "
                     f"{tmp_path / 'a.yaml'}"]


def test_missing_search_space_file(tmp_path, write_spec):
    found, path = problems(write_spec, search_space=["search_spaces/nope.yaml"])
    assert found == [f"{path}: search_space[0]: given 'search_spaces/nope.yaml'; file not found (paths are "
                     "relative to the working directory or the sweep file)"]


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="nope.yaml: given .*; file not found"):
        load_sweep(tmp_path / "nope.yaml")


def test_every_problem_reported_at_once(write_spec):
    found, _ = problems(write_spec, seeds=0, mode="maximum", scheduler={"type": "hyperband"})
    assert len(found) == 3


def test_cli_exits_2_without_traceback_and_creates_nothing(tmp_path, write_spec):
    path = write_spec({**BASE, "dataset": "fashon_mnist", "fixed": {"epochs": 2, "dropuot": 0.1}})
    for command in (["validate", str(path)], ["run", str(path), "--results", str(tmp_path / "results")]):
        done = subprocess.run([sys.executable, "-m", "regsweep", *command], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "(did you mean 'fashion_mnist'?)" in done.stderr
        assert not (tmp_path / "results").exists()


def test_shipped_sweeps_validate():
    import pathlib

    import trainables

    root = pathlib.Path(__file__).parent.parent
    for spec in sorted((root / "sweeps").glob("*.yaml")):
        for smoke in (False, True):
            sweep = load_sweep(spec, smoke=smoke)
            assert sweep.spec.seeds >= 1
            if smoke:
                offline = trainables.TRAINABLES[sweep.spec.trainable].smoke_dataset
                assert sweep.fixed["dataset"] == offline and sweep.epochs <= 3


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_offline_dataset_fails_once_before_ray_starts(tmp_path, write_spec, executor):
    """Under the local executor the data check runs in a worker; its error reaches the CLI the same way."""
    path = write_spec({**BASE, "dataset": "fashion_mnist"})
    done = subprocess.run([sys.executable, "-c",
                           "import sys; from regsweep.cli import main; rc = main(sys.argv[1:]); "
                           "assert 'ray' not in sys.modules or not __import__('ray').is_initialized(); sys.exit(rc)",
                           "run", str(path), "--results", str(tmp_path / "results"), "--executor", executor],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("could not download train-images-idx3-ubyte.gz") == 1
    assert "dataset=digits" in done.stderr
    assert not (tmp_path / "results").exists()


# The driver's data check, in a fresh process, for a sweep of each task: its data loads and its model builds for that
# data, and neither an optimiser (torch._dynamo, 1.5-2.7 s to import) nor a GPU context is made for it.
DATA_CHECK = """
import sys
import torch
from regsweep._preflight import preflight_data
from regsweep._validate import load_sweep
for path in sys.argv[1:]:
    try:
        preflight_data(load_sweep(path))
    except ValueError as exc:
        print("refused:", exc)
print("imported:", "torch._dynamo" in sys.modules, torch.cuda.is_initialized())
"""


def test_the_data_check_loads_each_tasks_data_and_model_without_an_optimiser(write_spec):
    fixed = {"cnn": {}, "mlp": {}, "resmlp": {"group_by": ["sex"]}, "convlstm": {}}
    paths = [str(write_spec({"name": name, "trainable": name, "dataset": trainables.get_trainable(name).smoke_dataset,
                             "fixed": {"epochs": 1, **extra}, "search_space": {"lr": {"grid": [0.001]}}},
                            f"{name}.yaml")) for name, extra in fixed.items()]
    # A check of the task's own on its data: a group weight for a group the table does not have.
    paths.append(str(write_spec({"name": "weights", "trainable": "resmlp", "dataset": "diabetes",
                                 "fixed": {"epochs": 1, "group_by": ["sex"], "group_weights": {"sex9": 2.0}},
                                 "search_space": {"lr": {"grid": [0.001]}}}, "weights.yaml")))
    done = subprocess.run([sys.executable, "-c", DATA_CHECK, *paths], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused:") == 1 and "refused: group_weights names groups ['sex9']" in done.stdout
    assert "imported: False False" in done.stdout


def test_validate_prints_what_the_sweep_runs(tmp_path, write_spec, capsys):
    from regsweep.cli import main

    path = write_spec({**BASE, "seeds": 1, "fixed": {"epochs": 1}, "search_space": {"dropout": {"grid": [0.1, 0.2]}}})
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok (grid, 1 parameter, 1 seed, 1 epoch)"
    assert main(["validate", str(path), "--set", "seeds=3", "--set", "epochs=4"]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok (grid, 1 parameter, 3 seeds, 4 epochs)"


@pytest.mark.parametrize(("name", "allowed"), [
    ("epochs", "the epoch budget is the sweep's (ASHA's max_t, smoke runs and the budget use it)"),
    ("seed", "each trial's seed comes from the sweep's replicates: set `seeds: N` instead"),
])
def test_the_sweeps_own_keys_cannot_be_searched(write_spec, name, allowed):
    """A searched seed was overwritten by the replicate's; searched epochs trained past the smoke cap and
    ASHA's max_t."""
    found, path = problems(write_spec, search_space={"dropout": {"grid": [0.0, 0.3]}, name: {"grid": [1, 2]}})
    assert len(found) == 1 and found[0].startswith(f"{path}: search_space.{name}: given {{'grid': [1, 2]}}; {allowed}")


def test_search_settings_the_algorithm_would_ignore_are_problems(write_spec):
    """Ray Tune's num_samples repeats a grid; here seeds do, and a grid's num_samples was silently ignored."""
    found, path = problems(write_spec, search={"algorithm": "grid", "num_samples": 5, "confirm_top_k": 2})
    assert found == [
        f"{path}: search.num_samples: given 5; grid search runs every point of the grid once per seed (Ray Tune's "
        "num_samples would repeat it): set `seeds: N` for replicates, or use search.algorithm: random or optuna",
        f"{path}: search.confirm_top_k: given 2; grid search runs every seed of every point itself; only "
        "search.algorithm: optuna has a confirm stage"]
    found, _ = problems(write_spec, search={"algorithm": "random", "num_samples": 5, "confirm_top_k": 2},
                        search_space={"dropout": {"uniform": [0.0, 0.3]}})
    assert len(found) == 1 and "search.confirm_top_k: given 2; random search" in found[0]
    # Smoke mode caps num_samples itself, which is no problem of the spec's.
    assert load_sweep(write_spec(BASE), smoke=True).spec.search.algorithm == "grid"
