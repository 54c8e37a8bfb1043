"""Leaderboard: pure functions of a results table, rendered on a recorded fixed-width Console."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console

from regsweep._leaderboard import build_leaderboard
from regsweep._render import render_csv, render_json, render_markdown, render_rich


def synthetic(configs, seeds=5, epochs=3, rng_seed=0):
    """A results table: configs maps a dropout value to (mean, sd) of the final val_acc."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for index, (dropout, (mean, sd)) in enumerate(configs.items()):
        for seed in range(seeds):
            final = rng.normal(mean, sd)
            for epoch in range(1, epochs + 1):
                rows.append({"stage": "search", "trial_id": f"t{index}_{seed}", "config_id": f"c{index}",
                             "seed": seed, "config/dropout": dropout, "epoch": epoch,
                             "val_acc": final - 0.01 * (epochs - epoch), "gap": 0.02, "params": 1000,
                             "best_epoch": epochs, "status": "completed", "stopped_by": "completed"})
    return pd.DataFrame(rows)


def record(board, width=140):
    console = Console(record=True, width=width, force_terminal=False, color_system=None)
    console.print(render_rich(board))
    return console.export_text()


def test_same_distribution_is_tied():
    board = build_leaderboard(synthetic({0.1: (0.90, 0.01), 0.3: (0.90, 0.01)}), "val_acc", "max", "ties")
    assert list(board.top["best"]) == [True, False] and list(board.top["tied"]) == [False, True]
    factor = board.factors["config/dropout"]
    assert factor["tied"].sum() == 1
    text = record(board)
    assert text.count("tied") >= 2 and "best" in text


def test_clearly_better_configuration_is_alone_at_the_top():
    board = build_leaderboard(synthetic({0.0: (0.80, 0.005), 0.1: (0.97, 0.005), 0.5: (0.85, 0.005)}),
                              "val_acc", "max", "clear")
    top = board.top
    assert top.iloc[0]["config/dropout"] == "0.1" and top.iloc[0]["best"]
    assert not top["tied"].any()
    assert top.iloc[0]["n"] == 5 and top.iloc[0]["low"] < top.iloc[0]["mean"] < top.iloc[0]["high"]
    text = record(board)
    assert "tied" not in text.split("Factor")[0]


def test_minimise_metric_ranks_lowest_first():
    frame = synthetic({0.0: (0.5, 0.01), 0.2: (0.2, 0.01)}).rename(columns={"val_acc": "val_loss"})
    board = build_leaderboard(frame, "val_loss", "min")
    assert board.top.iloc[0]["config/dropout"] == "0.2"


def test_asha_stopped_trials_compared_at_their_rung_only():
    frame = synthetic({0.0: (0.9, 0.01), 0.1: (0.92, 0.01)}, seeds=3, epochs=4)
    stopped = frame["trial_id"].isin(["t0_0", "t0_1"]) & (frame["epoch"] > 2)
    frame = frame[~stopped].copy()
    mask = frame["trial_id"].isin(["t0_0", "t0_1"])
    frame.loc[mask, "status"] = "stopped_early"
    frame.loc[mask, "stopped_by"] = "asha@2"
    frame.loc[mask & (frame["epoch"] == 2), "val_acc"] = 0.99  # would win if mixed with full-budget metrics
    board = build_leaderboard(frame, "val_acc", "max")
    assert board.top.set_index("config/dropout").loc["0", "n"] == 1
    assert board.top.iloc[0]["config/dropout"] == "0.1"
    rung = board.rungs.iloc[0]
    assert rung["epoch"] == 2 and rung["stopped"] == 2 and rung["continued"] == 4
    assert any("compared only at the rung they reached" in line for line in board.footer)
    assert "| 2 | 2 | 0.9900 | 4 | " in render_markdown(board)
    assert any(line.split() == ["│", "2", "│", "2", "│", "0.9900", "│", "4", "│", f"{rung['continued_mean']:.4f}", "│"]
               for line in record(board, width=120).splitlines())


def test_continuous_factor_is_binned():
    configs = {round(d, 3): (0.9 - d * 0.1, 0.01) for d in np.linspace(0, 0.6, 20)}
    board = build_leaderboard(synthetic(configs, seeds=1), "val_acc", "max")
    levels = board.factors["config/dropout"]["value"].tolist()
    assert len(levels) == 4 and all(".." in level for level in levels)


