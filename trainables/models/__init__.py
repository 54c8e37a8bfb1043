"""Models: the configurable CNN and MLP of the seed journals."""

from __future__ import annotations

import torch
from torch import nn

from trainables._config import CNNConfig, ConvLSTMConfig, MLPConfig, ResMLPConfig, TrainConfig
from trainables.models._cnn import InvalidModelConfig, block_widths, build_cnn
from trainables.models._mlp import DenseBlock, build_mlp
from trainables.models._convlstm import ConvLSTMForecaster
from trainables.models._resmlp import ResMLP


def build_model(cfg: TrainConfig, image_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build the model a config describes (CNNConfig or MLPConfig)."""
    if isinstance(cfg, CNNConfig):
        return build_cnn(cfg, image_shape, num_classes)
    if isinstance(cfg, MLPConfig):
        return build_mlp(cfg, image_shape, num_classes)
    if isinstance(cfg, ConvLSTMConfig):
        return ConvLSTMForecaster(image_shape[0], cfg.layers, cfg.filters, cfg.kernel_size, cfg.dropout, cfg.norm)
    if isinstance(cfg, ResMLPConfig):
        # Embedding vocabularies come from the data; for shape checks one code per column will do.
        embed_index = list(range(len(cfg.embed_columns)))
        return ResMLP(image_shape[0], cfg.width, cfg.blocks, cfg.dropout_rates(), cfg.log_target,
                      embed_index, [2] * len(embed_index), cfg.embed_dim)
    raise TypeError(f"no model for config type {type(cfg).__name__}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Above this many parameters the shape check runs on the meta device instead of CPU memory.
_CPU_CHECK_LIMIT = 50_000_000


def check_buildable(cfg: TrainConfig, image_shape: tuple[int, ...], num_classes: int) -> int:
    """Build the model and run one forward pass on two zero inputs, without initialising weights.

    The model is built on the meta device (no memory, no init), then given uninitialised CPU memory:
    a forward pass there costs milliseconds, while the first meta-device forward pass imports torch's
    decompositions (about a second). Models above 50M parameters stay on the meta device.
    Returns the parameter count; raises InvalidModelConfig for configs that cannot work.
    """
    with torch.device("meta"):
        model = build_model(cfg, image_shape, num_classes)
    parameters = count_parameters(model)
    device = "cpu" if parameters <= _CPU_CHECK_LIMIT else "meta"
    if device == "cpu":
        # What to_empty does, with torch.empty: to_empty's empty_like of a meta tensor imports torch's Python
        # decompositions and sympy (0.5-0.7 s), which a driver that trains nothing never needs otherwise.
        model = model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))
    # A forecaster takes a sequence: (batch, time, channels, height, width).
    shape = (2, cfg.seq_len, *image_shape) if isinstance(cfg, ConvLSTMConfig) else (2, *image_shape)
    try:
        with torch.no_grad():
            model(torch.zeros(*shape, device=device))
    except RuntimeError as exc:
        raise InvalidModelConfig("model", f"forward pass fails: {exc}") from None
    return parameters


__all__ = [
    "DenseBlock",
    "InvalidModelConfig",
    "block_widths",
    "build_model",
    "check_buildable",
    "count_parameters",
]
