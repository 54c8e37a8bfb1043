"""The engine's commands: validate, run, resume, list."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from regsweep._overrides import UsageError, parse_overrides


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
        if record.get("kind") != "end":
            return
        self.done += 1
        value = record.get("metrics", {}).get(self.metric)
        shown = f"{self.metric}={value:.4f}" if isinstance(value, float) else f"{self.metric}=-"
        total = self.total if self.total is not None else "?"
        error = f" error: {record['error']}" if record.get("error") else ""
        # What stopped the trial, where its status does not already say it: "stopped_early (asha@2)".
        stopped_by = record.get("stopped_by")
        why = f" ({stopped_by})" if stopped_by and stopped_by != record["status"] else ""
        print(f"[{self.stage} {self.done}/{total}] {record.get('trial_name', record['trial_id'])}: "
              f"{record['status']}{why} {shown}{error}", file=self.stream, flush=True)


def cmd_validate(args: argparse.Namespace) -> int:
    from regsweep._validate import load_sweep

    sweep = load_sweep(args.spec, parse_overrides(args.set), smoke=args.smoke)
    counts = ", ".join(_count(n, noun) for n, noun in ((len(sweep.space), "parameter"), (sweep.spec.seeds, "seed"),
                                                         (sweep.epochs, "epoch")))
    print(f"{args.spec}: ok ({sweep.spec.search.algorithm}, {counts})")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _summarise(frame: Any, name: str) -> None:
    ends = frame.groupby(["stage", "trial_id"])["status"].last()
    counts = ends.value_counts().to_dict()
    print(f"sweep {name}: {len(ends)} trials " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
          flush=True)


def _attach_view(metric: str, mode: str, epochs: int, console: Any = None) -> Any:
    """Rich Live on a terminal; one plain line per finished trial otherwise (CI, log files)."""
    from rich.console import Console

    from regsweep._live import LiveView
    from regsweep._record import set_trial_listener

    console = console or Console()
    view = LiveView(metric, mode, epochs, console) if console.is_terminal else PlainProgress(metric)
    set_trial_listener(view)
    return view


def _finish_view(view: Any) -> None:
    from regsweep._record import set_trial_listener

    if hasattr(view, "stop"):
        view.stop()
    set_trial_listener(None)


def _stop_ray() -> None:
    """Explicitly, not from the interpreter's exit hooks, which take seconds longer."""
    ray = sys.modules.get("ray")  # the local executor never imports it
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def print_leaderboard(frame: Any, metric: str, mode: str, name: str, top: int = 10, fmt: str = "table",
                      console: Any = None) -> None:
    from rich.console import Console

    from regsweep._leaderboard import build_leaderboard
    from regsweep._render import render_csv, render_json, render_markdown, render_rich

    board = build_leaderboard(frame, metric, mode, name, top=top)
    if fmt == "table":
        if console is None:
            console = Console()
            if not console.is_terminal:
                console = Console(width=160)  # a log file is not 80 columns wide
        console.print(render_rich(board))
    else:
        renderer = {"markdown": render_markdown, "csv": render_csv, "json": render_json}[fmt]
        sys.stdout.write(renderer(board))


def start_workers_early(args: argparse.Namespace) -> None:
    """Start the workers' fork server now, so their imports (torch and the trainables) run in their own process
    while this one validates, when `regsweep run` will need a worker: the local executor's trials, or under Ray
    the checks of a built-in trainable's models and the best model's export. A first look at --executor,
    --set and the spec; validation says later what is wrong, if anything."""
    try:
        overrides = _run_overrides(args)
        from regsweep._spec import read_yaml

        raw = read_yaml(Path(args.spec))
        executor = overrides.get("resources.executor", (raw.get("resources") or {}).get("executor", "ray"))
        trainable = overrides.get("trainable", raw.get("trainable"))
    except Exception:  # a bad flag, an unreadable or partial spec: reported by the real parse
        return
    # A trainable of the user's (package.module:function) has no models to check and no best model to write.
    if executor == "local" or (isinstance(trainable, str) and ":" not in trainable):
        from regsweep._local_worker import start_fork_server

        start_fork_server()


