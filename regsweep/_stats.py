"""Statistics over seed replicates (scipy): means with t-based confidence intervals, and ties."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A mean with its confidence interval over n replicates (interval is NaN when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 if self.n > 1 else math.nan

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
