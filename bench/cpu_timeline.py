"""How busy the machine's cores are while one command runs: /proc/stat sampled every 20 ms, shown per
quarter second, and the average over the run (Linux only). With --results, also how long the sweep's
trials took and how long a worker waited between two of its trials (from the Parquet table).

    python bench/cpu_timeline.py -- python -m regsweep run SPEC --executor local --fresh
    python bench/cpu_timeline.py --results results/NAME/results.parquet -- python -m regsweep run ...

The numbers in BENCHMARKS.md's session 12 paragraph came from this. It measures the whole machine, so run
nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time

BIN_S = 0.25
SAMPLE_S = 0.02


def _cpu_ticks() -> tuple[int, int]:
    """(all ticks, idle ticks) of the machine since boot, summed over its cores."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return sum(values), values[3] + values[4]  # idle + iowait


def busy_cores(command: list[str]) -> tuple[float, list[tuple[float, float]], float]:
    """Run `command`; its wall time, (bin start, busy cores) per BIN_S, and the average busy cores."""
    samples: list[tuple[float, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), *_cpu_ticks()))
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    finally:  # a failed command must not leave the sampler running (it would keep this script alive)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    cores = os.cpu_count() or 1
    bins: dict[int, list[int]] = {}
    for (at, total_a, idle_a), (_, total_b, idle_b) in zip(samples, samples[1:]):
        if 0 <= at - start <= wall:
            ticks = bins.setdefault(int((at - start) / BIN_S), [0, 0])
            ticks[0] += total_b - total_a
            ticks[1] += idle_b - idle_a
    timeline = [(b * BIN_S, cores * (1 - idle / total)) for b, (total, idle) in sorted(bins.items()) if total]
    total, idle = (sum(t[i] for t in bins.values()) for i in (0, 1))
    return wall, timeline, cores * (1 - idle / total) if total else 0.0


def trial_waits(results: str, slots: int = 2) -> tuple[float, float, float]:
    """Mean trial span, mean time inside epochs, and mean wait of a worker between two trials (seconds).
    A trial's worker is not recorded, so each trial is matched to the slot that ended last before it began."""
    import pandas as pd

    frame = pd.read_parquet(results)
    trials = frame.groupby(["stage", "trial_id"]).agg(start=("attempt_started_at", "min"),
                                                      end=("reported_at", "max"),
                                                      inside=("epoch_seconds", "sum")).sort_values("start")
    ends: list[float] = []
    waits = []
    for begun, ended in zip(trials["start"], trials["end"]):
        earlier = [e for e in ends if e <= begun]
        if len(ends) >= slots and earlier:
            waits.append(begun - max(earlier))
            ends.remove(max(earlier))
        ends.append(ended)
    return float((trials["end"] - trials["start"]).mean()), float(trials["inside"].mean()), statistics.mean(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", help="the sweep's results.parquet, read after the command")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    wall, timeline, average = busy_cores(command)
    print(" ".join(f"{at:.2f}:{busy:.2f}" for at, busy in timeline))
    if args.results:
        span, inside, wait = trial_waits(args.results)
        print(f"trials: {span * 1000:.1f} ms each, {inside * 1000:.1f} ms inside epochs; "
              f"a worker waited {wait * 1000:.1f} ms between trials")
    print(f"wall {wall:.2f} s; busy cores {average:.2f} of {os.cpu_count()}")


if __name__ == "__main__":
    main()
