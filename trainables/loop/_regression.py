"""Regression trials on tables: weighted MSE (optionally in log2 space), MAE in the target's own
units, and the loss per group so that per-group behaviour reaches the results (seed 002)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainables._config import ResMLPConfig
from trainables.data._tabular import load_table
from trainables.loop._trial import Splits, Trial
from trainables.models._resmlp import ResMLP


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - fraction)))
    return np.sort(order[:cut]), np.sort(order[cut:])


class RegressionTrial(Trial):
    """A Trial for ResMLPConfig: the same loop, a regression task."""

    classification = False
    cfg: ResMLPConfig

    def load_splits(self) -> Splits:
        cfg = self.cfg
        table = load_table(cfg.dataset, tuple(cfg.features) if cfg.features else None, cfg.target,
                           tuple(cfg.group_by))
        # A fixed held-out test split (seed 0), then validation from the trial's seed.
        rest, test = _split(len(table.y), 0.2, 0)
        train_pos, val_pos = _split(len(rest), cfg.val_fraction, cfg.seed)
        train, val = rest[train_pos], rest[val_pos]
        self.embed_index = [table.features.index(c) for c in cfg.embed_columns]
        numeric = [i for i in range(len(table.features)) if i not in self.embed_index]
        x = table.x.copy()
        mean, std = x[train][:, numeric].mean(0), x[train][:, numeric].std(0) + 1e-8
        x[:, numeric] = (x[:, numeric] - mean) / std
        self.embed_vocab = [int(table.x[:, i].max()) + 1 for i in self.embed_index]
        if cfg.log_target and (table.y <= 0).any():
            raise ValueError("log_target needs a positive target")
        y = np.log2(table.y) if cfg.log_target else table.y
        self.group_labels = table.group_labels
        weights = self._weights(table.groups[train], len(table.group_labels))
        extras = {"train_weight": weights[table.groups[train]], "val_groups": table.groups[val],
                  "test_groups": table.groups[test]}
        return Splits(x[train], y[train], x[val], y[val], x[test], y[test], (x.shape[1],), 1, extras)

    def _weights(self, train_groups: np.ndarray, count: int) -> np.ndarray:
        spec = self.cfg.group_weights
        if spec is None:
            return np.ones(count, dtype=np.float32)
        if spec == "balanced":
            counts = np.bincount(train_groups, minlength=count).astype(np.float32)
            return np.where(counts > 0, len(train_groups) / (count * np.maximum(counts, 1)), 1.0).astype(np.float32)
        unknown = set(spec) - set(self.group_labels)
        if unknown:
            raise ValueError(f"group_weights names groups {sorted(unknown)}; groups: {list(self.group_labels)}")
        return np.array([spec.get(label, 1.0) for label in self.group_labels], dtype=np.float32)

    def build_model(self, splits: Splits) -> torch.nn.Module:
        cfg = self.cfg
        return ResMLP(splits.input_shape[0], cfg.width, cfg.blocks, cfg.dropout_rates(), cfg.log_target,
                      self.embed_index, self.embed_vocab, cfg.embed_dim)

    def batch_loss(self, outputs: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        weight = self.extras["train_weight"][index]
        return ((outputs.float() - target) ** 2 * weight).sum() / weight.sum()

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, Any]:
        self.model.eval()
        pred = self.model(x).float()
        errors = (pred - y) ** 2
        metrics = {"loss": errors.mean().item()}
        natural = (2 ** pred, 2 ** y) if self.cfg.log_target else (pred, y)
        metrics["mae"] = (natural[0] - natural[1]).abs().mean().item()
        groups = self.extras[f"{split}_groups"]
        if len(self.group_labels) > 1:
            for code, label in enumerate(self.group_labels):
                mask = groups == code
                if mask.any():
                    metrics[f"loss_{label}"] = errors[mask].mean().item()
        return metrics