def test_quartile_bins_are_labelled_by_the_values_they_hold():
    # pandas' own first edge lies 0.1% of the range below the smallest value: a dropout below zero
    configs = {round(d, 4): (0.9 - d * 0.1, 0.01) for d in np.linspace(0.0001, 0.5, 20)}
    board = build_leaderboard(synthetic(configs, seeds=1), "val_acc", "max")
    spans = sorted(tuple(float(x) for x in level.split("..")) for level in board.factors["config/dropout"]["value"])
    values = sorted(configs)
    assert spans == [(float(f"{values[i]:.3g}"), float(f"{values[i + 4]:.3g}")) for i in (0, 5, 10, 15)]
    assert "-" not in record(board).split("Factor dropout")[1].split("val_acc:")[0]


def test_the_journals_bars_for_a_binned_factor_run_from_the_lowest_bin_up(tmp_path, capsys):
    from regsweep._plots import _in_order, _tick_style, factor_plot

    configs = {round(d, 4): (0.8 + d * 0.1, 0.01) for d in np.linspace(0.0001, 0.5, 20)}
    board = build_leaderboard(synthetic(configs, seeds=1), "val_acc", "max")
    table, order = board.factors["config/dropout"], board.levels["config/dropout"]
    assert table["value"].iloc[0].startswith("0.395")  # the table ranks: best mean (the highest bin) first
    lows = [float(v.split("..")[0]) for v in _in_order(table, order)["value"]]
    assert lows == sorted(lows) and len(lows) == 4
    categories = pd.DataFrame({"value": ["layer", "extra", "batch", "n/a"]})
    assert list(_in_order(categories, ["batch", "layer", "n/a"])["value"]) == ["batch", "layer", "n/a", "extra"]
    assert _tick_style(table["value"])["rotation"] > 0 and _tick_style(categories["value"]) == {}
    short = build_leaderboard(synthetic({0.1: (0.9, 0.01), 0.3: (0.8, 0.01)}, seeds=2).assign(
        **{"config/dropout": lambda f: f["config/dropout"].map({0.1: "low", 0.3: "high"})}), "val_acc", "max")
    for plotted, levels in ((table, order), (short.factors["config/dropout"], short.levels["config/dropout"])):
        assert factor_plot(plotted, "dropout", "val_acc", tmp_path / "f.png", levels).read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().out == ""  # matplotlib's setp() with no style printed every Text property


def test_pair_grids_list_numbers_by_size_not_as_text():
    cells = [synthetic({lr: (0.9, 0.01)}, seeds=2).assign(**{"config/width": width, "config_id": f"w{width}-{lr}"})
             for width in (64, 128, 256) for lr in (1e-5, 3e-4, 0.002)]
    frame = pd.concat(cells, ignore_index=True).assign(trial_id=lambda f: f["config_id"] + f["trial_id"])
    board = build_leaderboard(frame.rename(columns={"config/dropout": "config/lr"}), "val_acc", "max")
    (a, b, grid), = board.pairs
    by_name = {a: list(grid.index), b: list(grid.columns)}
    assert by_name["width"] == ["64", "128", "256"]  # as text: 128, 256, 64
    assert by_name["lr"] == ["1e-05", "0.0003", "0.002"]  # as text: 0.0003, 0.002, 1e-05
    assert not grid.isna().any().any()


def test_binned_pair_grids_run_from_the_lowest_bin_up():
    rng = np.random.default_rng(1)
    configs = {float(lr): (0.9, 0.01) for lr in np.exp(rng.uniform(np.log(1e-6), np.log(1e-2), 40))}
    frame = synthetic(configs, seeds=1)
    frame["config/width"] = frame["config_id"].str[1:].astype(int) % 3 * 64 + 64
    board = build_leaderboard(frame.rename(columns={"config/dropout": "config/lr"}), "val_acc", "max")
    (_, _, grid), = board.pairs
    bins = list(grid.index) if ".." in str(grid.index[0]) else list(grid.columns)
    lows = [float(label.split("..")[0]) for label in bins]
    assert len(bins) == 4 and lows == sorted(lows)


