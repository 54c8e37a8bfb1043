"""Leaderboard over a large sweep: 10,000 trials x 20 epochs (200,000 rows), build and render.

    python bench/leaderboard_scale.py           # 10,000 trials x 20 epochs
    python bench/leaderboard_scale.py --quick   # 1,000 trials x 20 epochs
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import pandas as pd
from rich.console import Console

from regsweep._leaderboard import build_leaderboard
from regsweep._render import render_markdown, render_rich


def synthetic(trials: int, epochs: int, seeds: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    configs = -(-trials // seeds)
    cid = np.repeat(np.arange(trials) // seeds, epochs)
    trial = np.repeat(np.arange(trials), epochs)
    epoch = np.tile(np.arange(1, epochs + 1), trials)
    dropout = np.round(rng.uniform(0, 0.7, configs), 3)[cid]
    norm = np.array(["none", "batch", "instance", "layer", "group"])[rng.integers(0, 5, configs)][cid]
    layers = rng.integers(1, 5, configs)[cid]
    val = 0.9 - 0.1 * dropout + rng.normal(0, 0.01, len(trial)) - 0.2 / epoch
    return pd.DataFrame({
        "stage": "search", "trial_id": trial.astype(str), "config_id": cid.astype(str), "seed": trial % seeds,
        "config/dropout": dropout, "config/norm": norm, "config/layers": layers, "epoch": epoch,
        "val_acc": val, "val_loss": 1 - val, "train_loss": 0.9 - val, "gap": 0.1, "params": 50_000,
        "best_epoch": epochs, "status": "completed", "stopped_by": "completed",
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    trials, epochs = (1_000, 20) if args.quick else (10_000, 20)
    frame = synthetic(trials, epochs)
    start = time.perf_counter()
    board = build_leaderboard(frame, "val_acc", "max", "scale")
    built = time.perf_counter() - start
    console = Console(file=io.StringIO(), width=160)
    console.print(render_rich(board))
    render_markdown(board)
    total = time.perf_counter() - start
    print(f"{trials} trials x {epochs} epochs = {len(frame):,} rows: build {built:.3f}s, "
          f"build + render (Rich and Markdown) {total:.3f}s (target < 1 s)")


if __name__ == "__main__":
    main()
