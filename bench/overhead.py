"""Overhead: N short trials through `regsweep run` vs a plain sequential in-process Optuna loop.

Both search the same space (TPE, same seed) with the same trainable function (the MLP on digits,
fixed epochs, no early stopping). regsweep runs two trials at once (one per core, one torch thread
each); the plain loop runs one at a time with torch's default threads, as a user's script would.

    python bench/overhead.py            # N = 16 and 64 with 3-epoch trials (~65 ms), and N = 64 with 40 epochs
    python bench/overhead.py --rounds 5 # and the local executor's 3-epoch ratios as medians of 5 rounds (default 3)
    python bench/overhead.py --quick    # N = 16, one round

Bookkeeping per trial = (wall time x trials running at once - time spent inside epochs) / N,
i.e. everything that is not training: imports, validation, Ray and actor start, scheduling,
checkpoints, journal, Parquet, MLflow, shutdown. Amortised, it counts the fixed start; the marginal
figure is the slope between N = 16 and N = 64 measured here (what one more trial costs); "while trials
run" takes the same from the start of the first trial after each slot's first one to the last result, over
those trials, so it counts what each trial costs beside its epochs (building it, the search's ask and tell,
checkpoints, the driver's messages, MLflow's CPU on the same cores) and none of the start (a slot's first
trial waits for its worker, or on Ray its actor's imports; the plain loop's first trial imports torch._dynamo)
or the end. The plain loop's figures are the same with one trial at a time.
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import yaml

from pace import pace_line  # bench/, the script's own folder

EPOCHS = 3
LONG_EPOCHS = 40  # about 0.8 s per trial: where the start-up cost stops dominating
SLOTS = 2  # trials regsweep runs at once
FIXED = {"dataset": "digits", "epochs": EPOCHS, "hidden": [64, 32], "batch_size": 64}
# The runs of regsweep in a row (their keys' prefix) and how the summary names them.
VARIANTS = (("regsweep", "on Ray"), ("regsweep_no_mlflow", "on Ray --no-mlflow"), ("regsweep_joined", "Ray joined"),
            ("local", "local"), ("local_no_mlflow", "local --no-mlflow"))
SPACE = {"dropout": {"uniform": [0.0, 0.5]}, "lr": {"loguniform": [1.0e-4, 1.0e-2]}}


PLAIN = """
import json, sys, time
start = time.perf_counter()
import optuna
import trainables
optuna.logging.set_verbosity(optuna.logging.WARNING)
FIXED = json.loads(sys.argv[2])
inside, starts, insides = 0.0, [], []

