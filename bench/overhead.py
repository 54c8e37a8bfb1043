"""Overhead: N short trials through `regsweep run` vs a plain sequential in-process Optuna loop.

Both search the same space (TPE, same seed) with the same trainable function (the MLP on digits,
fixed epochs, no early stopping). regsweep runs two trials at once (one per core, one torch thread
each); the plain loop runs one at a time with torch's default threads, as a user's script would.

    python bench/overhead.py            # N = 16 and N = 64
    python bench/overhead.py --quick    # N = 16

Bookkeeping per trial = (wall time x trials running at once - time spent inside epochs) / N,
i.e. everything that is not training: Ray and actor start, scheduling, checkpoints, journal,
Parquet, MLflow. The Ray start is counted in the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

EPOCHS = 3
FIXED = {"dataset": "digits", "epochs": EPOCHS, "hidden": [64, 32], "batch_size": 64}
SPACE = {"dropout": {"uniform": [0.0, 0.5]}, "lr": {"loguniform": [1.0e-4, 1.0e-2]}}


PLAIN = """
import json, sys, time
start = time.perf_counter()
import optuna
import trainables
optuna.logging.set_verbosity(optuna.logging.WARNING)
FIXED = json.loads(sys.argv[2])
inside = 0.0

def objective(trial):
    global inside
    config = {**FIXED, "dropout": trial.suggest_float("dropout", 0.0, 0.5),
              "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}
    rows = list(trainables.mlp(config))
    inside += sum(r.get("epoch_seconds", 0.0) for r in rows)
    return rows[-1]["val_acc"]

study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(objective, n_trials=int(sys.argv[1]))
print(json.dumps({"wall": time.perf_counter() - start, "inside": inside}))
"""


def plain_optuna(n: int) -> tuple[float, float]:
    """The script a user writes: optuna.create_study + study.optimize over the same trainable, run as
    its own process like `regsweep run` (imports included on both sides)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PLAIN, str(n), json.dumps(FIXED)], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, json.loads(done.stdout.strip().splitlines()[-1])["inside"]


def regsweep_run(n: int, folder: Path, mlflow: bool) -> tuple[float, float]:
    """`regsweep run` as a user types it, in a fresh process (Ray start included)."""
    spec = folder / f"overhead{n}.yaml"
    spec.write_text(yaml.safe_dump({
        "name": f"overhead{n}", "trainable": "mlp", "fixed": FIXED, "search_space": SPACE,
        "search": {"algorithm": "optuna", "num_samples": n, "seed": 0, "max_concurrent": 2},
    }))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    command = [sys.executable, "-m", "regsweep", "run", str(spec), "--results", str(folder / "results"), "--fresh"]
    if not mlflow:
        command.append("--no-mlflow")
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    import pandas as pd

    frame = pd.read_parquet(folder / "results" / f"overhead{n}" / "results.parquet")
    return wall, float(frame["epoch_seconds"].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [16] if args.quick else [16, 64]
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in sizes:
            plain_wall, plain_inside = plain_optuna(n)
            ours_wall, ours_inside = regsweep_run(n, folder, mlflow=True)
            bare_wall, _ = regsweep_run(n, folder, mlflow=False)
            results = n * EPOCHS
            row = {
                "n": n, "plain_s": plain_wall, "regsweep_s": ours_wall, "regsweep_no_mlflow_s": bare_wall,
                "ratio": ours_wall / plain_wall,
                "plain_bookkeeping_ms_per_trial": (plain_wall - plain_inside) / n * 1e3,
                "regsweep_bookkeeping_ms_per_trial": (ours_wall * 2 - ours_inside) / n * 1e3,
                "regsweep_bookkeeping_ms_per_result": (ours_wall * 2 - ours_inside) / results * 1e3,
            }
            report.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    for row in report:
        print(f"N={row['n']}: regsweep {row['regsweep_s']:.1f}s vs plain Optuna loop {row['plain_s']:.1f}s = "
              f"{row['ratio']:.2f}x (target <= 0.8x at N=64); bookkeeping "
              f"{row['regsweep_bookkeeping_ms_per_trial']:.0f} ms/trial (target < 50), "
              f"{row['regsweep_bookkeeping_ms_per_result']:.0f} ms/result; without MLflow {row['regsweep_no_mlflow_s']:.1f}s")


if __name__ == "__main__":
    main()
