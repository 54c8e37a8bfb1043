"""regsweep's trainables: models, data and the training loop, usable without Ray.

A trainable is a plain function of a config dict that yields one flat metrics dict per epoch::

    for metrics in trainables.cnn({"dataset": "digits", "epochs": 5, "dropout": 0.2}):
        print(metrics)
"""

from __future__ import annotations

from trainables._lazy import lazy_names

# Every name loads its module on first use. The registry, the models and the training loop import torch
# (about 1 s), the configs pydantic: the commands that only read results (list, leaderboard, report)
# import none of them, and the CLI starts its workers before anything heavy is imported.
_LAZY = {
    **dict.fromkeys(["CNNConfig", "ConvLSTMConfig", "MLPConfig", "ResMLPConfig", "TrainConfig"], "trainables._config"),
    **dict.fromkeys(["ConfigError", "Problem", "did_you_mean"], "trainables._problems"),
    "DatasetError": "trainables.data",
    **dict.fromkeys(["TRAINABLES", "TrainableSpec", "cnn", "convlstm", "get_trainable", "mlp", "resmlp"],
                    "trainables._registry"),
    "Trial": "trainables.loop",
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
__all__ = sorted(_LAZY)
