"""Bookkeeping cost per reported result: the driver's journal write and the MLflow push.

Synthetic trials (no training, no Ray) so only the bookkeeping is timed. The journal write is what
Ray Tune's driver loop waits for; the MLflow push runs in a background thread, and is shown per
result as if it were in the loop.

    python bench/tracking_overhead.py            # 200 trials x 20 epochs
    python bench/tracking_overhead.py --quick    # 50 trials x 10 epochs
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from regsweep._mlflow import MlflowSync
from regsweep._results import Journal, compact
from regsweep._trial_log import update_trials


def records(trials: int, epochs: int):
    for epoch in range(1, epochs + 1):
        for t in range(trials):
            yield {"kind": "epoch", "stage": "search", "trial_id": f"t{t:05d}", "config_id": f"c{t // 3}",
                   "seed": t % 3, "trial_name": f"dropout={t / trials:.3f} seed={t % 3}",
                   "config/dropout": t / trials, "epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.9,
                   "val_loss": 1.1 / epoch, "val_acc": 0.88, "gap": 0.1, "lr": 1e-3, "epoch_seconds": 0.1,
                   "samples_per_second": 1e4, "training_iteration": epoch, "time_total_s": epoch * 0.1}
    for t in range(trials):
        yield {"kind": "end", "stage": "search", "trial_id": f"t{t:05d}", "config_id": f"c{t // 3}",
               "seed": t % 3, "trial_name": "", "status": "completed", "stopped_by": "completed",
               "params": 1000, "best_val_acc": 0.9, "epochs_trained": epochs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    trials, epochs = (50, 10) if args.quick else (200, 20)
    data = list(records(trials, epochs))
    results = sum(r["kind"] == "epoch" for r in data)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        journal = Journal(root / "journal.jsonl")
        start = time.perf_counter()
        for record in data:
            journal.write(dict(record))
        journal.close()
        journal_s = time.perf_counter() - start

        start = time.perf_counter()
        compact(root / "journal.jsonl", str(root / "results"))
        parquet_s = time.perf_counter() - start

        # Worst case: the follower pushes each epoch of each trial separately (long epochs, > 2 s).
        sync = MlflowSync(f"sqlite:///{root / 'mlflow.db'}", "bench-epoch", {"epochs": epochs})
        sync.ensure_parent(None, "bench", {"a": 1}, {}, None)
        trials_log: dict = {}
        start = time.perf_counter()
        for wave in range(epochs + 1):
            chunk = data[wave * trials:(wave + 1) * trials] if wave < epochs else data[epochs * trials:]
            changed = update_trials(trials_log, [dict(r) for r in chunk])
            sync.push([trials_log[k] for k in sorted(changed)])
        mlflow_s = time.perf_counter() - start
        # Short trials: a whole trial arrives within one 2 s follower interval, one batch per trial.
        sync = MlflowSync(f"sqlite:///{root / 'mlflow.db'}", "bench-trial", {"epochs": epochs})
        sync.ensure_parent(None, "bench", {"a": 1}, {}, None)
        trials_log = {}
        update_trials(trials_log, [dict(r) for r in data])
        start = time.perf_counter()
        sync.push(trials_log.values())
        batched_s = time.perf_counter() - start
    print(f"{trials} trials x {epochs} epochs = {results} results")
    print(f"  journal write (driver loop):   {journal_s / results * 1e3:.3f} ms/result")
    print(f"  Parquet compaction (at end):   {parquet_s / results * 1e3:.3f} ms/result ({parquet_s:.2f}s total)")
    print(f"  MLflow, one push per epoch:    {mlflow_s / results * 1e3:.3f} ms/result "
          f"({mlflow_s / trials * 1e3:.1f} ms/trial; background thread)")
    print(f"  MLflow, one push per trial:    {batched_s / results * 1e3:.3f} ms/result "
          f"({batched_s / trials * 1e3:.1f} ms/trial; background thread)")
    print(f"bookkeeping per result on the driver loop: {journal_s / results * 1e3:.3f} ms; "
          f"all bookkeeping: {(journal_s + parquet_s + mlflow_s) / results * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