def objective(trial):
    global inside
    starts.append(time.perf_counter())
    config = {**FIXED, "dropout": trial.suggest_float("dropout", 0.0, 0.5),
              "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True)}
    rows = list(trainables.mlp(config))
    insides.append(sum(r.get("epoch_seconds", 0.0) for r in rows))
    inside += insides[-1]
    return rows[-1]["val_acc"]

study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
study.optimize(objective, n_trials=int(sys.argv[1]))
end = time.perf_counter()
later = slice(1, None)  # the first trial also imports torch and torch._dynamo (its optimiser)
print(json.dumps({"wall": end - start, "inside": inside, "first": starts[0] - start,
                  "later": [end - starts[later][0], sum(insides[later]), len(insides[later])] if len(starts) > 1
                  else None}))
"""


class Run(NamedTuple):
    """One timed run: its wall seconds, the seconds spent inside epochs, when the first trial began (seconds from
    the command's start), and for the trials after each slot's first one (`later`): the seconds from the first of
    them to the last result, their seconds inside epochs and their number (None with too few trials)."""

    wall: float
    inside: float
    first_trial: float
    later: tuple[float, float, int] | None


def plain_optuna(n: int, epochs: int) -> Run:
    """The script a user writes: optuna.create_study + study.optimize over the same trainable, run as
    its own process like `regsweep run` (imports included on both sides)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PLAIN, str(n), json.dumps({**FIXED, "epochs": epochs})], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(wall, figures["inside"], figures["first"], tuple(figures["later"]) if figures["later"] else None)


def regsweep_run(n: int, epochs: int, folder: Path, mlflow: bool, ray_address: str | None = None,
                 executor: str = "ray") -> Run:
    """`regsweep run` as a user types it, in a fresh process (Ray start included, unless `ray_address`
    names a Ray that is already running). Its `later` window ends at the last epoch's report."""
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
    trials = frame.groupby("trial_id").agg(start=("attempt_started_at", "min"), inside=("epoch_seconds", "sum"))
    trials = trials.sort_values("start")
    # Each slot's first trial waits for its worker or actor to start (on Ray, to import torch): left out of `later`.
    later = trials.iloc[SLOTS:]
    window = (float(frame["reported_at"].max() - later["start"].iloc[0]), float(later["inside"].sum()),
              len(later)) if len(later) else None
    return Run(wall, float(frame["epoch_seconds"].sum()), float(trials["start"].iloc[0] - started_at), window)


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


def local_rounds(n: int, epochs: int, folder: Path, rounds: int) -> dict[str, list[float]]:
    """`rounds` more interleaved rounds of the plain loop and the local executor with and without MLflow (one run
    swings by a third on this machine); the ratios of each round."""
    ratios: dict[str, list[float]] = {"local": [], "local_no_mlflow": []}
    for _ in range(rounds):
        plain = plain_optuna(n, epochs).wall
        ratios["local"].append(regsweep_run(n, epochs, folder, mlflow=True, executor="local").wall / plain)
        ratios["local_no_mlflow"].append(regsweep_run(n, epochs, folder, mlflow=False, executor="local").wall / plain)
    return ratios


def measure(n: int, epochs: int, folder: Path, bare: bool, rounds: int = 1) -> dict:
    """One side-by-side row: the plain loop, regsweep on Ray and with the local executor, each with MLflow;
    and (if `bare`) both without MLflow and the Ray one joined to a Ray that is already running, then `rounds` - 1
    more rounds of the local executor's runs and the plain loop."""
    plain = plain_optuna(n, epochs)
    runs = {"regsweep": regsweep_run(n, epochs, folder, mlflow=True),
            "local": regsweep_run(n, epochs, folder, mlflow=True, executor="local")}
    if bare:
        runs["regsweep_no_mlflow"] = regsweep_run(n, epochs, folder, mlflow=False)
        runs["local_no_mlflow"] = regsweep_run(n, epochs, folder, mlflow=False, executor="local")
        with running_ray() as address:
            runs["regsweep_joined"] = regsweep_run(n, epochs, folder, mlflow=True, ray_address=address)
    row = {"n": n, "epochs": epochs, "plain_s": plain.wall, "plain_inside_s": plain.inside,
           "plain_bookkeeping_ms_per_trial": bookkeeping_ms(plain.wall, plain.inside, n, slots=1),
           "plain_steady_ms_per_trial": steady_ms(plain.later, slots=1)}
    for prefix, run in runs.items():
        row.update({f"{prefix}_s": run.wall, f"{prefix}_inside_s": run.inside,
                    f"{prefix}_first_trial_s": run.first_trial,
                    f"{prefix}_bookkeeping_ms_per_trial": bookkeeping_ms(run.wall, run.inside, n),
                    f"{prefix}_bookkeeping_ms_per_result": bookkeeping_ms(run.wall, run.inside, n * epochs),
                    f"{prefix}_steady_ms_per_trial": steady_ms(run.later)})
    # The names earlier rows of BENCHMARKS.md were printed with.
    row.update({"ratio": row["regsweep_s"] / plain.wall, "first_trial_s": row["regsweep_first_trial_s"],
                "local_ratio": row["local_s"] / plain.wall})
    for prefix, ratio in (("regsweep_joined", "joined_ratio"), ("local_no_mlflow", "local_no_mlflow_ratio")):
        row[ratio] = row[f"{prefix}_s"] / plain.wall if prefix in runs else None
    if bare and rounds > 1:
        more = local_rounds(n, epochs, folder, rounds - 1)
        for prefix in more:
            every = [row[f"{prefix}_ratio"], *more[prefix]]
            row[f"{prefix}_ratio_rounds"] = every
            row[f"{prefix}_ratio_median"] = statistics.median(every)
    return row


def rounds_text(row: dict, prefix: str) -> str:
    """' (median of R rounds ...)' when the row has rounds of `prefix`'s ratio."""
    every = row.get(f"{prefix}_ratio_rounds")
    if not every:
        return ""
    return f" (median of {len(every)} rounds {row[f'{prefix}_ratio_median']:.2f}x, {min(every):.2f}-{max(every):.2f}x)"


def bookkeeping_ms(wall: float, inside: float, count: int, slots: int = SLOTS) -> float:
    """Slot-milliseconds outside epochs over `wall` seconds (a whole run: fixed start included), per trial or per
    result (`count`); `slots` trials run at once (regsweep's two, the plain loop's one)."""
    return (wall * slots - inside) / count * 1e3


def steady_ms(later: tuple[float, float, int] | None, slots: int = SLOTS) -> float | None:
    """bookkeeping_ms per trial while trials run: over a Run's `later` trials (None without them)."""
    return None if later is None else bookkeeping_ms(*later, slots=slots)


def marginal(small: dict, large: dict, prefix: str = "regsweep") -> tuple[float, float]:
    """Bookkeeping of one more trial (ms), regsweep (`prefix`, one of VARIANTS') and plain: the slope between two
    sizes."""
    def slope(key: str, slots: int) -> float:
        wall, inside = (large[f"{key}{suffix}"] - small[f"{key}{suffix}"] for suffix in ("_s", "_inside_s"))
        return bookkeeping_ms(wall, inside, large["n"] - small["n"], slots=slots)

    return slope(prefix, SLOTS), slope("plain", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the local executor's runs and the plain loop at 3 epochs (1 with --quick)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give 1 or more")
    rounds = 1 if args.quick else args.rounds
    cases = [(16, EPOCHS, True)] if args.quick else [(16, EPOCHS, True), (64, EPOCHS, True), (64, LONG_EPOCHS, False)]
    print(pace_line("before"), flush=True)
    report = []
    # Both sides read the digits arrays and the seed's split that the first use on a machine prepares
    # (trainables.data): prepared here, so neither side's figure includes that one-off.
    plain_optuna(1, 1)
    with tempfile.TemporaryDirectory() as tmp:
        for n, epochs, bare in cases:
            row = measure(n, epochs, Path(tmp), bare, rounds)
            report.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print(pace_line("after"), flush=True)
    for row in report:
        bare = f"; without MLflow {row['regsweep_no_mlflow_s']:.1f}s" if row.get("regsweep_no_mlflow_s") else ""
        if row.get("regsweep_joined_s"):
            bare += (f"; joined to a running Ray {row['regsweep_joined_s']:.1f}s = {row['joined_ratio']:.2f}x")
        print(f"N={row['n']} x {row['epochs']} epochs, on Ray: regsweep {row['regsweep_s']:.1f}s vs plain Optuna loop "
              f"{row['plain_s']:.1f}s = {row['ratio']:.2f}x (target <= 0.8x at N=64); first trial began at "
              f"{row['first_trial_s']:.1f}s; bookkeeping {row['regsweep_bookkeeping_ms_per_trial']:.0f} ms/trial "
              f"amortised (target < 50), {row['regsweep_bookkeeping_ms_per_result']:.0f} ms/result{bare}")
        bare = (f"; without MLflow {row['local_no_mlflow_s']:.1f}s = {row['local_no_mlflow_ratio']:.2f}x"
                f"{rounds_text(row, 'local_no_mlflow')}" if row.get("local_no_mlflow_s") else "")
        print(f"N={row['n']} x {row['epochs']} epochs, --executor local: regsweep {row['local_s']:.1f}s = "
              f"{row['local_ratio']:.2f}x{rounds_text(row, 'local')}; first trial began at "
              f"{row['local_first_trial_s']:.1f}s; bookkeeping {row['local_bookkeeping_ms_per_trial']:.0f} ms/trial "
              f"amortised, {row['local_bookkeeping_ms_per_result']:.0f} ms/result{bare}")
        steady = ", ".join(f"{label} {row[f'{prefix}_steady_ms_per_trial']:.0f} ms" for prefix, label in VARIANTS
                           if row.get(f"{prefix}_steady_ms_per_trial") is not None)
        if steady:
            print(f"N={row['n']} x {row['epochs']} epochs, bookkeeping per trial while trials run (each slot's first "
                  f"trial left out; target < 50): {steady}; the plain loop {row['plain_steady_ms_per_trial']:.0f} ms")
    short = [row for row in report if row["epochs"] == EPOCHS]
    if len(short) == 2:
        for prefix, label in VARIANTS:
            if prefix == "regsweep_joined":
                continue
            ours, plain = marginal(*short, prefix=prefix)
            print(f"marginal bookkeeping per extra trial (N=16 -> 64), {label}: regsweep {ours:.0f} ms (target < 50), "
                  f"plain loop {plain:.0f} ms")


if __name__ == "__main__":
    main()
