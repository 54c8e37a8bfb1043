"""A sweep's stages: the search, then (Optuna with several seeds) the confirm stage that reruns the top
configurations with every seed; each under the local executor's pool or Ray Tune."""

from __future__ import annotations

import json
from typing import Any, Callable

import pandas as pd

from regsweep._record import end_unended
from regsweep._results import compact, ended_trials
from regsweep._space import grid_points, random_points
from regsweep._state import SweepPaths, write_state
from regsweep._tune_storage import delete_deferred_checkpoints
from regsweep._validate import Sweep


def _stage_points(sweep: Sweep) -> list[dict[str, Any]] | None:
    """Explicit points for grid and random search, each with every seed; None for Optuna."""
    spec = sweep.spec
    if spec.search.algorithm == "grid":
        base = grid_points(sweep.space)
    elif spec.search.algorithm == "random":
        base = random_points(sweep.space, spec.search.num_samples, spec.search.seed)
    else:
        return None
    return [{**point, "seed": seed} for point in base for seed in range(spec.seeds)]


def needs_confirm(sweep: Sweep) -> bool:
    """Optuna searches with one seed; with seeds > 1 a confirm stage re-runs the top-k with all seeds."""
    return sweep.spec.search.algorithm == "optuna" and sweep.spec.seeds > 1


def top_configs(frame: pd.DataFrame, sweep: Sweep, stage: str = "search") -> list[dict[str, Any]]:
    """The top-k configurations of a stage by their final metric, preferring full-budget trials."""
    spec = sweep.spec
    rows = frame[(frame["stage"] == stage) & frame[spec.metric].notna()] if spec.metric in frame else frame.iloc[0:0]
    if rows.empty:
        return []
    last = rows.sort_values("epoch").groupby("trial_id").tail(1)
    full = last[last["epoch"] >= sweep.epochs]
    ranked = (full if not full.empty else last).sort_values(spec.metric, ascending=spec.mode == "min")
    ranked = ranked.drop_duplicates("config_id").head(spec.search.confirm_top_k)
    configs = []
    for _, row in ranked.iterrows():
        params = {}
        for column in ranked.columns:
            if column.startswith("config/") and pd.notna(row[column]):
                value = row[column]
                encoded = isinstance(value, str) and value[:1] in "[{"
                params[column[len("config/"):]] = json.loads(value) if encoded else value
        configs.append(params)
    return configs


def _run_stage(sweep: Sweep, paths: SweepPaths, stage: str, points: list[dict[str, Any]] | None,
               restore: bool, pool: Any, saved: frozenset[str]) -> None:
    """Run one stage in the local executor's `pool`, or under Ray Tune: restored when it is in `saved`."""
    if pool is not None:
        from regsweep._local import run_stage

        run_stage(pool, paths, stage, points, restore)
        return
    from regsweep import _tune
    from regsweep._ray_start import tune_actors_in_prestarted_workers
    from regsweep._tune_usage import callbacks_tagged_without_integrations

    _tune.quiet_tune()
    callback = _tune.JournalCallback(paths.journal, stage, sweep.space, sweep.epochs, sweep.uses_asha(stage),
                                     time_budget=sweep.spec.resources.time_budget_s is not None)
    if stage in saved:
        tuner = _tune.restore_tuner(sweep, stage, paths.storage, ended_trials(paths.journal, stage))
    else:
        tuner = _tune.build_tuner(sweep, stage, paths.storage, callback, points)
    try:
        with callbacks_tagged_without_integrations(), tune_actors_in_prestarted_workers():
            tuner.fit()
    except KeyboardInterrupt:
        # Interrupted, Tune's loop leaves its trials' actors running and holding their CPUs: a resume in this
        # process (the Python API, a notebook) would wait for them forever. They end with this driver's Ray
        # connection; the next sweep starts or joins Ray again.
        _tune.ray.shutdown()
        raise
    delete_deferred_checkpoints()  # the stage ran to its end: Tune will not restore it
    # A kill between the files of one of Tune's snapshots can leave its experiment state without a trial its
    # searcher had made: Tune's resume then never runs or ends it. Recorded, not left 'running'.
    end_unended(paths.journal, stage, sweep.space, "lost",
                "Ray Tune's saved experiment did not list this trial, so its resume could not continue it")


def _announce(on_stage: Callable[[str, int | None], None] | None, paths: SweepPaths, stage: str, trials: int,
              restore: bool) -> None:
    """Tell the view a stage starts, with the trials it has left to run (on resume, less those that ended)."""
    if on_stage is not None:
        on_stage(stage, trials - len(ended_trials(paths.journal, stage)) if restore else trials)


def run_stages(sweep: Sweep, paths: SweepPaths, state: dict[str, Any], restore: bool,
                on_stage: Callable[[str, int | None], None] | None, pool: Any, saved: frozenset[str]) -> pd.DataFrame:
    stages = state.setdefault("stages", {})
    if stages.get("search") != "finished":
        points = _stage_points(sweep)
        _announce(on_stage, paths, "search", len(points) if points is not None else sweep.spec.search.num_samples,
                  restore)
        _run_stage(sweep, paths, "search", points, restore, pool, saved)
        stages["search"] = "finished"
        write_state(paths, state)
    frame = compact(paths.journal, paths.storage)
    if needs_confirm(sweep) and stages.get("confirm") != "finished":
        if "confirm_configs" not in state:
            state["confirm_configs"] = top_configs(frame, sweep)
            write_state(paths, state)
        points = [{**params, "seed": seed} for params in state["confirm_configs"] for seed in range(sweep.spec.seeds)]
        if points:
            _announce(on_stage, paths, "confirm", len(points), restore)
            _run_stage(sweep, paths, "confirm", points, restore, pool, saved)
        stages["confirm"] = "finished"
        write_state(paths, state)
        frame = compact(paths.journal, paths.storage)
    state["status"] = "finished"
    write_state(paths, state)
    return frame
