"""A trial's optimiser and learning-rate schedule, from its config."""

from __future__ import annotations

from typing import Any

import torch

from trainables._config import TrainConfig


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum, Adam or AdamW over all of `model`'s parameters, with the config's lr and weight decay."""
    params = list(model.parameters())
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        # One fused kernel per step instead of a handful per parameter group: 2-4% faster epochs on
        # this CPU, fewer kernel launches on a GPU.
        return optimizer(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # torch < 2.4 on the CPU, or a device without fused kernels
        return optimizer(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The config's schedule over `optimizer` (cosine, exponential or on-plateau), or None for a constant lr."""
    sched = torch.optim.lr_scheduler
    if cfg.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.schedule == "exponential":
        return sched.ExponentialLR(optimizer, gamma=cfg.lr_decay)
    if cfg.schedule == "plateau":
        return sched.ReduceLROnPlateau(optimizer, factor=cfg.lr_decay, patience=cfg.plateau_patience)
    return None