def _run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The spec keys `regsweep run` changes: --set's, and --executor's, which wins over a --set of it."""
    overrides = parse_overrides(args.set)
    if args.executor:
        overrides["resources.executor"] = args.executor
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    from regsweep._sweep import start_sweep, sweep_name
    from regsweep._validate import load_sweep

    # The models are checked in a worker (the local executor's first; under Ray a helper), so this process imports
    # no torch.
    sweep = load_sweep(args.spec, _run_overrides(args), smoke=args.smoke, check_models=False)
    view = _attach_view(sweep.spec.metric, sweep.spec.mode, sweep.epochs)
    try:
        frame = start_sweep(sweep, args.results, storage=args.storage, fresh=args.fresh,
                            on_stage=view.stage_started, mlflow=not args.no_mlflow)
    finally:
        _finish_view(view)
        _stop_ray()
    name = sweep_name(sweep)
    _summarise(frame, name)
    print_leaderboard(frame, sweep.spec.metric, sweep.spec.mode, name)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from regsweep._sweep import open_sweep, resume_sweep

    sweep, _, _ = open_sweep(args.name, args.results, check_models=False)  # for the view; resume_sweep checks
    view = _attach_view(sweep.spec.metric, sweep.spec.mode, sweep.epochs)
    try:
        sweep, frame = resume_sweep(args.name, args.results, on_stage=view.stage_started)
    finally:
        _finish_view(view)
        _stop_ray()
    _summarise(frame, args.name)
    print_leaderboard(frame, sweep.spec.metric, sweep.spec.mode, args.name)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Read the results alone (no Ray; a running sweep's journal so far) and print the leaderboard."""
    from regsweep._state import SweepStateError, read_sweep_results, read_sweep_state

    state = read_sweep_state(args.name, args.results)
    own_metric, own_mode = state.get("metric", "val_acc"), state.get("mode", "max")
    metric = args.metric or own_metric
    if args.mode is None and metric != own_metric:
        # The sweep's mode is its own metric's: val_acc's max would rank val_loss worst first.
        raise UsageError(f"--metric {metric}: give --mode min or --mode max (the sweep's mode, {own_mode}, is for "
                         f"its metric {own_metric})")
    mode = args.mode or own_mode
    frame = read_sweep_results(args.name, args.results, state)
    if metric not in frame:
        raise SweepStateError(f"--metric {metric}: not in the results of {args.name}")
    print_leaderboard(frame, metric, mode, args.name, top=args.top, fmt=args.format)
    return 0


def cmd_sync_mlflow(args: argparse.Namespace) -> int:
    from regsweep._sweep import sync_mlflow

    count = sync_mlflow(args.name, args.results)
    print(f"sweep {args.name}: {count} trials in MLflow")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from regsweep._report import write_report

    journal = write_report(args.name, args.results, args.reports)
    print(f"wrote {journal} and its figures")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from regsweep._state import list_sweeps

    rows = list_sweeps(args.results)
    if not rows:
        print(f"no sweeps in {args.results}/")
    for row in rows:
        counts = ", ".join(f"{k} {row[k]}" for k in ("completed", "stopped_early", "diverged", "error") if k in row)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["started_at"])) if row["started_at"] else "-"
        print(f"{row['name']:<28} {row['status']:<12} {row['trials']:>5} trials  {counts or '-'}  started {started}")
    return 0


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"given {text!r}; a whole number of at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the engine's subcommands to the CLI."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default="results", help="local results folder (default: results)")

    p = sub.add_parser("validate", help="check a sweep file and every config it can produce")
    p.add_argument("spec")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--smoke", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a sweep (on Ray Tune, or --executor local)")
    p.add_argument("spec")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a spec key (search.num_samples=8) or a fixed trainable key (epochs=5)")
    p.add_argument("--smoke", action="store_true", help="digits, at most 3 epochs and 4 samples; offline")
    p.add_argument("--storage", help="pyarrow.fs URI for checkpoints and results (e.g. s3://bucket/sweeps)")
    p.add_argument("--fresh", action="store_true", help="replace earlier results of this sweep")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--executor", choices=["ray", "local"],
                   help="ray (Ray Tune) or local (this machine's processes, no Ray); default: the spec's "
                   "resources.executor, else ray")
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

    p = sub.add_parser("leaderboard", help="the best configurations, factors and pairs, from the results alone")
    p.add_argument("name")
    p.add_argument("--top", type=_at_least_one, default=10, help="configurations shown (default 10)")
    p.add_argument("--metric", help="rank on another reported metric")
    p.add_argument("--mode", choices=["min", "max"], help="with --metric: lower or higher is better")
    p.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")
    common(p)
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("report", help="write the experiment journal (Markdown + PNG figures) for a sweep")
    p.add_argument("name")
    p.add_argument("--reports", default="reports", help="output folder (default: reports)")
    common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("list", help="sweeps and their state")
    common(p)
    p.set_defaults(func=cmd_list)
