"""Statistics over seed replicates (scipy): means with t-based confidence intervals, and ties.

The Student-t quantile comes from scipy.special.stdtrit, which is what scipy.stats.t.ppf computes;
importing scipy.stats would add 0.4 s to every command that prints a leaderboard."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

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


def import_quantile() -> Callable[..., Any]:
    """The Student-t quantile the intervals use, scipy.special.stdtrit, imported on first call (0.2-0.6 s here).
    The local executor's driver calls it while it would only wait for its workers, instead of when the sweep's
    last trial has ended and its leaderboard is printed."""
    from scipy.special import stdtrit

    return stdtrit


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Estimate:
    """Mean and Student-t confidence interval of finite values (as scipy.stats.t.interval)."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(data)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if n < 2:
        return Estimate(mean, math.nan, math.nan, 1)
    stdtrit = import_quantile()
    sem = float(data.std(ddof=1)) / math.sqrt(n)
    if sem == 0:
        return Estimate(mean, mean, mean, n)
    half = float(stdtrit(n - 1, (1 + confidence) / 2)) * sem
    return Estimate(mean, mean - half, mean + half, n)


def estimate_frame(grouped: "pd.core.groupby.SeriesGroupBy", confidence: float = 0.95) -> "pd.DataFrame":
    """Mean, interval and n for every group at once (vectorised Student-t quantiles), for large sweeps.

    Same numbers as mean_ci per group: mean +- t_{(1+c)/2, n-1} * sem; the interval is NaN for n < 2.
    """
    import pandas as pd

    stdtrit = import_quantile()
    table = grouped.agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    n = table["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = stdtrit(np.where(n > 1, n - 1, np.nan), (1 + confidence) / 2)
        half = t * table["std"].to_numpy() / np.sqrt(n)
    half = np.where(n > 1, np.nan_to_num(half, nan=0.0), np.nan)
    table["low"], table["high"] = table["mean"] - half, table["mean"] + half
    table["n"] = table["n"].astype(int)
    return pd.DataFrame(table[["mean", "low", "high", "n"]])
