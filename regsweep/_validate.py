"""Everything checked before Ray starts: the schema, the search space against the algorithm,
and every config the sweep can produce against its trainable (models built on the meta device; for the
local executor's `regsweep run`, in its first worker, see load_sweep's check_models)."""

from __future__ import annotations

import copy
import hashlib
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import trainables
from regsweep._overrides import set_dotted
from regsweep._space import FINITE, Space, corner_points, grid_points
from regsweep._spec import SpecError, SweepSpec, load_space_files, parse_spec, read_yaml
from trainables import Problem, did_you_mean

# Metrics the built-in trainables report per epoch or at the end.
BUILTIN_METRICS = ("val_acc", "val_loss", "train_acc", "train_loss", "gap", "best_val_acc",
                   "best_val_loss", "test_acc", "test_loss", "val_mae", "test_mae", "val_skill", "test_skill")
SMOKE_EPOCHS = 3
SMOKE_SAMPLES = 4


@dataclass
class Sweep:
    """A validated sweep, ready to run: the spec with overrides and smoke applied, its space,
    the config every trial shares, and where the spec came from."""

    spec: SweepSpec
    space: Space
    fixed: dict[str, Any]
    spec_path: Path
    spec_text: str
    smoke: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    # (point, config) pairs whose models are still to be built and run: left by load_sweep(check_models=False)
    # to the local executor's first worker, which has torch loaded.
    unchecked_models: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)

    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.spec_text.encode()).hexdigest()[:16]

    @property
    def epochs(self) -> int:
        return int(self.fixed.get("epochs", trainables.TrainConfig.model_fields["epochs"].default))

    @property
    def builtin(self) -> bool:
        return self.spec.trainable in trainables.TRAINABLES

    @property
    def threads(self) -> int:
        """torch threads of a built-in trial that sets none: one per CPU the trial asked for."""
        return max(1, int(self.spec.resources.cpu))

    def uses_asha(self, stage: str) -> bool:
        """ASHA stops trials in the search stage only; the confirm stage runs every seed to the end."""
        return self.spec.scheduler.type == "asha" and stage == "search"

    def checked_points(self) -> list[dict[str, Any]]:
        """The points every config check covers: the whole grid for grid search, else the space's corners."""
        return grid_points(self.space) if self.spec.search.algorithm == "grid" else corner_points(self.space)


def load_user_trainable(ref: str) -> Callable[[dict[str, Any]], Any]:
    """Import 'package.module:function', from the working directory too; raises ValueError with what went wrong."""
    module_name, _, attr = ref.partition(":")
    # As under `python -m regsweep` (and in Ray's workers, which get the driver's working directory on their path):
    # the `regsweep` console script's path starts at its own bin folder, so a module beside the sweep did not import.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is a config problem here
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise ValueError(f"{module_name!r} has no function {attr!r}")
    return function


def _apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        if key.split(".")[0] in SweepSpec.model_fields:
            set_dotted(raw, key, value)
        else:
            raw.setdefault("fixed", {})[key] = value
    return raw


# Keys the sweep itself sets for every trial: searched, they would be overwritten (seed) or would leave ASHA's
# max_t, the smoke cap and the budget at the fixed value while trials trained to another (epochs).
_SWEEP_LEVEL = {
    "seed": "each trial's seed comes from the sweep's replicates: set `seeds: N` instead",
    "epochs": "the epoch budget is the sweep's (ASHA's max_t, smoke runs and the budget use it): set it in `fixed` "
              "or with --set epochs=N; every epoch's metrics are in the results, so shorter budgets can be read off "
              "the learning curves",
}


def _ignored_search_settings(spec: SweepSpec, source: str) -> list[Problem]:
    """Search settings given for an algorithm that does not use them: said, not silently ignored."""
    search, given, problems = spec.search, spec.search.model_fields_set, []
    if search.algorithm == "grid" and "num_samples" in given:
        problems.append(Problem("search.num_samples", search.num_samples, "grid search runs every point of the grid "
                                "once per seed (Ray Tune's num_samples would repeat it): set `seeds: N` for "
                                "replicates, or use search.algorithm: random or optuna", source))
    if search.algorithm != "optuna" and "confirm_top_k" in given:
        problems.append(Problem("search.confirm_top_k", search.confirm_top_k, f"{search.algorithm} search runs "
                                "every seed of every point itself; only search.algorithm: optuna has a confirm "
                                "stage", source))
    return problems


