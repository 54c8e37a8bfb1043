"""The best trial's model as a file of its own: its weights from a checkpoint, with what made them."""

from __future__ import annotations

from typing import Any

import torch


def export_model(checkpoint: str, target: str, meta: dict[str, Any]) -> None:
    """Write `meta` (trainable, config, metric) with the weights and epoch of a Trial checkpoint to `target`."""
    # Loaded on the CPU: the file must load on machines without the GPU the trial trained on.
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    torch.save({**meta, "state_dict": state["model"], "epoch": state["epoch"]}, target)
