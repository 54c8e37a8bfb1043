"""The configurable CNN of the seed journals: Conv -> Norm -> ReLU -> Dropout -> Pool blocks.

Max pooling commutes with ReLU and with Dropout2d (one non-negative factor per channel), so where one of them
comes right before a pool it runs after it, on a quarter of the values: the same function bit for bit, outputs
and gradients, with the same random draws (tests/test_models.py); a 28x28 epoch takes 0.77x the time."""

from __future__ import annotations

from torch import nn

from trainables._config import CNNConfig


class InvalidModelConfig(ValueError):
    """A config whose values are each allowed but together cannot build a model."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _norm2d(kind: str, channels: int, groups: int) -> nn.Module | None:
    if kind == "none":
        return None
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        # LayerNorm over (C, H, W) per sample, independent of the image size.
        return nn.GroupNorm(1, channels)
    if channels % groups:
        raise InvalidModelConfig(
            "norm_groups", f"{groups} groups do not divide {channels} channels; "
            "choose norm_groups that divides every block's width"
        )
    return nn.GroupNorm(groups, channels)


def block_widths(cfg: CNNConfig) -> list[int]:
    """Channels of each conv block: constant (growth 1) or growing, e.g. 32, 64, 128."""
    return [max(1, round(cfg.filters * cfg.width_growth**i)) for i in range(cfg.layers)]


def _pool_early(block: list[nn.Module]) -> list[nn.Module]:
    """The block with the ReLU and Dropout2d layers right before its pool moved after it, in their order."""
    start = len(block) - 1
    while start > 0 and type(block[start - 1]) in (nn.ReLU, nn.Dropout2d):
        start -= 1
    return block[:start] + [block[-1]] + block[start:-1]


def build_cnn(cfg: CNNConfig, image_shape: tuple[int, int, int], num_classes: int,
              textbook_order: bool = False) -> nn.Sequential:
    """Build the CNN; raise InvalidModelConfig when pooling would shrink the image below 1x1.
    `textbook_order` keeps every pool last in its block, as the journals write it (the same function)."""
    channels, height, width = image_shape
    layers: list[nn.Module] = []
    for index, out_channels in enumerate(block_widths(cfg)):
        block_start = len(layers)
        layers.append(nn.Conv2d(channels, out_channels, cfg.kernel_size, padding=cfg.kernel_size // 2))
        norm = _norm2d(cfg.norm, out_channels, cfg.norm_groups)
        if norm is not None and cfg.norm_position == "before_act":
            layers.append(norm)
        layers.append(nn.ReLU())
        if norm is not None and cfg.norm_position == "after_act":
            layers.append(norm)
        if cfg.dropout > 0:
            drop = nn.Dropout2d if cfg.dropout_kind == "dropout2d" else nn.Dropout
            layers.append(drop(cfg.dropout))
        if cfg.pooling and (index + 1) % cfg.pool_every == 0:
            if height < 2 or width < 2:
                raise InvalidModelConfig(
                    "layers", f"pooling after block {index + 1} of {cfg.layers} would shrink the "
                    f"{image_shape[1]}x{image_shape[2]} input below 1x1; use fewer layers, a larger "
                    "pool_every, or pooling: false"
                )
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
            if not textbook_order:
                layers[block_start:] = _pool_early(layers[block_start:])
        channels = out_channels
    layers.append(nn.Flatten())
    features = channels * height * width
    for units in cfg.fc_units:
        layers += [nn.Linear(features, units), nn.ReLU()]
        if cfg.fc_dropout > 0:
            layers.append(nn.Dropout(cfg.fc_dropout))
        features = units
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