def _check_space(spec: SweepSpec, space: Space, source: str) -> list[Problem]:
    problems = []
    algorithm = spec.search.algorithm
    seen: list[str] = []
    for name, dist in space.items():
        key = f"search_space.{name}"
        if name in _SWEEP_LEVEL:
            problems.append(Problem(key, {dist.kind: dist.args}, _SWEEP_LEVEL[name], source))
        if algorithm == "grid" and dist.kind not in FINITE:
            problems.append(Problem(key, {dist.kind: dist.args}, "grid search runs every point and needs a finite "
                                    "list: use {grid: [...]} or search.algorithm: random or optuna", source))
        if algorithm == "optuna" and dist.kind == "grid":
            problems.append(Problem(key, {"grid": dist.args}, "optuna cannot run a grid: use {choice: [...]} or "
                                    "search.algorithm: grid", source))
        for cond_key, cond_value in (dist.when or {}).items():
            if cond_key not in seen:
                problems.append(Problem(f"{key}.when.{cond_key}", cond_value, "a condition must refer to a parameter "
                                        f"defined before {name}{did_you_mean(cond_key, seen)}; "
                                        f"defined: {', '.join(seen) or 'none'}", source))
                continue
            possible = space[cond_key].args if space[cond_key].kind in FINITE else None
            wanted = cond_value if isinstance(cond_value, list) else [cond_value]
            if possible is not None and not set(map(repr, wanted)) <= set(map(repr, possible)):
                problems.append(Problem(f"{key}.when.{cond_key}", cond_value, f"{cond_key} never takes this value; "
                                        f"it takes {possible}{did_you_mean(wanted[0], possible)}", source))
        seen.append(name)
    return problems


def _sweep_configs(sweep: Sweep) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(point, config) of every distinct config the sweep can produce, at most 2,000 of them."""
    checked: set[str] = set()
    for point in sweep.checked_points() or [{}]:
        for seed in range(sweep.spec.seeds):
            config = {**sweep.fixed, **point, "seed": seed}
            signature = repr(sorted(config.items(), key=lambda kv: kv[0]))
            if signature in checked:
                continue
            checked.add(signature)
            yield point, config
            if len(checked) > 2000:
                return


def _locate(sweep: Sweep, point: dict[str, Any], problem: Problem) -> Problem:
    """A trainable's problem with a config, as the spec key it comes from (`search_space.` or `fixed.`)."""
    source = str(sweep.spec_path)
    head = problem.key.split(".")[0]
    if head in sweep.space:
        prefix = "search_space"
    elif head == "dataset" and "dataset" not in sweep.spec.fixed:
        prefix = ""
    else:
        prefix = "fixed"
    located = problem.located(source, prefix)
    if point and head not in sweep.space and problem.combination:
        located = Problem(located.key, located.given, f"{located.allowed} (at {point})", source, True)
    return located


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    first: dict[tuple[str, str], Problem] = {}
    for problem in problems:
        first.setdefault((problem.key, problem.allowed), problem)
    return list(first.values())


def _check_configs(sweep: Sweep, models: bool) -> list[Problem]:
    """Every config against its trainable's schema; and, with `models`, whether each builds a model that runs
    (torch). Without, the configs that passed are left in sweep.unchecked_models for model_problems."""
    trainable = trainables.TRAINABLES[sweep.spec.trainable]
    problems, valid = [], []
    for point, config in _sweep_configs(sweep):
        found = trainable.check_config(config)
        problems += [_locate(sweep, point, problem) for problem in found]
        if not found:
            valid.append((point, config))
    if models:
        problems += model_problems(sweep, [trainable.check_model(config) for _, config in valid], valid)
    else:
        sweep.unchecked_models = valid
    return _unique(problems)


def model_problems(sweep: Sweep, found: list[list[Problem]],
                   checked: list[tuple[dict[str, Any], dict[str, Any]]] | None = None) -> list[Problem]:
    """The problems check_model `found` with each config of `checked` (by default sweep.unchecked_models),
    located in the spec."""
    checked = sweep.unchecked_models if checked is None else checked
    return _unique(_locate(sweep, point, problem) for (point, _), problems in zip(checked, found)
                   for problem in problems)


