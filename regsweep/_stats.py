"""Statistics over seed replicates (scipy): means with t-based confidence intervals, and ties."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
from scipy import stats

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval over n replicates (interval is NaN when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    def overlaps(self, other: "Estimate") -> bool:
        """Whether the two intervals overlap; a single replicate overlaps everything (we cannot tell)."""
        if self.n < 2 or other.n < 2:
            return True
        return self.low <= other.high and other.low <= self.high


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Estimate:
    """Mean and Student-t confidence interval of finite values (scipy.stats.t.interval)."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(data)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan, 1)
    sem = stats.sem(data)
    if sem == 0:
        return Estimate(mean, mean, mean, n)
    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return Estimate(mean, float(low), float(high), n)


def estimate_frame(grouped: "pd.core.groupby.SeriesGroupBy", confidence: float = 0.95) -> "pd.DataFrame":
    """Mean, interval and n for every group at once (vectorised scipy.stats.t), for large sweeps.

    Same numbers as mean_ci per group: mean +- t_{(1+c)/2, n-1} * sem; the interval is NaN for n < 2.
    """
    import pandas as pd

    table = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    n = table["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stats.t.ppf((1 + confidence) / 2, np.where(n > 1, n - 1, np.nan))
        half = t * table["std"].to_numpy() / np.sqrt(n)
    half = np.where(n > 1, np.nan_to_num(half, nan=0.0), np.nan)
    table["low"], table["high"] = table["mean"] - half, table["mean"] + half
    table["n"] = table["n"].astype(int)
    return pd.DataFrame(table[["mean", "low", "high", "n"]])
