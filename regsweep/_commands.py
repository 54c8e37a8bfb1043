"""The engine's commands: validate, run, resume, list."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from regsweep._overrides import parse_overrides


class PlainProgress:
    """One line per finished trial; no animation, fine for logs and CI."""

    def __init__(self, metric: str, stream: Any = None):
        self.metric = metric
        self.stream = stream or sys.stdout
        self.done = 0
        self.total: int | None = None
        self.stage = ""
        self.started = time.time()

    def stage_started(self, stage: str, total: int | None) -> None:
        self.stage, self.total, self.done = stage, total, 0
        print(f"[{stage}] {total if total is not None else '?'} trials", file=self.stream, flush=True)

    def __call__(self, record: dict[str, Any]) -> None:
        self.done += 1
        value = record.get("metrics", {}).get(self.metric)
        shown = f"{self.metric}={value:.4f}" if isinstance(value, float) else f"{self.metric}=-"
        total = self.total if self.total is not None else "?"
        error = f" error: {record['error']}" if record.get("error") else ""
        print(f"[{self.stage} {self.done}/{total}] {record.get('trial_name', record['trial_id'])}: "
              f"{record['status']} ({record['stopped_by']}) {shown}{error}", file=self.stream, flush=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from regsweep._validate import load_sweep

    sweep = load_sweep(args.spec, parse_overrides(args.set), smoke=args.smoke)
    print(f"{args.spec}: ok ({sweep.spec.search.algorithm}, {len(sweep.space)} parameters, "
          f"{sweep.spec.seeds} seed(s), {sweep.epochs} epochs)")
    return 0


def _attach_progress(metric: str) -> PlainProgress:
    from regsweep import _tune

    progress = PlainProgress(metric)
    _tune.set_trial_listener(progress)
    return progress


def _summarise(frame: Any, metric: str, mode: str, name: str) -> None:
    ends = frame.groupby(["stage", "trial_id"])["status"].last()
    counts = ends.value_counts().to_dict()
    print(f"sweep {name}: {len(ends)} trials " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if metric in frame and frame[metric].notna().any():
        best = frame.loc[frame[metric].idxmax() if mode == "max" else frame[metric].idxmin()]
        params = " ".join(f"{k[len('config/'):]}={best[k]}" for k in frame.columns
                          if k.startswith("config/") and best[k] == best[k] and best[k] is not None)
        print(f"best single trial: {metric} {best[metric]:.4f} with {params} seed={best['seed']} "
              f"(one seed; see the leaderboard for means over seeds)")


def cmd_run(args: argparse.Namespace) -> int:
    from regsweep._sweep import start_sweep, sweep_name
    from regsweep._validate import load_sweep

    sweep = load_sweep(args.spec, parse_overrides(args.set), smoke=args.smoke)
    progress = _attach_progress(sweep.spec.metric)
    frame = start_sweep(sweep, args.results, storage=args.storage, fresh=args.fresh,
                        on_stage=progress.stage_started, mlflow=not args.no_mlflow)
    _summarise(frame, sweep.spec.metric, sweep.spec.mode, sweep_name(sweep))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from regsweep._sweep import resume_sweep

    progress = _attach_progress("val_acc")
    sweep, frame = resume_sweep(args.name, args.results, on_stage=progress.stage_started)
    progress.metric = sweep.spec.metric
    _summarise(frame, sweep.spec.metric, sweep.spec.mode, args.name)
    return 0


def cmd_sync_mlflow(args: argparse.Namespace) -> int:
    from regsweep._sweep import sync_mlflow

    count = sync_mlflow(args.name, args.results)
    print(f"sweep {args.name}: {count} trials in MLflow")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from regsweep._sweep import list_sweeps

    rows = list_sweeps(args.results)
    if not rows:
        print(f"no sweeps in {args.results}/")
    for row in rows:
        counts = ", ".join(f"{k} {row[k]}" for k in ("completed", "stopped_early", "diverged", "error") if k in row)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["started_at"])) if row["started_at"] else "-"
        print(f"{row['name']:<28} {row['status']:<12} {row['trials']:>5} trials  {counts or '-'}  started {started}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the engine's subcommands to the CLI."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default="results", help="local results folder (default: results)")

    p = sub.add_parser("validate", help="check a sweep file and every config it can produce")
    p.add_argument("spec")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--smoke", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a sweep on Ray Tune")
    p.add_argument("spec")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a spec key (search.num_samples=8) or a fixed trainable key (epochs=5)")
    p.add_argument("--smoke", action="store_true", help="digits, at most 3 epochs and 4 samples; offline")
    p.add_argument("--storage", help="pyarrow.fs URI for checkpoints and results (e.g. s3://bucket/sweeps)")
    p.add_argument("--fresh", action="store_true", help="replace earlier results of this sweep")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="continue an interrupted sweep")
    p.add_argument("name")
    common(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("sync-mlflow", help="replay a sweep's results into MLflow (idempotent)")
    p.add_argument("name")
    common(p)
    p.set_defaults(func=cmd_sync_mlflow)

    p = sub.add_parser("list", help="sweeps and their state")
    common(p)
    p.set_defaults(func=cmd_list)
