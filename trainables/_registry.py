"""The built-in trainables by name, and the checks the engine runs before a sweep starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator

from pydantic import ValidationError

from trainables._config import CNNConfig, ConvLSTMConfig, MLPConfig, ResMLPConfig, TrainConfig
from trainables._problems import ConfigError, Problem, did_you_mean, problems_from_validation_error

# The loop and the models import torch (about 1.2 s) on first use, not here: a driver whose trials run in
# other processes (the local executor's workers) validates configs without it.

# Image shape and classes per dataset, so checks need no data on disk.
DATASET_SHAPES = {
    "digits": ((1, 8, 8), 10),
    "mnist_5k": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
}


def image_shape_of(cfg: TrainConfig) -> tuple[tuple[int, ...], int]:
    return DATASET_SHAPES[cfg.dataset]


def table_shape_of(cfg: TrainConfig) -> tuple[tuple[int, ...], int]:
    from trainables.data._tabular import DIABETES_FEATURES

    features = cfg.features or (DIABETES_FEATURES if cfg.dataset == "diabetes" else ())
    return (len(features),), 1


def field_shape_of(cfg: TrainConfig) -> tuple[tuple[int, ...], int]:
    from trainables.loop._forecast import CHANNELS

    if cfg.dataset == "synthetic":
        return (CHANNELS, cfg.synthetic_shape[1], cfg.synthetic_shape[2]), 1
    return (CHANNELS, 8, 8), 1  # a user's field: any size works for the model's shape checks


@dataclass(frozen=True)
class TrainableSpec:
    """A built-in trainable: its config model and how to make a Trial of it (`trial_class` names a class of
    trainables.loop)."""

    name: str
    config_model: type[TrainConfig]
    trial_class: str = "Trial"
    shape_of: Callable[[TrainConfig], tuple[tuple[int, ...], int]] = image_shape_of
    smoke_dataset: str = "digits"  # the offline data of smoke runs and tests

    @property
    def keys(self) -> list[str]:
        return list(self.config_model.model_fields)

    def check(self, config: dict[str, Any]) -> list[Problem]:
        """Every problem in `config`, including configs that cannot build a model."""
        return self.check_config(config) or self.check_model(config)

    def check_config(self, config: dict[str, Any]) -> list[Problem]:
        """The problems the config's schema finds (keys, types, ranges); no torch needed."""
        try:
            self.config_model.model_validate(config)
        except ValidationError as exc:
            return problems_from_validation_error(exc, {"": self.keys})
        return []

    def check_model(self, config: dict[str, Any]) -> list[Problem]:
        """Whether a config that passed check_config builds a model that runs (on the meta device, and on
        uninitialised CPU memory); imports torch."""
        from trainables.models import InvalidModelConfig, check_buildable

        cfg = self.config_model.model_validate(config)
        shape, outputs = self.shape_of(cfg)
        try:
            check_buildable(cfg, shape, outputs)
        except InvalidModelConfig as exc:
            return [Problem(exc.key, config.get(exc.key, getattr(cfg, exc.key, None)), exc.message, combination=True)]
        return []

    def parse(self, config: dict[str, Any]) -> TrainConfig:
        """The validated config; raises ConfigError listing every problem."""
        problems = self.check(config)
        if problems:
            raise ConfigError(problems)
        return self.config_model.model_validate(config)

    def make_trial(self, config: dict[str, Any]) -> Any:
        """A trainables.loop Trial of `config`; raises ConfigError listing every problem."""
        from trainables import loop

        return getattr(loop, self.trial_class)(self.parse(config))

    def check_data(self, config: dict[str, Any]) -> None:
        """Load the data a trial of `config` trains on and build its model for it, without training anything
        (Trial.check_data); raises ConfigError, or the data's own error (DatasetError, ValueError)."""
        from trainables import loop

        getattr(loop, self.trial_class).check_data(self.parse(config))

    def run(self, config: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield each epoch's metrics; the last one also carries the trial's summary."""
        trial = self.make_trial(config)
        previous = None
        for metrics in trial.epochs():
            if previous is not None:
                yield previous
            previous = metrics
        yield {**(previous or {}), **trial.summary(), "done": True}


TRAINABLES: dict[str, TrainableSpec] = {
    "cnn": TrainableSpec("cnn", CNNConfig),
    "mlp": TrainableSpec("mlp", MLPConfig),
    "resmlp": TrainableSpec("resmlp", ResMLPConfig, "RegressionTrial", table_shape_of, "diabetes"),
    "convlstm": TrainableSpec("convlstm", ConvLSTMConfig, "ForecastTrial", field_shape_of, "synthetic"),
}


def get_trainable(name: str) -> TrainableSpec:
    """The built-in trainable called `name`."""
    if name not in TRAINABLES:
        allowed = f"built-in: {', '.join(TRAINABLES)}{did_you_mean(name, TRAINABLES)}"
        raise ConfigError([Problem("trainable", name, allowed)])
    return TRAINABLES[name]


def cnn(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The CNN trainable as a plain function of `config` (Ray Tune style)."""
    return TRAINABLES["cnn"].run(config)


def mlp(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The MLP trainable as a plain function of `config`."""
    return TRAINABLES["mlp"].run(config)


def convlstm(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The ConvLSTM forecasting trainable as a plain function of `config`."""
    return TRAINABLES["convlstm"].run(config)


def resmlp(config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The residual MLP regression trainable as a plain function of `config`."""
    return TRAINABLES["resmlp"].run(config)
