"""Tables for regression: scikit-learn's bundled diabetes data, or the user's own Parquet file."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.data._idx import DatasetError
from trainables.data._prepared import cached_arrays

DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


@dataclass(frozen=True)
class Table:
    """Features (float32, n x f), target (float32), and a group code per row with its labels."""

    features: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    group_labels: tuple[str, ...]


def _group_codes(columns: dict[str, np.ndarray], group_by: tuple[str, ...],
                 n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    if not group_by:
        return np.zeros(n, dtype=np.int64), ("all",)
    keys = ["_".join(f"{g}{_short(columns[g][i])}" for g in group_by) for i in range(n)]
    labels = tuple(sorted(set(keys)))
    index = {label: code for code, label in enumerate(labels)}
    return np.array([index[k] for k in keys], dtype=np.int64), labels


def _short(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _from_columns(source: str, columns: dict[str, np.ndarray], features: tuple[str, ...], target: str,
                  group_by: tuple[str, ...]) -> Table:
    available = list(columns)
    for name in (*features, target, *group_by):
        if name not in columns:
            raise DatasetError(f"{source}: no column {name!r}; columns: {', '.join(available)}")
    for name in (*features, target):
        if not np.issubdtype(np.asarray(columns[name]).dtype, np.number):
            raise DatasetError(f"{source}: column {name!r} is not numeric ({np.asarray(columns[name]).dtype}); "
                               "encode it as numbers first")
    y = np.asarray(columns[target], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise DatasetError(f"{source}: target {target!r} has {len(bad)} missing or infinite values "
                           f"(first at row {bad[0]}); drop or fill those rows")
    x = np.stack([np.asarray(columns[f], dtype=np.float32) for f in features], axis=1)
    if not np.isfinite(x).all():
        row, col = np.argwhere(~np.isfinite(x))[0]
        raise DatasetError(f"{source}: feature {features[col]!r} is missing at row {row}; fill it first")
    groups, labels = _group_codes(columns, group_by, len(y))
    return Table(features, x, y.astype(np.float32), groups, labels)


def _diabetes() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    return {"data": bunch.data, "target": bunch.target}


@functools.lru_cache(maxsize=8)
def load_table(dataset: str, features: tuple[str, ...] | None, target: str | None,
               group_by: tuple[str, ...] = ()) -> Table:
    """`diabetes` (offline, unscaled: age and sex stay integers) or `parquet:PATH`."""
    if dataset == "diabetes":
        raw = cached_arrays("diabetes", _diabetes)
        columns = {name: raw["data"][:, i] for i, name in enumerate(DIABETES_FEATURES)}
        columns["target"] = raw["target"]
        return _from_columns("diabetes", columns, tuple(features or DIABETES_FEATURES), target or "target", group_by)
    if dataset.startswith("parquet:"):
        import pyarrow.parquet as pq

        path = Path(dataset[len("parquet:"):])
        if not path.is_file():
            raise DatasetError(f"{path}: file not found (dataset: parquet:PATH)")
        if not features or not target:
            raise DatasetError(f"{path}: a Parquet dataset needs `features` (a list of columns) and `target`")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise DatasetError(f"{path}: not a readable Parquet file ({exc})") from None
        columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
        return _from_columns(str(path), columns, tuple(features), target, group_by)
    raise DatasetError(f"unknown table dataset {dataset!r}; allowed: diabetes, parquet:PATH")
