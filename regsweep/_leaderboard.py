"""The leaderboard's numbers, from the results table alone (pandas + scipy; no Ray).

Which trials count: the confirm stage when there is one, else the search; only trials that ran their
budget (or stopped on their own patience). Trials stopped by ASHA are compared at the rung they reached,
never against full-budget metrics.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from regsweep._aggregate import deciding_stage, final_rows, param_columns
from regsweep._stats import estimate_frame

OVERFIT_GAP = 0.1  # val_loss - train_loss, in nats, above which a configuration is flagged
MAX_LEVELS = 8     # more distinct values than this (numbers) are binned into quartiles


@dataclass
class Leaderboard:
    """Every section of the leaderboard as plain tables. `top` has one row per configuration: its searched
    parameters under their results-table names (`config/dropout`) and its statistics (mean, low, high, n, ...).
    `factors` rank each factor's levels, best first; `levels` lists the same levels in the values' order
    (numbers by size, bins low to high, other values as text, "n/a" last), the order the pair grids and the
    journal's figures use."""

    name: str
    metric: str
    mode: str
    stage: str
    top: pd.DataFrame
    factors: dict[str, pd.DataFrame]
    pairs: list[tuple[str, str, pd.DataFrame]]
    rungs: pd.DataFrame
    counts: dict[str, int]
    footer: list[str] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)

    @property
    def varying(self) -> list[str]:
        return list(self.factors)


def _asha_stopped(finals: pd.DataFrame) -> pd.Series:
    if "stopped_by" not in finals:
        return pd.Series(False, index=finals.index)
    return finals["stopped_by"].astype(str).str.startswith("asha@")


def _varying(finals: pd.DataFrame) -> list[str]:
    return [c for c in param_columns(finals) if finals[c].astype(str).nunique(dropna=True) > 1]


