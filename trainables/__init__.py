"""regsweep's trainables: models, data and the training loop, usable without Ray.

A trainable is a plain function of a config dict that yields one flat metrics dict per epoch::

    for metrics in trainables.cnn({"dataset": "digits", "epochs": 5, "dropout": 0.2}):
        print(metrics)
"""

from trainables._config import CNNConfig, ConvLSTMConfig, MLPConfig, ResMLPConfig, TrainConfig
from trainables._problems import Problem, did_you_mean
from trainables._registry import (
    TRAINABLES,
    ConfigError,
    TrainableSpec,
    cnn,
    get_trainable,
    convlstm,
    mlp,
    resmlp,
)
from trainables.data import DatasetError
from trainables.loop import Trial

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
