"""Scale: 1,000 trials of a trainable that does no work through the engine, and the leaderboard and
report over 10,000 trials x 20 epochs.

Ray Tune's own release test runs 10,000 one-second trials on 16 CPUs in 715 s against a 625 s floor,
i.e. about 0.14 CPU-slot-seconds of overhead per trial; here, CPU-slot-seconds per no-op trial are
wall seconds x 2 cores / trials.

    python bench/scale.py            # 1,000 no-op trials (local executor, then Ray); 10,000 x 20 leaderboard and report
    python bench/scale.py --quick    # 200 no-op trials; 2,000 x 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).parent
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, str(HERE))

from pace import pace_line  # noqa: E402


def noop_trials(n: int, folder: Path, executor: str = "ray") -> float:
    from regsweep._sweep import start_sweep
    from regsweep._validate import load_sweep

    spec = folder / "noop.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "noop", "trainable": "noop_trainable:noop", "fixed": {"epochs": 1},
        "search_space": {"x": {"uniform": [0.0, 1.0]}},
        "search": {"algorithm": "random", "num_samples": n, "seed": 0},
        "resources": {"cpu": 1, "executor": executor},
    }))
    start = time.perf_counter()
    frame = start_sweep(load_sweep(spec), str(folder / "results"), mlflow=False, fresh=True)
    wall = time.perf_counter() - start
    assert frame["trial_id"].nunique() == n
    return wall


def report_scale(trials: int, folder: Path) -> tuple[float, float]:
    from leaderboard_scale import synthetic

    from regsweep._report import write_report
    from regsweep._results import write_results

    frame = synthetic(trials, 20)
    frame["train_loss"] = 0.5
    root = folder / "results" / "big"
    write_results(frame, str(root))
    (root / "sweep.json").write_text(json.dumps({
        "name": "big", "storage": str(root), "metric": "val_acc", "mode": "max", "epochs": 20, "mlflow": False,
        "spec_text": yaml.safe_dump({"name": "big", "trainable": "cnn", "hypothesis": "scale", "seeds": 3}),
        "started_at": 0, "updated_at": 1}))
    start = time.perf_counter()
    from regsweep._commands import print_leaderboard
    from rich.console import Console
    import io

    print_leaderboard(frame, "val_acc", "max", "big", console=Console(file=io.StringIO(), width=160))
    board = time.perf_counter() - start
    start = time.perf_counter()
    write_report("big", str(folder / "results"), str(folder / "reports"))
    return board, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, big = (200, 2_000) if args.quick else (1_000, 10_000)
    print(pace_line("before"), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        board_s, report_s = report_scale(big, folder)
        print(f"leaderboard over {big} trials x 20 epochs: {board_s:.2f}s; report (journal + figures): {report_s:.2f}s",
              flush=True)
        local = noop_trials(n, folder, "local")
        wall = noop_trials(n, folder)
    print(pace_line("after"), flush=True)
    print(f"{n} no-op trials, --executor local: {local:.1f}s, {local / n * 1e3:.0f} ms per trial, "
          f"{local * 2 / n:.3f} CPU-slot-s per trial", flush=True)
    print(f"{n} no-op trials on Ray: {wall:.1f}s, {wall / n * 1e3:.0f} ms per trial, "
          f"{wall * 2 / n:.3f} CPU-slot-s per trial (Ray Tune release test: ~0.14)")


if __name__ == "__main__":
    main()
