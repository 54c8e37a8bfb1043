"""Search efficiency: trial-epochs each search needs to come within 0.5 points of the grid's best.

The same space (MLP on digits: dropout x lr x width), as a full grid, and as random, Optuna TPE and
Optuna TPE + ASHA with as many samples as the grid has points; each non-grid search averaged over 3
search seeds. Counted: every epoch trained, in the order the results arrived, until the first result
whose val_acc is within 0.5 points of the best val_acc of the full grid.

    python bench/search_efficiency.py            # 36-point grid, 8 epochs
    python bench/search_efficiency.py --quick    # 12-point grid, 4 epochs
    python bench/search_efficiency.py --executor local   # the same without Ray (Optuna's pruner for ASHA)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///" + tempfile.mkdtemp() + "/mlflow.db")


def space(quick: bool) -> dict[str, list]:
    if quick:
        return {"dropout": [0.0, 0.3], "lr": [1e-4, 1e-3, 1e-2], "width": [32, 128]}
    return {"dropout": [0.0, 0.2, 0.5], "lr": [1e-4, 3e-4, 1e-3, 3e-3], "width": [16, 64, 256]}


def spec_for(name: str, algorithm: str, values: dict[str, list], epochs: int, seed: int, asha: bool) -> dict:
    kind = "grid" if algorithm == "grid" else "choice"
    points = 1
    for v in values.values():
        points *= len(v)
    search_space = {"dropout": {kind: values["dropout"]}, "lr": {kind: values["lr"]},
                    "hidden": {kind: [[w] for w in values["width"]]}}
    spec = {"name": name, "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": epochs, "batch_size": 64},
            "search_space": search_space,
            "search": {"algorithm": algorithm, "seed": seed, "max_concurrent": 2,
                       **({} if algorithm == "grid" else {"num_samples": points})}}
    if asha:
        spec["scheduler"] = {"type": "asha", "grace_period": 1, "reduction_factor": 3}
    return spec


def epochs_to_target(frame, target: float) -> int | None:
    ordered = frame.sort_values("reported_at")
    for count, value in enumerate(ordered["val_acc"], start=1):
        if value >= target:
            return count
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--executor", choices=["ray", "local"], default="ray",
                        help="local: Optuna's SuccessiveHalvingPruner stands in for Ray Tune's ASHAScheduler")
    args = parser.parse_args()
    from regsweep._sweep import start_sweep
    from regsweep._validate import load_sweep

    values, epochs = space(args.quick), 4 if args.quick else 8
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def run(name: str, algorithm: str, seed: int = 0, asha: bool = False):
            path = folder / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec_for(name, algorithm, values, epochs, seed, asha)))
            return start_sweep(load_sweep(path, {"resources.executor": args.executor}), str(folder / "results"),
                               mlflow=False)

        grid = run("grid", "grid")
        best = grid.groupby("trial_id")["val_acc"].max().max()
        target = best - 0.005
        grid_epochs = epochs_to_target(grid, target)
        total_grid = len(grid)
        print(f"grid: {grid['trial_id'].nunique()} points x {epochs} epochs = {total_grid} trial-epochs; "
              f"best val_acc {best:.4f}; target {target:.4f}; the grid itself reached it after {grid_epochs}")
        results = {}
        for label, algorithm, asha in (("random", "random", False), ("optuna", "optuna", False),
                                       ("optuna+asha", "optuna", True)):
            needed, spent, missed = [], [], 0
            for seed in (1, 2, 3):
                frame = run(f"{label.replace('+', '_')}_{seed}", algorithm, seed, asha)
                reached = epochs_to_target(frame, target)
                needed.append(reached if reached is not None else len(frame))
                spent.append(len(frame))
                if reached is None:
                    missed += 1
                    print(f"  {label} seed {seed}: never reached the target in {len(frame)} trial-epochs")
            results[label] = (statistics.mean(needed), statistics.mean(spent), missed)
            # A seed that never reached the target counts what it spent: the mean is then a lower bound.
            bound = f"; {missed} never reached it, so at least this" if missed else ""
            print(f"{label}: {results[label][0]:.0f} trial-epochs to the target (mean of 3 seeds{bound}; "
                  f"{results[label][1]:.0f} spent in all) = {results[label][0] / total_grid:.0%} of the full grid",
                  flush=True)
    ratio, missed = results["optuna+asha"][0] / total_grid, results["optuna+asha"][2]
    bound = f"at least {ratio:.0%} ({missed} of 3 seeds never reached the target)" if missed else f"{ratio:.0%}"
    print(f"[{args.executor}] optuna+asha needs {bound} of the grid's {total_grid} trial-epochs (target < 25%); "
          f"{time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
