"""The journal's figures (matplotlib, PNG): effects with error bars, pair heatmaps, learning curves,
and importance bars. Each function writes one file and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _numeric(values: pd.Series) -> bool:
    try:
        pd.to_numeric(values)
    except (ValueError, TypeError):
        return False
    return not values.isin(["n/a", "True", "False"]).any() and not any(".." in str(v) for v in values)


def _tick_style(labels: Any) -> dict[str, Any]:
    """Long labels (bins such as "0.000101..0.00238") slanted so that neighbours do not overlap."""
    if max((len(str(label)) for label in labels), default=0) <= 8:
        return {}
    return {"rotation": 25, "ha": "right", "rotation_mode": "anchor"}


def _in_order(table: pd.DataFrame, order: list[str] | None) -> pd.DataFrame:
    """The table's rows in `order` of their values; a value `order` does not name keeps its place after them."""
    if order is None:
        return table
    position = {value: index for index, value in enumerate(order)}
    return table.iloc[np.argsort([position.get(v, len(position)) for v in table["value"]], kind="stable")]


def factor_plot(table: pd.DataFrame, factor: str, metric: str, path: Path, order: list[str] | None = None) -> Path:
    """Metric vs a numeric factor with error bars, or bars with intervals for a categorical or binned one,
    in `order` (the leaderboard's `levels`: bins low to high) where given, else in the table's."""
    fig, ax = plt.subplots(figsize=(6, 4))
    if _numeric(table["value"]):
        by_value = table.assign(x=pd.to_numeric(table["value"])).sort_values("x")
        ax.errorbar(by_value["x"], by_value["mean"], yerr=np.nan_to_num((by_value["high"] - by_value["low"]) / 2),
                    marker="o", capsize=4)
    else:
        table = _in_order(table, order)
        error = np.nan_to_num((table["high"] - table["low"]).to_numpy() / 2)
        colors = ["tab:green" if b else ("tab:olive" if t else "tab:gray")
                  for b, t in zip(table["best"], table["tied"])]
        ax.bar(range(len(table)), table["mean"], yerr=error, capsize=4, color=colors)
        ax.set_xticks(range(len(table)), [str(v) for v in table["value"]], **_tick_style(table["value"]))
        low = np.nanmin(table["low"].fillna(table["mean"]))
        ax.set_ylim(bottom=max(0.0, low - 0.1 * abs(low)) if low > 0 else None)
    ax.set_xlabel(factor)
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    ax.set_title(f"{metric} by {factor}")
    return _save(fig, path)


def heatmap(grid: pd.DataFrame, a: str, b: str, metric: str, path: Path) -> Path:
    """Mean metric for each cell of two factors searched together."""
    fig, ax = plt.subplots(figsize=(1.2 * len(grid.columns) + 3, 0.6 * len(grid.index) + 2.5))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns], **_tick_style(grid.columns))
    ax.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    ax.set_xlabel(b)
    ax.set_ylabel(a)
    for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not np.isnan(value):  # dark text on viridis' light end (yellow), light text on its dark end
            light_cell = image.norm(value) > 0.6
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="black" if light_cell else "white",
                    fontsize=8)
    fig.colorbar(image, ax=ax, label=f"mean {metric}")
    ax.set_title(f"{a} x {b}")
    return _save(fig, path)


def learning_curves(frame: pd.DataFrame, configs: list[tuple[str, str]], path: Path) -> Path:
    """Train and validation loss per epoch (mean over seeds) of the top configurations."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for index, (config_id, label) in enumerate(configs):
        rows = frame[frame["config_id"] == config_id].groupby("epoch")[["train_loss", "val_loss"]].mean()
        color = f"C{index}"
        ax.plot(rows.index, rows["train_loss"], linestyle="--", color=color, label=f"{label} train")
        ax.plot(rows.index, rows["val_loss"], color=color, label=f"{label} val")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    ax.set_title("Learning curves of the top configurations")
    return _save(fig, path)


def importance_bars(importances: dict[str, float], path: Path) -> Path:
    """fANOVA importance of each parameter."""
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(importances) + 1.5))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (fANOVA, normalised)")
    ax.set_title("Parameter importance")
    return _save(fig, path)
