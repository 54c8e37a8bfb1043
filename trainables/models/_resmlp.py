"""Residual MLP for tabular regression (seed 002): an input projection, residual blocks
(Dense -> LayerNorm -> GELU -> Dropout, with a skip) of progressively smaller width, optional
embeddings for small integer columns, and a Softplus-floored output for log targets."""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(fan_in, fan_out), nn.LayerNorm(fan_out), nn.GELU(), nn.Dropout(dropout))
        self.skip = nn.Identity() if fan_in == fan_out else nn.Linear(fan_in, fan_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class ResMLP(nn.Module):
    """Inputs: a float matrix whose `embed_index` columns hold small non-negative integer codes."""

    def __init__(self, inputs: int, width: int, blocks: list[int], dropouts: list[float], log_target: bool,
                 embed_index: list[int], embed_vocab: list[int], embed_dim: int):
        super().__init__()
        self.embed_index = embed_index
        self.numeric_index = [i for i in range(inputs) if i not in embed_index]
        self.embeddings = nn.ModuleList(nn.Embedding(v, embed_dim) for v in embed_vocab)
        fan_in = len(self.numeric_index) + embed_dim * len(embed_index)
        self.project = nn.Linear(fan_in, width)
        layers, previous = [], width
        for size, rate in zip(blocks, dropouts):
            layers.append(ResidualBlock(previous, size, rate))
            previous = size
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Linear(previous, 1)
        # log2 targets of values >= 1 are >= 0: Softplus keeps predictions there (seed 002's floor).
        self.floor = nn.Softplus() if log_target else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x[:, self.numeric_index]]
        parts += [emb(x[:, i].long().clamp(min=0, max=emb.num_embeddings - 1))
                  for i, emb in zip(self.embed_index, self.embeddings)]
        h = self.blocks(self.project(torch.cat(parts, dim=1)))
        return self.floor(self.head(h)).squeeze(-1)
