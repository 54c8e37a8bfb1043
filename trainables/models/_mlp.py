"""Dense network on flattened inputs with per-layer dropout and optional residual connections."""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables._config import MLPConfig


class DenseBlock(nn.Module):
    """Linear -> Norm -> ReLU -> Dropout (norm after ReLU with after_act), with an optional skip."""

    def __init__(self, fan_in: int, fan_out: int, norm: str, norm_position: str, dropout: float,
                 residual: bool):
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        norm_layer = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(norm)
        self.norm = norm_layer(fan_out) if norm_layer else nn.Identity()
        self.norm_first = norm_position == "before_act"
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.skip: nn.Module | None = None
        if residual:
            # Widths that differ need a projection on the skip path.
            self.skip = nn.Identity() if fan_in == fan_out else nn.Linear(fan_in, fan_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        h = torch.relu(self.norm(h)) if self.norm_first else self.norm(torch.relu(h))
        h = self.dropout(h)
        return h + self.skip(x) if self.skip is not None else h


def build_mlp(cfg: MLPConfig, image_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Build the MLP for inputs of `image_shape` (flattened)."""
    features = math.prod(image_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for width, rate in zip(cfg.hidden, cfg.dropout_rates()):
        layers.append(DenseBlock(features, width, cfg.norm, cfg.norm_position, rate, cfg.residual))
        features = width
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