def _level(series: pd.Series) -> tuple[pd.Series, list[str]]:
    """Factor levels as labels, and the labels in the values' order (numbers by size, bins low to high,
    other values as text, "n/a" last): the values themselves, or quartile bins for many distinct numbers."""
    values = series.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and values.nunique() > MAX_LEVELS:
        return _quartile_labels(series)
    labels = series.map(lambda v: "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else _fmt(v))
    if numeric:
        order = list(dict.fromkeys(_fmt(v) for v in np.sort(values.unique())))
    else:
        order = sorted(set(labels[series.notna()]))
    return labels, order + (["n/a"] if series.isna().any() else [])


def _quartile_labels(series: pd.Series) -> tuple[pd.Series, list[str]]:
    """Each bin labelled by the lowest and highest value it holds. Not by pandas' own edges: qcut lowers the
    first edge by 0.1% of the range, which would print a dropout or learning rate below zero."""
    codes = pd.qcut(series, 4, labels=False, duplicates="drop")  # a Series: index and name kept
    spans = series.groupby(codes).agg(["min", "max"]).sort_index()
    for digits in range(3, 10):  # enough digits that two bins never print alike
        low, high = ([f"{v:.{digits}g}" for v in spans[end]] for end in ("min", "max"))
        names = [lo if lo == hi else f"{lo}..{hi}" for lo, hi in zip(low, high)]
        if len(set(names)) == len(names):
            break
    labels = codes.map(dict(zip(spans.index, names))).fillna("n/a").astype(str)
    return labels, names + (["n/a"] if series.isna().any() else [])


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def _mark_ties(table: pd.DataFrame, mode: str) -> pd.DataFrame:
    """best = the best mean; tied = interval overlaps the best's (a single replicate ties with all)."""
    table = table.sort_values("mean", ascending=mode == "min")
    best = table.iloc[0]
    single = table["n"].lt(2) | (best["n"] < 2)
    overlap = (table["low"] <= best["high"]) & (best["low"] <= table["high"])
    table["best"] = False
    table.iloc[0, table.columns.get_loc("best")] = True
    table["tied"] = ~table["best"] & (single | overlap)
    return table


def _top(finals: pd.DataFrame, varying: list[str], metric: str, mode: str, top: int) -> pd.DataFrame:
    """Every configuration's estimate (vectorised), then details for the `top` shown."""
    table = _mark_ties(estimate_frame(finals.groupby("config_id", sort=False)[metric]), mode).head(top)
    shown = finals[finals["config_id"].isin(table.index)]
    if "gap" not in shown and {"train_loss", "val_loss"} <= set(shown):
        shown = shown.assign(gap=shown["val_loss"] - shown["train_loss"])  # a user trainable's, as the loop's
    grouped = shown.groupby("config_id", sort=False)
    first = grouped.first()
    for column in varying:  # under their results-table names: a parameter called `gap` or `n` is not a statistic
        table[column] = first[column].map(lambda v: "-" if v is None or v != v else _fmt(v))
    for column, source in (("best_epoch", "best_epoch"), ("gap", "gap"), ("epochs", "epoch")):
        table[column] = grouped[source].mean() if source in shown else np.nan
    table["params"] = first["params"] if "params" in shown else np.nan
    ended = pd.crosstab(shown["config_id"], shown["status"])
    table["ended"] = ended.apply(lambda row: ", ".join(f"{k} {v}" for k, v in row.items() if v), axis=1)
    table["overfit"] = table["gap"] > OVERFIT_GAP
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index()


def _factor(finals: pd.DataFrame, labels: pd.Series, metric: str, mode: str) -> pd.DataFrame:
    table = estimate_frame(finals[metric].groupby(labels, sort=False))
    return _mark_ties(table, mode).rename_axis("value").reset_index()


def _pairs(finals: pd.DataFrame, leveled: dict[str, tuple[pd.Series, list[str]]], factors: dict[str, pd.DataFrame],
           metric: str, limit: int = 3) -> list[tuple[str, str, pd.DataFrame]]:
    """Grids of means for factor pairs: all pairs of up to three factors, else those of the three
    whose values move the metric most."""
    usable = [c for c, t in factors.items() if 2 <= len(t) <= MAX_LEVELS]
    spread = {c: factors[c]["mean"].max() - factors[c]["mean"].min() for c in usable}
    chosen = sorted(usable, key=lambda c: -spread[c])[:limit]
    grids = []
    for a, b in itertools.combinations(chosen, 2):
        (rows, row_order), (columns, column_order) = leveled[a], leveled[b]
        grid = finals[metric].groupby([rows, columns]).mean().unstack(b)
        grid = grid.reindex(index=[v for v in row_order if v in grid.index],
                            columns=[v for v in column_order if v in grid.columns])
        grids.append((a[len("config/"):], b[len("config/"):], grid))
    return grids


def _rungs(frame: pd.DataFrame, finals: pd.DataFrame, stopped: pd.Series, metric: str) -> pd.DataFrame:
    """For each epoch where ASHA stopped trials: stopped vs continued trials, both at that epoch."""
    rows = []
    for rung, group in finals[stopped].groupby("epoch"):
        at_rung = frame[(frame["epoch"] == rung) & frame["trial_id"].isin(finals["trial_id"])]
        continued = at_rung[~at_rung["trial_id"].isin(group["trial_id"])]
        rows.append({"epoch": int(rung), "stopped": len(group), "stopped_mean": group[metric].mean(),
                     "continued": len(continued), "continued_mean": continued[metric].mean()})
    return pd.DataFrame(rows, columns=["epoch", "stopped", "stopped_mean", "continued", "continued_mean"])


def build_leaderboard(frame: pd.DataFrame, metric: str, mode: str, name: str = "", top: int = 10) -> Leaderboard:
    """All sections of the leaderboard from a results table."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode: given {mode!r}; 'min' (lower is better) or 'max'")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top: given {top!r}; a whole number of at least 1")
    if metric not in frame:
        raise ValueError(f"metric {metric!r} is not in the results; columns with metrics: "
                         f"{', '.join(c for c in frame.columns if c.startswith(('val_', 'train_', 'best_', 'test_')))}")
    stage = deciding_stage(frame)
    stage_rows = frame[frame["stage"] == stage]
    all_finals = final_rows(stage_rows)
    counts = {str(k): int(v) for k, v in final_rows(frame)["status"].value_counts().items()}
    stopped = _asha_stopped(all_finals)
    finals = all_finals[all_finals["status"].isin(["completed", "stopped_early"]) & ~stopped]
    finals = finals.dropna(subset=[metric])
    varying = _varying(all_finals)
    footer = [f"{metric}: the last reported value of each trial, mean +- 95% t-interval over seeds (scipy); "
              f"{'higher' if mode == 'max' else 'lower'} is better.",
              "tied: interval overlaps the best's, so the data cannot separate them (n = 1 always ties).",
              f"overfit: mean train/val gap (val_loss - train_loss) above {OVERFIT_GAP}."]
    if stage == "confirm":
        footer.append("Ranked on the confirm stage: the search's top configurations re-run with every seed.")
    if stopped.any():
        footer.append(f"{int(stopped.sum())} trials stopped early by ASHA are left out of the rankings and "
                      "compared only at the rung they reached (see Rungs), never with full-budget metrics.")
    if finals.empty:
        empty = pd.DataFrame(columns=["rank", "config_id", "mean", "low", "high", "n"])
        return Leaderboard(name, metric, mode, stage, empty, {}, [], _rungs(stage_rows, all_finals, stopped, metric),
                           counts, footer + ["No trial finished its budget yet."])
    leveled = {c: _level(finals[c]) for c in varying}
    factors = {c: _factor(finals, labels, metric, mode) for c, (labels, _) in leveled.items()}
    return Leaderboard(name, metric, mode, stage, _top(finals, varying, metric, mode, top), factors,
                       _pairs(finals, leveled, factors, metric), _rungs(stage_rows, all_finals, stopped, metric),
                       counts, footer, levels={c: order for c, (_, order) in leveled.items()})
