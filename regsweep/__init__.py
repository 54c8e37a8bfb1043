"""regsweep: declarative regularization sweeps for PyTorch on Ray Tune, Optuna and MLflow."""

__version__ = "0.1.0"
