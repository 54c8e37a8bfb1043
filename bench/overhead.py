"""Overhead: N short trials through `regsweep run` vs a plain sequential in-process Optuna loop.

Both search the same space (TPE, same seed) with the same trainable function (the MLP on digits,
fixed epochs, no early stopping). regsweep runs two trials at once (one per core, one torch thread
each); the plain loop runs one at a time with torch's default threads, as a user's script would.

    python bench/overhead.py            # N = 16 and 64 with 3-epoch trials (~65 ms), and N = 64 with 40 epochs
    python bench/overhead.py --quick    # N = 16

Bookkeeping per trial = (wall time x trials running at once - time spent inside epochs) / N,
i.e. everything that is not training: imports, validation, Ray and actor start, scheduling,
checkpoints, journal, Parquet, MLflow, shutdown. Amortised, it counts the fixed start; the marginal
figure is the slope between N = 16 and N = 64 measured here (what one more trial costs).
First trial = seconds from the command's start until the first trial began training in an actor.
"Joined" runs `regsweep run` with RAY_ADDRESS naming a Ray started beforehand (as `ray start --head`), so
Ray's start and stop are not in the figure, but every sweep still starts its own worker processes.
"Local" runs `regsweep run --executor local`: the same sweep in worker processes without Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import yaml

from pace import pace_line  # bench/, the script's own folder

EPOCHS = 3
LONG_EPOCHS = 40  # about 0.8 s per trial: where the start-up cost stops dominating
SLOTS = 2  # trials regsweep runs at once
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


def plain_optuna(n: int, epochs: int) -> tuple[float, float]:
    """The script a user writes: optuna.create_study + study.optimize over the same trainable, run as
    its own process like `regsweep run` (imports included on both sides)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PLAIN, str(n), json.dumps({**FIXED, "epochs": epochs})], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    return wall, json.loads(done.stdout.strip().splitlines()[-1])["inside"]


def regsweep_run(n: int, epochs: int, folder: Path, mlflow: bool, ray_address: str | None = None,
                 executor: str = "ray") -> tuple[float, float, float]:
    """`regsweep run` as a user types it, in a fresh process (Ray start included, unless `ray_address`
    names a Ray that is already running). Returns the wall time, the seconds spent inside epochs and when
    the first trial began (from the command's start)."""
    name = f"overhead{n}x{epochs}"
    spec = folder / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({
        "name": name, "trainable": "mlp", "fixed": {**FIXED, "epochs": epochs}, "search_space": SPACE,
        "search": {"algorithm": "optuna", "num_samples": n, "seed": 0, "max_concurrent": 2},
    }))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}
    if ray_address:
        env["RAY_ADDRESS"] = ray_address
    command = [sys.executable, "-m", "regsweep", "run", str(spec), "--results", str(folder / "results"), "--fresh",
               "--executor", executor]
    if not mlflow:
        command.append("--no-mlflow")
    started_at, start = time.time(), time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    import pandas as pd

    frame = pd.read_parquet(folder / "results" / name / "results.parquet")
    return wall, float(frame["epoch_seconds"].sum()), float(frame["attempt_started_at"].min() - started_at)


RAY_HOLDER = """
import os, sys, ray
os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "1"
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # until the benchmark closes it; then this Ray (and only this one) stops
"""


