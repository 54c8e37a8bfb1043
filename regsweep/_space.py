"""Search spaces: grid expansion and random draws (with `when` conditions), Optuna define-by-run,
the config id shared by seed replicates, and the corner points used for validation."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from typing import Any, Callable, Iterator

import numpy as np

from regsweep._spec import Distribution

Space = dict[str, Distribution]
FINITE = ("grid", "choice")


def condition_holds(when: dict[str, Any] | None, point: dict[str, Any]) -> bool:
    """True when every `when` entry matches the point (a list means any of its values)."""
    for key, wanted in (when or {}).items():
        if key not in point:
            return False
        options = wanted if isinstance(wanted, list) else [wanted]
        if point[key] not in options:
            return False
    return True


def config_id(params: dict[str, Any]) -> str:
    """Stable id of a configuration, the same for all of its seed replicates."""
    varying = {k: v for k, v in params.items() if k != "seed"}
    return hashlib.sha1(json.dumps(varying, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _expand(space: Space, choose: Callable[[str, Distribution], list[Any]]) -> Iterator[dict[str, Any]]:
    """Every point, branching on `choose(name, dist)` values for parameters whose condition holds."""
    names = list(space)

    def walk(index: int, point: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if index == len(names):
            yield dict(point)
            return
        name = names[index]
        dist = space[name]
        if not condition_holds(dist.when, point):
            yield from walk(index + 1, point)
            return
        for value in choose(name, dist):
            point[name] = value
            yield from walk(index + 1, point)
            del point[name]

    yield from walk(0, {})


def grid_points(space: Space) -> list[dict[str, Any]]:
    """All points of a grid: every value of every (applicable) parameter, crossed."""
    return list(_expand(space, lambda _, d: list(d.args)))


def _grid_index(bound: float, q: float, inward: Callable[[float], float]) -> float:
    scaled = bound / q
    nearest = round(scaled)
    return nearest if math.isclose(scaled, nearest) else inward(scaled)


def _draw(dist: Distribution, rng: np.random.RandomState) -> Any:
    """One value, drawn as Ray Tune's sampling domains draw it from `rng` (tune.choice, tune.uniform, ...: the
    same calls in the same order, so a seed gives the same points), without importing Ray Tune (0.4-0.7 s),
    which the local executor does not otherwise need. tests/test_space.py holds it to Ray Tune's own draws."""
    args = dist.args
    if dist.kind == "choice":
        return args[int(rng.choice(np.arange(0, len(args)), size=1)[0])]
    if dist.kind == "uniform":
        return float(rng.uniform(args[0], args[1], size=1)[0])
    if dist.kind == "loguniform":
        return float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]), size=1))[0])
    if dist.kind == "randint":  # inclusive upper bound, as in Optuna
        return int(rng.randint(args[0], args[1] + 1, size=1)[0])
    lo, hi, q = args  # quniform: a uniform draw between the multiples of q, rounded to one
    value = float(rng.uniform(_grid_index(lo, q, np.ceil) * q, _grid_index(hi, q, np.floor) * q, size=1)[0])
    return float(np.round(np.divide(value, q)) * q)


def random_points(space: Space, num_samples: int, seed: int) -> list[dict[str, Any]]:
    """`num_samples` draws of the random parameters for every grid point (Ray Tune's semantics),
    drawn as Ray Tune's own sampling domains draw them, from one seeded generator."""
    rng = np.random.RandomState(seed)
    points = []
    for _ in range(num_samples):
        draws: dict[str, Any] = {}

        def choose(name: str, dist: Distribution) -> list[Any]:
            if dist.kind == "grid":
                return list(dist.args)
            draws.setdefault(name, _draw(dist, rng))
            return [draws[name]]

        points += list(_expand(space, choose))
    return points


def _encoded(values: list[Any]) -> bool:
    return any(not isinstance(v, (str, int, float, bool, type(None))) for v in values)


class OptunaDefineByRun:
    """An Optuna define-by-run space: conditional parameters are suggested only when their
    condition holds. Lists (e.g. hidden widths) are suggested as JSON strings; see decode_point.
    A class rather than a closure so Ray Tune can pickle the searcher for resume."""

    def __init__(self, space: Space, constants: dict[str, Any]):
        self.space, self.constants = space, dict(constants)

    def __call__(self, trial: Any) -> dict[str, Any]:
        point: dict[str, Any] = {}
        for name, dist in self.space.items():
            if condition_holds(dist.when, point):
                point[name] = self._suggest(trial, name, dist)
        return dict(self.constants)

    @staticmethod
    def _suggest(trial: Any, name: str, dist: Distribution) -> Any:
        args = dist.args
        if dist.kind == "choice":
            if _encoded(args):
                return json.loads(trial.suggest_categorical(name, [json.dumps(v) for v in args]))
            return trial.suggest_categorical(name, args)
        if dist.kind in ("uniform", "loguniform"):
            return trial.suggest_float(name, args[0], args[1], log=dist.kind == "loguniform")
        if dist.kind == "randint":
            return trial.suggest_int(name, args[0], args[1])
        return trial.suggest_float(name, args[0], args[1], step=args[2])


def decode_point(config: dict[str, Any], space: Space) -> dict[str, Any]:
    """Undo the JSON encoding of list-valued choices made for Optuna."""
    decoded = dict(config)
    for name, dist in space.items():
        if dist.kind == "choice" and _encoded(dist.args) and isinstance(decoded.get(name), str):
            decoded[name] = json.loads(decoded[name])
    return decoded


def corner_points(space: Space, limit: int = 256, seed: int = 0) -> list[dict[str, Any]]:
    """Points that cover every finite value and both ends of every range, for validation.
    Crossed in full when small; otherwise a seeded sample that still covers every value."""

    def corners(dist: Distribution) -> list[Any]:
        if dist.kind in FINITE:
            return list(dist.args)
        lo, hi = dist.args[0], dist.args[1]
        return [lo, hi]

    full = []
    for point in _expand(space, lambda _, d: corners(d)):
        full.append(point)
        if len(full) > limit:
            break
    if len(full) <= limit:
        return full
    rng = random.Random(seed)
    sample = [dict(p) for p in itertools.islice(_expand(space, lambda _, d: corners(d)), limit)]
    # Every value of every parameter appears at least once.
    for name, dist in space.items():
        for value in corners(dist):
            point = {k: rng.choice(corners(d)) for k, d in space.items() if d.when is None}
            point[name] = value
            sample.append({k: v for k, v in point.items() if condition_holds(space[k].when, point) or k == name})
    return sample
