"""Stacked ConvLSTM forecaster (seed 000): ConvLSTM -> BatchNorm -> Dropout per layer, a Conv2d head.
Gate convolutions match Keras' ConvLSTM2D, so parameter counts compare with the journal's."""

from __future__ import annotations

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    def __init__(self, channels: int, filters: int, kernel_size: int):
        super().__init__()
        self.filters = filters
        self.gates = nn.Conv2d(channels + filters, 4 * filters, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class ConvLSTMForecaster(nn.Module):
    """Input (batch, time, channels, height, width) -> next frame (batch, height, width)."""

    def __init__(self, channels: int, layers: int, filters: int, kernel_size: int, dropout: float, norm: str):
        super().__init__()
        self.cells = nn.ModuleList(ConvLSTMCell(channels if i == 0 else filters, filters, kernel_size)
                                   for i in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm3d(filters) if norm == "batch" else nn.Identity() for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Conv2d(filters, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _, height, width = x.shape
        sequence = x
        for index, (cell, norm) in enumerate(zip(self.cells, self.norms)):
            h = sequence.new_zeros(batch, cell.filters, height, width)
            c = torch.zeros_like(h)
            outputs = []
            for t in range(steps):
                h, c = cell(sequence[:, t], (h, c))
                outputs.append(h)
            last = index == len(self.cells) - 1
            # Every layer but the last returns its whole sequence, as Keras' return_sequences.
            stacked = torch.stack(outputs[-1:] if last else outputs, dim=2)  # (batch, filters, time, h, w)
            stacked = self.dropout(norm(stacked))
            sequence = stacked.transpose(1, 2)
        return self.head(sequence[:, -1]).squeeze(1)
