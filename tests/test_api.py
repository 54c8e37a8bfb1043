"""regsweep's Python API: the names in `regsweep/__init__`, as its docstring uses them."""

import subprocess
import sys

import pytest

import regsweep


def test_importing_regsweep_or_trainables_loads_nothing_heavy():
    """Each public name loads its module on first use; the CLI starts its workers before torch is imported."""
    code = ("import sys, regsweep, trainables; "
            "heavy = {'torch', 'ray', 'pandas', 'numpy', 'pydantic', 'mlflow', 'optuna'}; "
            "loaded = sorted({name.split('.')[0] for name in sys.modules} & heavy); "
            "assert not loaded, f'imported {loaded}'; "
            "print(len(regsweep.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(regsweep.__all__)


def test_every_public_name_resolves_and_unknown_ones_raise():
    for name in regsweep.__all__:
        assert getattr(regsweep, name) is not None, name
    assert set(regsweep.__all__) <= set(dir(regsweep))
    with pytest.raises(AttributeError, match="no attribute 'start_swep'"):
        regsweep.start_swep


def test_the_docstring_example_runs_a_sweep_and_ranks_it(tmp_path, write_spec, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec({
        "name": "apisweep", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 2, "hidden": [16]},
        "search_space": {"dropout": {"grid": [0.0, 0.5]}}, "search": {"algorithm": "grid"}, "seeds": 2,
        "resources": {"executor": "local"},
    })
    with pytest.raises(regsweep.SpecError, match="epochs"):
        regsweep.load_sweep(spec, {"epochs": -1})
    sweep = regsweep.load_sweep(spec, {"epochs": 3})
    assert isinstance(sweep, regsweep.Sweep)
    frame = regsweep.start_sweep(sweep, fresh=True, mlflow=False)
    assert len(frame) == 4 * 3 and set(frame["epoch"]) == {1, 2, 3}  # the override reached every trial
    assert (tmp_path / "results" / "apisweep" / "best_model.pt").is_file()  # written without MLflow too
    board = regsweep.build_leaderboard(frame, sweep.spec.metric, sweep.spec.mode, "apisweep")
    assert isinstance(board, regsweep.Leaderboard) and len(board.top) == 2 and set(board.top["n"]) == {2}
    assert "| # | dropout |" in regsweep.render_markdown(board)
    assert regsweep.read_results(str(tmp_path / "results" / "apisweep")).shape == frame.shape
    assert [(row["name"], row["status"], row["trials"]) for row in regsweep.list_sweeps()] == [
        ("apisweep", "finished", 4)]
    with pytest.raises(regsweep.SweepStateError, match="already exists"):
        regsweep.start_sweep(sweep)
    resumed_sweep, resumed = regsweep.resume_sweep("apisweep")  # finished: nothing reruns
    assert resumed_sweep.spec.name == "apisweep" and len(resumed) == len(frame)
    # --fresh over it: the old folder goes to the trash, which no listing shows; nothing of it is in the new one.
    (tmp_path / "results" / "apisweep" / "left-by-the-first-run").write_text("old")
    again = regsweep.start_sweep(regsweep.load_sweep(spec, {"epochs": 2}), fresh=True, mlflow=False)
    assert set(again["epoch"]) == {1, 2}
    assert not (tmp_path / "results" / "apisweep" / "left-by-the-first-run").exists()
    assert [(row["name"], row["trials"]) for row in regsweep.list_sweeps()] == [("apisweep", 4)]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [".regsweep-trash~", "apisweep"]
