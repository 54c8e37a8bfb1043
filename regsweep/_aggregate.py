"""Per-trial and per-configuration views of a results table: no Ray, only pandas and scipy."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from regsweep._stats import Estimate, mean_ci


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The last reported epoch of every trial (one row per trial)."""
    if frame.empty:
        return frame
    return frame.sort_values("epoch", kind="stable").groupby(["stage", "trial_id"], sort=False).tail(1)


def deciding_stage(frame: pd.DataFrame) -> str:
    """The confirm stage when there is one (every seed, full budget), else the search."""
    return "confirm" if (frame["stage"] == "confirm").any() else "search"


def param_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("config/")]


def config_params(row: pd.Series | dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """The searched values of a row, without the `config/` prefix, skipping absent ones."""
    params = {}
    for column in columns:
        value = row[column]
        if value is None or (isinstance(value, float) and value != value):
            continue
        if isinstance(value, str) and value[:1] in "[{":
            value = json.loads(value)
        params[column[len("config/"):]] = value.item() if hasattr(value, "item") else value
    return params


def config_estimates(frame: pd.DataFrame, metric: str, mode: str) -> list[tuple[str, dict[str, Any], Estimate]]:
    """(config_id, params, estimate of the final metric over seeds), best first, for the deciding stage."""
    finals = final_rows(frame[frame["stage"] == deciding_stage(frame)])
    if metric not in finals:
        return []
    finals = finals[finals["status"].isin(["completed", "stopped_early"])]
    columns = param_columns(frame)
    estimates = []
    for cid, group in finals.groupby("config_id", sort=False):
        estimates.append((cid, config_params(group.iloc[0], columns), mean_ci(group[metric])))
    estimates = [e for e in estimates if e[2].n > 0]
    estimates.sort(key=lambda e: e[2].mean, reverse=mode == "max")
    return estimates


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many trials ended in each way."""
    if frame.empty:
        return {}
    return {str(k): int(v) for k, v in final_rows(frame)["status"].value_counts().items()}


def sweep_summary(frame: pd.DataFrame, metric: str, mode: str) -> dict[str, Any]:
    """Best configuration with its interval, and trial counts: what the parent MLflow run records."""
    counts = status_counts(frame)
    summary: dict[str, Any] = {f"trials_{k}": v for k, v in counts.items()}
    summary["trials"] = sum(counts.values())
    estimates = config_estimates(frame, metric, mode)
    if estimates:
        cid, params, best = estimates[0]
        summary.update({"best_config_id": cid, "best_config": params, f"best_{metric}_mean": best.mean,
                        f"best_{metric}_ci_low": best.low, f"best_{metric}_ci_high": best.high,
                        f"best_{metric}_n": best.n})
    return summary


def best_trial(frame: pd.DataFrame, metric: str, mode: str) -> pd.Series | None:
    """The best seed of the best configuration (the trial whose model is worth keeping)."""
    estimates = config_estimates(frame, metric, mode)
    if not estimates:
        return None
    finals = final_rows(frame[frame["stage"] == deciding_stage(frame)])
    group = finals[finals["config_id"] == estimates[0][0]].dropna(subset=[metric])
    return group.sort_values(metric, ascending=mode == "min").iloc[0]
