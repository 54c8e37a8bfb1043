"""The overhead benchmark's N x 3 sweep pinned to a few cores (CPU affinity, as `taskset`), one core set after another.

On two cores the with-MLflow sweep has no spare core for MLflow's CPU (BENCHMARKS.md, session 12): its logging
comes out of the trials' cores. This runs the same sweep with the cores given, so a machine with more cores
shows what a third and fourth core change. Each round runs, on each core set, the plain Optuna loop and
`regsweep run` (local executor with and without MLflow, and on Ray with MLflow); the figures are medians over
the rounds, as ratios to the plain loop of the same core set.

    python bench/overhead_cores.py --cores 0,1 --cores 0-3      # on a machine with 4 or more cores
    python bench/overhead_cores.py --quick                       # one round of N = 16 on core 0 and on cores 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead  # noqa: E402

RUNS = ("plain", "local", "local_no_mlflow", "ray")


def core_list(text: str) -> set[int]:
    """taskset's core-list syntax: "0,1", "0-3", "0-1,4"."""
    cores: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


def one(run: str, n: int, folder: Path) -> float:
    """Wall seconds of one run of `run` (in RUNS), in this process's cores."""
    if run == "plain":
        return overhead.plain_optuna(n, overhead.EPOCHS)[0]
    executor = "ray" if run == "ray" else "local"
    return overhead.regsweep_run(n, overhead.EPOCHS, folder, mlflow=run != "local_no_mlflow", executor=executor)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", action="append", help="a taskset core list, e.g. 0,1 or 0-3 (repeatable)")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray run")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--one", nargs=4, metavar=("CORES", "RUN", "N", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cores, run, n, folder = args.one
        os.sched_setaffinity(0, core_list(cores))  # every process the run starts inherits it
        print(json.dumps({"wall": one(run, int(n), Path(folder))}))
        return
    if args.quick:
        args.cores, args.trials, args.rounds = args.cores or ["0", "0,1"], 16, 1
    core_sets = args.cores or ["0,1", "0-3"]
    available = os.sched_getaffinity(0)
    for cores in core_sets:
        try:
            wanted = core_list(cores)
        except ValueError:
            parser.error(f"--cores {cores!r}: not a core list; give one like 0,1 or 0-3")
        if not wanted or not wanted <= available:
            parser.error(f"--cores {cores!r}: this process may use cores {sorted(available)}; pick among them")
    runs = [run for run in RUNS if not (args.no_ray and run == "ray")]
    overhead.plain_optuna(1, 1)  # prepares the data cache both sides read, outside the timed runs
    walls: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for cores in core_sets:
                for run in runs:
                    done = subprocess.run([sys.executable, __file__, "--one", cores, run, str(args.trials), tmp],
                                          check=True, capture_output=True, text=True)
                    wall = json.loads(done.stdout.strip().splitlines()[-1])["wall"]
                    walls.setdefault((cores, run), []).append(wall)
                    print(json.dumps({"round": round_, "cores": cores, "run": run, "wall": round(wall, 2)}), flush=True)
    medians = {key: statistics.median(values) for key, values in walls.items()}
    for cores in core_sets:
        plain = medians[(cores, "plain")]
        figures = ", ".join(f"{run} {medians[(cores, run)]:.1f} s = {medians[(cores, run)] / plain:.2f}x"
                            for run in runs[1:])
        print(f"cores {cores}: N={args.trials} x {overhead.EPOCHS} epochs, plain loop {plain:.1f} s; {figures} "
              f"(medians of {args.rounds}; target <= 0.8x)")


if __name__ == "__main__":
    main()