@pytest.fixture(scope="module")
def factorial(tmp_path_factory, ray_local):
    """A real tiny factorial sweep: dropout x norm on digits, 2 seeds."""
    import yaml

    from regsweep._sweep import start_sweep
    from regsweep._validate import load_sweep

    folder = tmp_path_factory.mktemp("factorial")
    spec = folder / "factorial.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "factorial", "trainable": "cnn", "dataset": "digits", "fixed": {"epochs": 2, "filters": 8},
        "search_space": {"dropout": {"grid": [0.0, 0.5]}, "norm": {"grid": ["batch", "none"]}},
        "search": {"algorithm": "grid"}, "seeds": 2,
    }))
    frame = start_sweep(load_sweep(spec), str(folder / "results"), mlflow=False)
    return folder, frame


def test_a_sweep_without_mlflow_still_writes_its_best_model(factorial):
    import torch

    folder, frame = factorial
    saved = torch.load(folder / "results" / "factorial" / "best_model.pt", weights_only=False)
    ends = frame.sort_values("epoch").groupby("trial_id").tail(1)
    match = ends[(ends["val_acc"] == saved["val_acc"]) & (ends["config/dropout"] == saved["config"]["dropout"])]
    assert saved["trainable"] == "cnn" and len(match) >= 1 and saved["val_acc"] >= ends["val_acc"].median()
    assert saved["config"]["epochs"] == 2 and saved["config"]["filters"] == 8


def test_leaderboard_of_a_real_sweep_on_recorded_console(factorial):
    _, frame = factorial
    board = build_leaderboard(frame, "val_acc", "max", "factorial")
    text = record(board, width=150)
    lines = text.splitlines()
    assert lines[0] == "factorial: 8 trials (completed 8); ranked on search"
    assert "Top configurations" in text and "Factor dropout" in text and "Factor norm" in text
    assert "dropout x norm (mean val_acc; * best)" in text or "norm x dropout (mean val_acc; * best)" in text
    assert text.count("*") >= 1 and "overfit:" in text
    rows = [line for line in lines if line.startswith("│ 1 ")]
    assert rows and "best" in rows[0] and "completed 2" in rows[0]
    assert len(board.top) == 4 and set(board.top["n"]) == {2}
    markdown = render_markdown(board)
    assert markdown.startswith("### Top configurations") and "| # | dropout | norm |" in markdown
    assert len(pd.read_csv(__import__("io").StringIO(render_csv(board)))) == 4
    payload = json.loads(render_json(board))
    assert set(payload["factors"]) == {"dropout", "norm"} and len(payload["top"]) == 4


def test_leaderboard_and_list_commands_import_neither_ray_nor_torch(factorial):
    """Reading results needs neither: Ray is the engine's, torch (about 1 s to import) the trainables'."""
    folder, _ = factorial
    results = str(folder / "results")
    code = ("import sys; from regsweep.cli import main; "
            f"rc = main(['leaderboard', 'factorial', '--results', {results!r}, '--format', 'json', '--top', '2']); "
            f"rc = rc or main(['list', '--results', {results!r}]); "
            "loaded = sorted({name.split('.')[0] for name in sys.modules} & {'ray', 'torch'}); "
            "assert not loaded, f'imported {loaded}'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    board, end = json.JSONDecoder().raw_decode(done.stdout)
    assert len(board["top"]) == 2
    assert "factorial" in done.stdout[end:] and "finished" in done.stdout[end:]  # the list's line


@pytest.mark.parametrize("command", ["leaderboard", "report", "resume", "sync-mlflow"])
def test_a_sweep_name_that_is_not_there_is_one_clear_error_naming_the_sweeps_that_are(factorial, command, capsys):
    from regsweep.cli import main

    folder, _ = factorial
    assert main([command, "factorail", "--results", str(folder / "results")]) == 2
    err = capsys.readouterr().err
    assert "no sweep called 'factorail'" in err and "known: factorial" in err


def test_leaderboard_on_another_metric_needs_its_mode_and_ranks_by_it(factorial, capsys):
    """The sweep's mode belongs to its own metric: val_acc's max must not rank val_loss highest first."""
    from regsweep.cli import main

    results = str(factorial[0] / "results")
    assert main(["leaderboard", "factorial", "--results", results, "--metric", "val_loss"]) == 2
    assert ("--metric val_loss: give --mode min or --mode max (the sweep's mode, max, is for its metric val_acc)"
            in capsys.readouterr().err)
    assert main(["leaderboard", "factorial", "--results", results, "--metric", "val_loss", "--mode", "min",
                 "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("}\n")
    top = json.loads(out)["top"]
    assert top[0]["best"] and top[0]["mean"] == min(row["mean"] for row in top)
    assert main(["leaderboard", "factorial", "--results", results, "--metric", "val_acc", "--format", "json"]) == 0
    top = json.loads(capsys.readouterr().out)["top"]
    assert top[0]["mean"] == max(row["mean"] for row in top)


@pytest.mark.parametrize("top", ["0", "-2", "two"])
def test_leaderboard_top_must_be_a_whole_number_of_at_least_one(factorial, capsys, top):
    from regsweep.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["leaderboard", "factorial", "--results", str(factorial[0] / "results"), "--top", top])
    assert exit_.value.code == 2
    assert f"argument --top: given '{top}'; a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(("mode", "top", "message"), [
    ("maximum", 3, "mode: given 'maximum'; 'min' (lower is better) or 'max'"),
    ("max", 0, "top: given 0; a whole number of at least 1"),
    ("max", -1, "top: given -1; a whole number of at least 1"),
    ("max", 2.5, "top: given 2.5; a whole number of at least 1"),
])
def test_build_leaderboard_checks_mode_and_top_before_ranking(factorial, mode, top, message):
    """A misspelt mode used to rank as max, and a negative top sliced rows off the end."""
    with pytest.raises(ValueError) as error:
        build_leaderboard(factorial[1], "val_acc", mode, "factorial", top=top)
    assert str(error.value) == message
    assert len(build_leaderboard(factorial[1], "val_acc", "min", "factorial", top=1).top) == 1


