"""`regsweep report NAME`: the experiment journal our users write by hand, generated from the results.

Reads the Parquet table and sweep.json only, so it works on a laptop after a cluster sweep.
"""

from __future__ import annotations

import os
import platform
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from regsweep import _plots
from regsweep._aggregate import deciding_stage, final_rows
from regsweep._claims import judge_all
from regsweep._importance import param_importances
from regsweep._leaderboard import OVERFIT_GAP, build_leaderboard
from regsweep._render import _num, interval, render_markdown

SECTIONS = ("Hypothesis", "Setup", "Leaderboard", "Factor effects", "Interactions", "Parameter importance",
            "Overfitting", "Verdict")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _setup(state: dict[str, Any], spec: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    finals = final_rows(frame)
    budget = len(finals) * int(state.get("epochs") or frame["epoch"].max())
    trained = int(len(frame[frame["epoch"] > 0]))
    started = state.get("started_at")
    ended = state.get("updated_at")
    wall = f"{(ended - started) / 60:.1f} min" if started and ended else "-"
    dataset = {"dataset": spec["dataset"]} if spec.get("dataset") else {}
    fixed = state.get("fixed") or {**(spec.get("fixed") or {}), **dataset}
    hosts = sorted(set(frame["hostname"].dropna().astype(str))) if "hostname" in frame else []
    return [
        f"- trainable: `{spec.get('trainable')}`"
        # A user trainable (module:function) has no dataset of regsweep's; a built-in one its default.
        + ("" if ":" in str(spec.get("trainable")) and "dataset" not in fixed
           else f"; dataset: `{fixed.get('dataset', 'default')}`")
        + (" (smoke run)" if state.get("smoke") else ""),
        f"- fixed config: `{yaml.safe_dump(fixed, default_flow_style=True, width=10_000).strip()}`",
        f"- search: `{yaml.safe_dump(spec.get('search', {'algorithm': 'grid'}), default_flow_style=True).strip()}`; "
        f"scheduler: `{yaml.safe_dump(spec.get('scheduler', {'type': 'fifo'}), default_flow_style=True).strip()}`",
        f"- seeds per configuration: {spec.get('seeds', 1)}; metric: `{state.get('metric')}` ({state.get('mode')})",
        f"- trials: {len(finals)}; epochs trained: {trained} of a budget of {budget} "
        f"({100 * trained / max(budget, 1):.0f}%); wall time: {wall}"
        + ("" if state.get("status") == "finished" else f" (the sweep is {state.get('status')}: results so far)"),
        f"- hardware: {', '.join(hosts) or platform.node()} ({os.cpu_count()} CPUs on the reporting machine); "
        f"report written {datetime.now():%Y-%m-%d %H:%M}",
    ]


def _overfitting(frame: pd.DataFrame, board: Any) -> list[str]:
    lines = ["| # | config | final train_loss | final val_loss | gap | best epoch | flag |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    finals = final_rows(frame[frame["stage"] == board.stage])
    for _, row in board.top.head(5).iterrows():
        rows = finals[finals["config_id"] == row["config_id"]]
        label = " ".join(f"{c[len('config/'):]}={row[c]}" for c in board.varying)
        train = rows["train_loss"].mean() if "train_loss" in rows else None
        val = rows["val_loss"].mean() if "val_loss" in rows else None
        lines.append(f"| {row['rank']} | {label} | {_num(train)} | {_num(val)} | "
                     f"{_num(row['gap'])} | {_num(row['best_epoch'], 1)} | "
                     f"{'overfit' if row['overfit'] else ''} |")
    lines += ["", f"_A gap (val_loss - train_loss) above {OVERFIT_GAP} is flagged; see the learning curves._"]
    return lines


def write_report(name: str, results_root: str = "results", reports_root: str = "reports") -> Path:
    """Write reports/NAME/journal.md and its PNG figures; returns the journal's path."""
    from regsweep._state import read_sweep_results, read_sweep_state, sweep_status

    state = read_sweep_state(name, results_root)
    state = {**state, "status": sweep_status(state)}
    spec = yaml.safe_load(state["spec_text"]) or {}
    frame = read_sweep_results(name, results_root, state)
    metric, mode = state.get("metric") or spec.get("metric", "val_acc"), state.get("mode") or spec.get("mode", "max")
    state = {**state, "metric": metric, "mode": mode}
    out = Path(reports_root) / name
    out.mkdir(parents=True, exist_ok=True)
    board = build_leaderboard(frame, metric, mode, name)
    figures: list[Path] = []

    doc = [f"# Experiment journal: {name}", "", "## Hypothesis", "", spec.get("hypothesis") or "_none stated_", ""]
    doc += ["## Setup", "", *_setup(state, spec, frame), ""]
    doc += ["## Leaderboard", "", render_markdown(board), ""]
    doc += ["## Factor effects", ""]
    for column, table in board.factors.items():
        factor = column[len("config/"):]
        path = _plots.factor_plot(table, factor, metric, out / f"factor_{_slug(factor)}.png",
                                  board.levels[column])
        figures.append(path)
        best = table[table["best"]].iloc[0]
        tied = ", ".join(str(v) for v in table.loc[table["tied"], "value"]) or "none"
        doc += [f"- **{factor}**: best {best['value']} with {metric} {interval(best)} (n={best['n']}); "
                f"tied with it: {tied}. ![{factor}]({path.name})"]
    doc += ["" if board.factors else "_No factor varied._", "", "## Interactions", ""]
    for a, b, grid in board.pairs:
        path = _plots.heatmap(grid, a, b, metric, out / f"interaction_{_slug(a)}_x_{_slug(b)}.png")
        figures.append(path)
        doc += [f"![{a} x {b}]({path.name})", ""]
    if not board.pairs:
        doc += ["_Fewer than two factors were searched together._", ""]
    deciding = final_rows(frame[frame["stage"] == deciding_stage(frame)])
    importances = param_importances(deciding[deciding["status"].isin(["completed", "stopped_early"])], metric, mode)
    doc += ["## Parameter importance", ""]
    if importances:
        figures.append(_plots.importance_bars(importances, out / "importance.png"))
        from regsweep._importance import MAX_TRIALS

        sampled = f" (a fixed sample of {MAX_TRIALS} of {len(deciding)} trials)" if len(deciding) > MAX_TRIALS else ""
        doc += [f"Optuna's fANOVA over the finished trials{sampled}.", "",
                "| parameter | importance (fANOVA) |", "| --- | --- |"]
        doc += [f"| {k} | {v:.3f} |" for k, v in importances.items()] + ["", "![importance](importance.png)", ""]
    else:
        doc += ["_Too few finished trials or varying parameters for fANOVA._", ""]
    doc += ["## Overfitting", "", *_overfitting(frame, board), ""]
    if not board.top.empty and {"train_loss", "val_loss"} <= set(frame.columns):
        labels = [(row["config_id"], f"#{row['rank']}") for _, row in board.top.head(4).iterrows()]
        stage_rows = frame[frame["stage"] == board.stage]
        figures.append(_plots.learning_curves(stage_rows, labels, out / "learning_curves.png"))
        doc += ["![learning curves](learning_curves.png)", ""]
    doc += ["## Verdict", ""]
    verdicts = judge_all(spec.get("claims") or [], frame, metric, mode)
    for verdict in verdicts:
        doc.append(f"- **{verdict.outcome}**: {verdict.text}. {verdict.reason}.")
    if not verdicts:
        doc.append("_The spec states no checkable claims (`claims:`); see the factor effects above._")
    doc.append("")
    journal = out / "journal.md"
    journal.write_text("\n".join(doc))
    _log_to_mlflow(state, spec, journal, figures)
    return journal


def _log_to_mlflow(state: dict[str, Any], spec: dict[str, Any], journal: Path, figures: list[Path]) -> None:
    """Attach the journal and its figures to the sweep's parent run, when there is one."""
    parent = state.get("mlflow_parent_run_id")
    if not parent or not state.get("mlflow", True):
        return
    from regsweep._mlflow import resolve_tracking_uri, warn

    try:
        from mlflow.tracking import MlflowClient

        # The store the sweep logged to, unless the environment points elsewhere (e.g. with credentials).
        uri = (os.environ.get("MLFLOW_TRACKING_URI") or state.get("mlflow_uri")
               or resolve_tracking_uri(spec.get("tracking_uri")))
        client = MlflowClient(uri)
        for path in [journal, *figures]:
            client.log_artifact(parent, str(path), artifact_path="report")
    except Exception as exc:  # the journal on disk is what matters; MLflow is a copy
        warn(f"could not attach the report to MLflow run {parent} ({type(exc).__name__}: {str(exc)[:200]})")