def _check_device(sweep: Sweep, source: str) -> list[Problem]:
    """`device: cuda` needs a GPU from Ray: a trial that asked for none is shown none."""
    if sweep.spec.resources.gpu > 0:
        return []
    if sweep.fixed.get("device") == "cuda":
        key = "fixed.device"
    elif "device" in sweep.space and any(p.get("device") == "cuda" for p in sweep.checked_points()):
        key = "search_space.device"
    else:
        return []
    return [Problem(key, "cuda", "trials get a GPU only when they ask Ray for one: set resources.gpu (1, or 0.25 "
                    "to share a GPU between four trials), or use device: auto (the GPU when given one)", source)]


def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None, smoke: bool = False,
               check_models: bool = True) -> Sweep:
    """Read, validate and resolve a sweep file. Raises SpecError listing every problem found.

    `check_models=False` leaves building each config's model (which imports torch, 2-3 s) to a worker process
    the sweep starts before any trial (sweep.unchecked_models): the local executor's first worker, or under Ray
    a helper beside Ray's start (regsweep._sweep.execute)."""
    spec_path = Path(path)
    source = str(spec_path)
    raw = read_yaml(spec_path)
    overrides = overrides or {}
    if isinstance(raw, dict):
        raw = _apply_overrides(raw, overrides)
    spec = parse_spec(raw, source)
    problems = _ignored_search_settings(spec, source)  # before smoke mode sets num_samples itself

    if isinstance(spec.search_space, list):
        space = load_space_files(spec.search_space, spec_path)
    else:
        space = dict(spec.search_space)

    if smoke:
        builtin = trainables.TRAINABLES.get(spec.trainable)
        spec.dataset = builtin.smoke_dataset if builtin else spec.dataset
        spec.search.num_samples = min(spec.search.num_samples, SMOKE_SAMPLES)
    fixed = dict(spec.fixed)
    if spec.dataset is not None:
        fixed["dataset"] = spec.dataset
    if smoke:
        fixed.pop("data_dir", None)
        fixed["epochs"] = min(int(fixed.get("epochs", SMOKE_EPOCHS)), SMOKE_EPOCHS)
        spec.scheduler.grace_period = min(spec.scheduler.grace_period, fixed["epochs"])
    sweep = Sweep(spec, space, fixed, spec_path, spec_path.read_text(encoding="utf-8"), smoke, overrides)

    if spec.trainable in trainables.TRAINABLES:
        if spec.metric not in BUILTIN_METRICS and not spec.metric.startswith(("val_loss_", "test_loss_")):
            allowed = f"allowed: {', '.join(BUILTIN_METRICS)}{did_you_mean(spec.metric, BUILTIN_METRICS)}"
            problems.append(Problem("metric", spec.metric, allowed, source))
    elif ":" in spec.trainable:
        try:
            load_user_trainable(spec.trainable)
        except ValueError as exc:
            problems.append(Problem("trainable", spec.trainable, str(exc), source))
    else:
        names = list(trainables.TRAINABLES)
        problems.append(Problem("trainable", spec.trainable, f"allowed: {', '.join(names)} or package.module:function"
                                f"{did_you_mean(spec.trainable, names)}", source))

    problems += _check_space(spec, space, source)
    from regsweep._claims import claim_problems

    for index, claim in enumerate(spec.claims):
        problems += [Problem(f"claims[{index}]", claim, message, source)
                     for message in claim_problems(claim, list(space))]
    if spec.scheduler.type == "asha" and spec.scheduler.grace_period > sweep.epochs:
        problems.append(Problem("scheduler.grace_period", spec.scheduler.grace_period,
                                f"must be at most the epoch budget ({sweep.epochs})", source))
    rate = spec.scheduler.reduction_factor
    if spec.resources.executor == "local" and spec.scheduler.type == "asha" and rate != int(rate):
        problems.append(Problem("scheduler.reduction_factor", rate, "the local executor's ASHA (Optuna's "
                                "SuccessiveHalvingPruner) needs a whole number, 2 or more; or use "
                                "resources.executor: ray", source))
    if not problems and sweep.builtin:
        problems += _check_configs(sweep, models=check_models) + _check_device(sweep, source)
    if problems:
        raise SpecError(problems)
    return sweep
