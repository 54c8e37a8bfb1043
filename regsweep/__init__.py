"""regsweep: declarative regularization sweeps for PyTorch on Ray Tune, Optuna and MLflow.

The command line (`regsweep run`, `regsweep leaderboard`, ...) is the main way in; the same steps are
plain functions here::

    import regsweep

    sweep = regsweep.load_sweep("sweeps/dropout.yaml", {"seeds": 2}, smoke=True)  # SpecError if invalid
    frame = regsweep.start_sweep(sweep, fresh=True)       # every epoch of every trial, one row each
    board = regsweep.build_leaderboard(frame, sweep.spec.metric, sweep.spec.mode, "dropout")
    print(regsweep.render_markdown(board))

A script that runs sweeps with the local executor needs the `if __name__ == "__main__":` guard, as
any multiprocessing program.
"""

from __future__ import annotations

from trainables._lazy import lazy_names

__version__ = "0.1.0"

# Each name loads its module on first use: `import regsweep` stays cheap, and reading results
# (list_sweeps, read_results, build_leaderboard) never imports Ray or torch.
_LAZY = {
    "SpecError": "regsweep._spec",
    "Sweep": "regsweep._validate",
    "load_sweep": "regsweep._validate",
    "start_sweep": "regsweep._sweep",
    "resume_sweep": "regsweep._sweep",
    "sync_mlflow": "regsweep._sweep",
    "SweepStateError": "regsweep._state",
    "list_sweeps": "regsweep._state",
    "read_results": "regsweep._results",
    "Leaderboard": "regsweep._leaderboard",
    "build_leaderboard": "regsweep._leaderboard",
    "render_markdown": "regsweep._render",
    "render_rich": "regsweep._render",
    "write_report": "regsweep._report",
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
__all__ = ["__version__", *_LAZY]
