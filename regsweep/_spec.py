"""The sweep file: its schema (pydantic), loading with a safe YAML loader, and search-space files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trainables import Problem
from trainables._problems import problems_from_validation_error

DISTRIBUTIONS = ("grid", "choice", "uniform", "loguniform", "randint", "quniform")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchSettings(_Strict):
    algorithm: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(8, ge=1, le=100_000, description="ignored by grid, which runs every point")
    seed: int = Field(0, ge=0)
    max_concurrent: Optional[int] = Field(None, ge=1)
    confirm_top_k: int = Field(3, ge=1, description="optuna: configurations re-run with every seed")


class SchedulerSettings(_Strict):
    type: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1.0)


class ResourceSettings(_Strict):
    executor: Literal["ray", "local"] = Field(
        "ray", description="ray: Ray Tune, on a local Ray or the cluster in RAY_ADDRESS; local: worker processes on "
        "this machine without Ray (seconds less start-up per sweep)")
    cpu: float = Field(1.0, gt=0.0)
    gpu: float = Field(0.0, ge=0.0)
    max_failures: int = Field(2, ge=0)
    time_budget_s: Optional[float] = Field(None, gt=0.0)
    storage: Optional[str] = None
    checkpoint_every_s: float = Field(
        10.0, ge=0.0, description="seconds of training between a trial's checkpoints (0: every epoch); "
        "the last epoch is always saved")


class Distribution(_Strict):
    """Exactly one of the distribution keys, optionally conditional on another parameter."""

    grid: Optional[list[Any]] = None
    choice: Optional[list[Any]] = None
    uniform: Optional[list[float]] = None
    loguniform: Optional[list[float]] = None
    randint: Optional[list[int]] = None
    quniform: Optional[list[float]] = None
    when: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Distribution":
        given = [name for name in DISTRIBUTIONS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"needs exactly one distribution, given {given or 'none'}; allowed: {', '.join(DISTRIBUTIONS)}"
            )
        kind = given[0]
        values = getattr(self, kind)
        if kind in ("grid", "choice") and not values:
            raise ValueError(f"{kind} needs a non-empty list of values")
        if kind in ("uniform", "loguniform", "randint") and (len(values) != 2 or values[0] >= values[1]):
            raise ValueError(f"{kind} needs [low, high] with low < high, given {values}")
        if kind == "loguniform" and values[0] <= 0:
            raise ValueError(f"loguniform needs low > 0, given {values}")
        if kind == "quniform" and (len(values) != 3 or values[0] >= values[1] or values[2] <= 0):
            raise ValueError(f"quniform needs [low, high, q] with low < high and q > 0, given {values}")
        if kind == "quniform" and not all(math.isclose(v / values[2], round(v / values[2])) for v in values[:2]):
            # Both searchers sample multiples of q between the bounds (Optuna's step, Ray Tune's quantized).
            raise ValueError(f"quniform needs low and high that are multiples of q, given {values}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in DISTRIBUTIONS if getattr(self, name) is not None)

    @property
    def args(self) -> list[Any]:
        return getattr(self, self.kind)


class SweepSpec(_Strict):
    """A sweep file. Every key is listed here; anything else is an error."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    hypothesis: str = ""
    trainable: str
    dataset: Optional[str] = None
    fixed: dict[str, Any] = Field(default_factory=dict)
    # Checked by parse_spec, so errors point at search_space.<param> rather than at a Union branch.
    search_space: Any
    search: SearchSettings = Field(default_factory=SearchSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    seeds: int = Field(1, ge=1, le=100)
    metric: str = "val_acc"
    mode: Literal["min", "max"] = "max"
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    tracking_uri: Optional[str] = None
    claims: list[dict[str, Any]] = Field(default_factory=list)


_FIELDS = {
    "": list(SweepSpec.model_fields),
    "search": list(SearchSettings.model_fields),
    "scheduler": list(SchedulerSettings.model_fields),
    "resources": list(ResourceSettings.model_fields),
}


class SpecError(ValueError):
    """A sweep file with problems; each one names the file, the key, the value and what is allowed."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def read_yaml(path: Path) -> Any:
    """Read YAML with the safe loader; missing or malformed files become SpecError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([Problem("", str(path), "file not found", str(path))]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", "invalid YAML", str(exc).replace("\n", " "), str(path))]) from None


def parse_spec(raw: Any, source: str) -> SweepSpec:
    """Validate a sweep mapping; raises SpecError listing every schema problem."""
    if not isinstance(raw, dict):
        raise SpecError([Problem("", type(raw).__name__, "a sweep file must be a mapping of keys", source)])
    problems: list[Problem] = []
    spec = None
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        problems += [p.located(source) for p in problems_from_validation_error(exc, _FIELDS)]
    space = raw.get("search_space")
    if isinstance(space, dict):
        parsed = {}
        for param, dist in space.items():
            try:
                parsed[param] = Distribution.model_validate(dist)
            except ValidationError as exc:
                fields = {"": list(Distribution.model_fields)}
                problems += [p.located(source, f"search_space.{param}")
                             for p in problems_from_validation_error(exc, fields)]
        if spec is not None:
            spec.search_space = parsed
    elif isinstance(space, list) and all(isinstance(entry, str) for entry in space):
        pass
    elif "search_space" in raw:
        problems.append(Problem("search_space", space, "a mapping of parameters to distributions, or a list of "
                                "search space files", source))
    if problems:
        raise SpecError(problems)
    return spec


def load_space_files(paths: list[str], spec_path: Path) -> dict[str, Distribution]:
    """Merge search-space files in order; a parameter defined twice is an error naming both files."""
    merged: dict[str, Distribution] = {}
    origin: dict[str, str] = {}
    problems: list[Problem] = []
    for index, entry in enumerate(paths):
        path = _resolve(entry, spec_path)
        if not path.is_file():
            problems.append(Problem(f"search_space[{index}]", entry, "file not found (paths are relative to the "
                                    "working directory or the sweep file)", str(spec_path)))
            continue
        raw = read_yaml(path)
        if not isinstance(raw, dict):
            problems.append(Problem("", type(raw).__name__, "a search space file maps parameters to distributions",
                                    str(path)))
            continue
        for param, dist in raw.items():
            if param in merged:
                problems.append(Problem(param, str(path), f"duplicate parameter, already defined in {origin[param]}",
                                        str(spec_path)))
                continue
            try:
                merged[param] = Distribution.model_validate(dist)
                origin[param] = str(path)
            except ValidationError as exc:
                fields = {"": list(Distribution.model_fields)}
                problems += [p.located(str(path), param) for p in problems_from_validation_error(exc, fields)]
    if problems:
        raise SpecError(problems)
    return merged


def _resolve(entry: str, spec_path: Path) -> Path:
    """Search-space paths are relative to the working directory, else to the sweep file's folder."""
    path = Path(entry)
    if path.is_absolute() or path.exists():
        return path
    beside = spec_path.parent / entry
    if beside.exists():
        return beside
    return spec_path.parent.parent / entry if (spec_path.parent.parent / entry).exists() else path