def test_an_unreadable_state_file_is_one_clear_error_and_does_not_hide_the_other_sweeps(factorial, tmp_path, capsys):
    """A sweep.json edited by hand or cut short by a full disk: `list` still shows every sweep, the commands that
    need it exit 2 with the file named, and `run` says how to start over."""
    import shutil

    from regsweep.cli import main

    results = tmp_path / "results"
    shutil.copytree(factorial[0] / "results" / "factorial", results / "factorial")
    (results / "broken").mkdir()
    (results / "broken" / "sweep.json").write_text("{not json")
    assert main(["list", "--results", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["broken", "unreadable"], ["factorial", "finished"]]
    for command in ("leaderboard", "report", "resume", "sync-mlflow"):
        assert main([command, "broken", "--results", str(results)]) == 2
        assert (f"regsweep: {results / 'broken' / 'sweep.json'}: cannot read this sweep's state (Expecting property "
                "name" in capsys.readouterr().err)
    spec = tmp_path / "broken.yaml"
    spec.write_text(yaml.safe_dump({"name": "broken", "trainable": "mlp", "dataset": "digits",
                                    "search_space": {"dropout": {"grid": [0.0]}}}))
    assert main(["run", str(spec), "--results", str(results), "--no-mlflow"]) == 2
    assert "broken already exists (its state file is unreadable); use --fresh to start over" in capsys.readouterr().err


def test_a_running_sweeps_leaderboard_and_report_read_its_journal_so_far(factorial, tmp_path, capsys):
    """The Parquet table is written as each stage ends: a sweep still running (or interrupted) has none yet, and
    `leaderboard` and `report` used to fail on the missing file. They read the journal instead."""
    import os
    import shutil

    from regsweep.cli import main

    results = tmp_path / "results"
    folder = results / "factorial"
    shutil.copytree(factorial[0] / "results" / "factorial", folder)
    (folder / "results.parquet").unlink()
    state = json.loads((folder / "sweep.json").read_text())
    (folder / "sweep.json").write_text(json.dumps({**state, "status": "running", "pid": os.getpid()}))
    assert main(["leaderboard", "factorial", "--results", str(results), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["top"]) == 4
    assert main(["report", "factorial", "--results", str(results), "--reports", str(tmp_path / "reports")]) == 0
    text = (tmp_path / "reports" / "factorial" / "journal.md").read_text()
    assert "- trials: 8; epochs trained: 16 of a budget of 16 (100%)" in text
    assert "(the sweep is running: results so far)" in text
    (folder / "journal.jsonl").write_text("")  # started, nothing reported yet
    assert main(["leaderboard", "factorial", "--results", str(results)]) == 2
    assert "regsweep: sweep factorial (running) has no results yet" in capsys.readouterr().err
