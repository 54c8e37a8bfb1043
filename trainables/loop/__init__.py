"""The training loop: one resumable Trial per config, no Ray required."""

from trainables.loop._export import export_model
from trainables.loop._forecast import ForecastTrial
from trainables.loop._regression import RegressionTrial
from trainables.loop._trial import Splits, Trial

__all__ = ["ForecastTrial", "RegressionTrial", "Splits", "Trial", "export_model"]