@contextlib.contextmanager
def running_ray() -> Iterator[str]:
    """A 2-CPU Ray started beforehand and kept running, as `ray start --head` would; yields its address."""
    # ray.init's own local Ray turns on token authentication, which a second driver cannot pass;
    # `ray start --head` leaves it off, as here.
    holder = subprocess.Popen([sys.executable, "-c", RAY_HOLDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    try:
        yield holder.stdout.readline().strip()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def measure(n: int, epochs: int, folder: Path, bare: bool) -> dict:
    """One side-by-side row: the plain loop, regsweep on Ray and with the local executor, each with MLflow;
    and (if `bare`) both without MLflow and the Ray one joined to a Ray that is already running."""
    plain_wall, plain_inside = plain_optuna(n, epochs)
    ours_wall, ours_inside, first_trial = regsweep_run(n, epochs, folder, mlflow=True)
    local_wall, local_inside, local_first = regsweep_run(n, epochs, folder, mlflow=True, executor="local")
    bare_wall = regsweep_run(n, epochs, folder, mlflow=False)[0] if bare else None
    local_bare_wall = regsweep_run(n, epochs, folder, mlflow=False, executor="local")[0] if bare else None
    joined_wall = None
    if bare:
        with running_ray() as address:
            joined_wall = regsweep_run(n, epochs, folder, mlflow=True, ray_address=address)[0]
    return {
        "n": n, "epochs": epochs, "plain_s": plain_wall, "regsweep_s": ours_wall, "regsweep_no_mlflow_s": bare_wall,
        "regsweep_joined_s": joined_wall, "joined_ratio": joined_wall / plain_wall if joined_wall else None,
        "ratio": ours_wall / plain_wall, "first_trial_s": first_trial,
        "local_s": local_wall, "local_ratio": local_wall / plain_wall, "local_first_trial_s": local_first,
        "local_no_mlflow_s": local_bare_wall,
        "local_no_mlflow_ratio": local_bare_wall / plain_wall if local_bare_wall else None,
        "plain_inside_s": plain_inside, "regsweep_inside_s": ours_inside, "local_inside_s": local_inside,
        "plain_bookkeeping_ms_per_trial": (plain_wall - plain_inside) / n * 1e3,
        "regsweep_bookkeeping_ms_per_trial": bookkeeping_ms(ours_wall, ours_inside, n),
        "regsweep_bookkeeping_ms_per_result": bookkeeping_ms(ours_wall, ours_inside, n * epochs),
        "local_bookkeeping_ms_per_trial": bookkeeping_ms(local_wall, local_inside, n),
        "local_bookkeeping_ms_per_result": bookkeeping_ms(local_wall, local_inside, n * epochs),
    }


def bookkeeping_ms(wall: float, inside: float, count: int) -> float:
    """regsweep's slot-seconds outside epochs, fixed start included, per trial or per result (`count`)."""
    return (wall * SLOTS - inside) / count * 1e3


def marginal(small: dict, large: dict, prefix: str = "regsweep") -> tuple[float, float]:
    """Bookkeeping of one more trial (ms), regsweep (`prefix` regsweep: on Ray; local) and plain: the slope
    between two sizes."""
    extra = large["n"] - small["n"]
    ours = ((large[f"{prefix}_s"] - small[f"{prefix}_s"]) * SLOTS
            - (large[f"{prefix}_inside_s"] - small[f"{prefix}_inside_s"])) / extra * 1e3
    plain = ((large["plain_s"] - small["plain_s"]) - (large["plain_inside_s"] - small["plain_inside_s"])) / extra * 1e3
    return ours, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cases = [(16, EPOCHS, True)] if args.quick else [(16, EPOCHS, True), (64, EPOCHS, True), (64, LONG_EPOCHS, False)]
    print(pace_line("before"), flush=True)
    report = []
    # Both sides read the digits arrays and the seed's split that the first use on a machine prepares
    # (trainables.data): prepared here, so neither side's figure includes that one-off.
    plain_optuna(1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        for n, epochs, bare in cases:
            row = measure(n, epochs, Path(tmp), bare)
            report.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print(pace_line("after"), flush=True)
    for row in report:
        bare = f"; without MLflow {row['regsweep_no_mlflow_s']:.1f}s" if row["regsweep_no_mlflow_s"] else ""
        if row["regsweep_joined_s"]:
            bare += (f"; joined to a running Ray {row['regsweep_joined_s']:.1f}s = {row['joined_ratio']:.2f}x")
        print(f"N={row['n']} x {row['epochs']} epochs, on Ray: regsweep {row['regsweep_s']:.1f}s vs plain Optuna loop "
              f"{row['plain_s']:.1f}s = {row['ratio']:.2f}x (target <= 0.8x at N=64); first trial began at "
              f"{row['first_trial_s']:.1f}s; bookkeeping {row['regsweep_bookkeeping_ms_per_trial']:.0f} ms/trial "
              f"amortised (target < 50), {row['regsweep_bookkeeping_ms_per_result']:.0f} ms/result{bare}")
        bare = (f"; without MLflow {row['local_no_mlflow_s']:.1f}s = {row['local_no_mlflow_ratio']:.2f}x"
                if row["local_no_mlflow_s"] else "")
        print(f"N={row['n']} x {row['epochs']} epochs, --executor local: regsweep {row['local_s']:.1f}s = "
              f"{row['local_ratio']:.2f}x; first trial began at {row['local_first_trial_s']:.1f}s; bookkeeping "
              f"{row['local_bookkeeping_ms_per_trial']:.0f} ms/trial amortised, "
              f"{row['local_bookkeeping_ms_per_result']:.0f} ms/result{bare}")
    short = [row for row in report if row["epochs"] == EPOCHS]
    if len(short) == 2:
        for prefix, label in (("regsweep", "on Ray"), ("local", "--executor local")):
            ours, plain = marginal(*short, prefix=prefix)
            print(f"marginal bookkeeping per extra trial (N=16 -> 64), {label}: regsweep {ours:.0f} ms (target < 50), "
                  f"plain loop {plain:.0f} ms")


if __name__ == "__main__":
    main()
