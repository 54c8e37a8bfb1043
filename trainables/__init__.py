"""regsweep's trainables: models, data and the training loop, usable without Ray.

A trainable is a plain function of a config dict that yields one flat metrics dict per epoch::

    for metrics in trainables.cnn({"dataset": "digits", "epochs": 5, "dropout": 0.2}):
        print(metrics)
"""

from __future__ import annotations

import importlib
from typing import Any

from trainables._config import CNNConfig, ConvLSTMConfig, MLPConfig, ResMLPConfig, TrainConfig
from trainables._problems import ConfigError, Problem, did_you_mean
from trainables.data import DatasetError

# The registry, the models and the training loop import torch (about 1 s): they load on first use, so
# the commands that only read results (list, leaderboard, report) never import it.
_LAZY = {
    "TRAINABLES": "trainables._registry",
    "TrainableSpec": "trainables._registry",
    "cnn": "trainables._registry",
    "convlstm": "trainables._registry",
    "get_trainable": "trainables._registry",
    "mlp": "trainables._registry",
    "resmlp": "trainables._registry",
    "Trial": "trainables.loop",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'trainables' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "CNNConfig",
    "ConfigError",
    "DatasetError",
    "MLPConfig",
    "Problem",
    "TRAINABLES",
    "TrainConfig",
    "TrainableSpec",
    "Trial",
    "cnn",
    "did_you_mean",
    "get_trainable",
    "mlp",
    "resmlp",
    "ResMLPConfig",
    "convlstm",
    "ConvLSTMConfig",
]
