"""Forecasting trials on a field: masked MSE (the sweep metric), MAE, and skill against persistence
(the last input frame as the forecast), all over the cells that were observed."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainables._config import ConvLSTMConfig
from trainables.data._fields import load_field, windows
from trainables.loop._trial import Splits, Trial
from trainables.models._convlstm import ConvLSTMForecaster

CHANNELS = 2  # the value, and whether it was observed (NaN cells are 0 with mask 0)


def _encode(frames: np.ndarray, mean: float, std: float) -> np.ndarray:
    observed = np.isfinite(frames)
    values = np.where(observed, (frames - mean) / std, 0.0)
    return np.stack([values, observed.astype(np.float32)], axis=-3).astype(np.float32)


class ForecastTrial(Trial):
    """A Trial for ConvLSTMConfig. Splits are chronological: validation and test come after training,
    so no future frame leaks into training; the seed changes the initialisation and batch order."""

    classification = False
    cfg: ConvLSTMConfig

    def load_splits(self) -> Splits:
        cfg = self.cfg
        frames, height, width = cfg.synthetic_shape
        field = load_field(cfg.dataset, frames, height, width, cfg.data_seed)
        inputs, targets = windows(field, cfg.seq_len, cfg.horizon)
        n = len(inputs)
        test_start = int(n * 0.8)
        val_start = int(test_start * (1 - cfg.val_fraction))
        train_frames = field[: val_start + cfg.seq_len]
        mean, std = float(np.nanmean(train_frames)), float(np.nanstd(train_frames) + 1e-8)
        x = _encode(inputs, mean, std)
        mask = np.isfinite(targets)
        y = np.where(mask, (targets - mean) / std, 0.0).astype(np.float32)
        parts = {"train": slice(0, val_start), "val": slice(val_start, test_start), "test": slice(test_start, n)}
        extras = {f"{name}_mask": mask[part].astype(np.float32) for name, part in parts.items()}
        self.scale = std
        return Splits(x[parts["train"]], y[parts["train"]], x[parts["val"]], y[parts["val"]], x[parts["test"]],
                      y[parts["test"]], (CHANNELS, field.shape[1], field.shape[2]), 1, extras)

    def build_model(self, splits: Splits) -> torch.nn.Module:
        cfg = self.cfg
        return ConvLSTMForecaster(CHANNELS, cfg.layers, cfg.filters, cfg.kernel_size, cfg.dropout, cfg.norm)

    def batch_loss(self, outputs: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        mask = self.extras["train_mask"][index]
        return ((outputs.float() - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, Any]:
        self.model.eval()
        mask = self.extras[f"{split}_mask"]
        pred = torch.cat([self.model(x[i : i + 64]).float() for i in range(0, len(x), 64)])
        cells = mask.sum().clamp(min=1)
        mse = (((pred - y) ** 2) * mask).sum() / cells
        # Persistence: tomorrow looks like today (the last input frame, where it was observed).
        last, seen = x[:, -1, 0], x[:, -1, 1]
        both = mask * seen
        persistence = (((last - y) ** 2) * both).sum() / both.sum().clamp(min=1)
        model_on_same = (((pred - y) ** 2) * both).sum() / both.sum().clamp(min=1)
        return {"loss": mse.item(), "mae": ((pred - y).abs() * mask).sum().item() / cells.item() * self.scale,
                "persistence_loss": persistence.item(), "skill": 1.0 - (model_on_same / persistence).item()}
