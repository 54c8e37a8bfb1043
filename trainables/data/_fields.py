"""Spatio-temporal fields (time, height, width) for forecasting: a synthetic field of moving,
diffusing blobs generated from a seed (offline demos and tests), or the user's .npy/.npz array.
NaN cells (land, clouds) are kept as NaN; the loop masks them out."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from trainables.data._idx import DatasetError


@functools.lru_cache(maxsize=4)
def synthetic_field(frames: int = 120, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """Blobs that drift with constant velocity and spread over time, with a fixed 'land' corner
    and random 'cloud' gaps, as float32 (frames, height, width) with NaNs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.zeros((frames, height, width), dtype=np.float32)
    for _ in range(4):
        y0, x0 = rng.uniform(0, height), rng.uniform(0, width)
        vy, vx = rng.uniform(-0.4, 0.4), rng.uniform(-0.6, 0.6)
        amplitude, sigma0 = rng.uniform(0.5, 1.5), rng.uniform(2.0, 4.0)
        for t in range(frames):
            cy, cx = (y0 + vy * t) % height, (x0 + vx * t) % width
            sigma = sigma0 + 0.02 * t
            dy = np.minimum(abs(yy - cy), height - abs(yy - cy))
            dx = np.minimum(abs(xx - cx), width - abs(xx - cx))
            field[t] += amplitude * np.exp(-(dy**2 + dx**2) / (2 * sigma**2))
    field += rng.normal(0, 0.02, field.shape).astype(np.float32)
    field[:, : height // 4, : width // 5] = np.nan  # land
    clouds = rng.random(field.shape) < 0.03
    field[clouds] = np.nan
    return field


def load_field(dataset: str, frames: int, height: int, width: int, data_seed: int) -> np.ndarray:
    """`synthetic`, `npy:PATH` or `npz:PATH` (the first array, or `npz:PATH:KEY`)."""
    if dataset == "synthetic":
        return synthetic_field(frames, height, width, data_seed)
    kind, _, rest = dataset.partition(":")
    if kind not in ("npy", "npz") or not rest:
        raise DatasetError(f"unknown field dataset {dataset!r}; allowed: synthetic, npy:PATH, npz:PATH[:KEY]")
    path_text, _, key = rest.partition(":") if kind == "npz" else (rest, "", "")
    path = Path(path_text)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        loaded = np.load(path, allow_pickle=False)
        array = loaded[key or loaded.files[0]] if kind == "npz" else loaded
    except (ValueError, KeyError, OSError) as exc:
        raise DatasetError(f"{path}: cannot read the array ({exc})") from None
    if array.ndim != 3:
        raise DatasetError(f"{path}: expected a (time, height, width) array, got shape {array.shape}")
    return np.asarray(array, dtype=np.float32)


def windows(field: np.ndarray, seq_len: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of `seq_len` frames and the frame `horizon` steps after the last one."""
    count = len(field) - seq_len - horizon + 1
    if count < 1:
        raise DatasetError(f"{len(field)} frames are too few for seq_len={seq_len} and horizon={horizon}")
    inputs = np.stack([field[i : i + seq_len] for i in range(count)])
    targets = np.stack([field[i + seq_len - 1 + horizon] for i in range(count)])
    return inputs, targets
