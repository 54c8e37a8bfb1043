"""Trial configuration: one pydantic model per trainable, plain data with defaults.

The engine validates every config a sweep can produce with these models before Ray starts,
so every field states what is allowed.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Norm2d = Literal["none", "batch", "instance", "layer", "group"]
Norm1d = Literal["none", "batch", "layer"]
Rates = Union[float, list[float]]  # one dropout rate for every layer, or one per layer


def _check_widths(key: str, widths: list[int]) -> list[int]:
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"{key} must be a non-empty list of positive widths, given {widths}")
    return widths


def _check_rates(dropout: Rates, layers: list[int] | None, what: str) -> Rates:
    rates = dropout if isinstance(dropout, list) else [dropout]
    if any(not 0.0 <= r < 1.0 for r in rates):
        raise ValueError(f"dropout rates must be in [0, 1), given {dropout}")
    if isinstance(dropout, list) and layers is not None and len(dropout) != len(layers):
        raise ValueError(f"dropout list has {len(dropout)} rates for {len(layers)} {what}")
    return dropout


def _per_layer(dropout: Rates, layers: int) -> list[float]:
    return list(dropout) if isinstance(dropout, list) else [dropout] * layers


class TrainConfig(BaseModel):
    """Keys every trainable accepts: data, optimisation, schedule, early stopping."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    dataset: Literal["digits", "mnist_5k", "fashion_mnist", "mnist"] = "digits"
    data_dir: Optional[str] = None
    val_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    seed: int = Field(0, ge=0)
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    schedule: Literal["none", "cosine", "exponential", "plateau"] = "none"
    lr_decay: float = Field(0.95, gt=0.0, le=1.0, description="gamma of exponential, factor of plateau")
    plateau_patience: int = Field(2, ge=0)
    grad_clip: Optional[float] = Field(None, gt=0.0)
    l1: float = Field(0.0, ge=0.0)
    l2: float = Field(0.0, ge=0.0)
    patience: Optional[int] = Field(None, ge=1, description="early stopping on val_loss")
    eval_test: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Optional[int] = Field(None, ge=1)
    bf16: bool = Field(False, description="bf16 autocast, on GPUs and on CPUs (fast on those with AMX or "
                       "AVX512-BF16)")
    deterministic: bool = Field(False, description="bit-identical reruns on a GPU (slower kernels); CPU runs "
                                "are deterministic already")


class CNNConfig(TrainConfig):
    """Conv -> Norm -> ReLU -> Dropout -> Pool blocks (seed 001), then a fully connected head."""

    layers: int = Field(2, ge=1, le=8)
    filters: int = Field(32, ge=1, le=1024)
    width_growth: float = Field(2.0, ge=1.0, le=4.0)
    kernel_size: Literal[1, 3, 5, 7] = 3
    norm: Norm2d = "batch"
    norm_groups: int = Field(4, ge=1)
    norm_position: Literal["before_act", "after_act"] = "before_act"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    dropout_kind: Literal["dropout", "dropout2d"] = "dropout2d"
    pooling: bool = True
    pool_every: int = Field(1, ge=1, le=8)
    fc_units: list[int] = Field(default_factory=lambda: [128])
    fc_dropout: float = Field(0.0, ge=0.0, lt=1.0)


class MLPConfig(TrainConfig):
    """Flattened inputs through dense layers; per-layer dropout and optional residuals (seed 002/004)."""

    hidden: list[int] = Field(default_factory=lambda: [256, 128])
    dropout: Rates = 0.0
    norm: Norm1d = "none"
    norm_position: Literal["before_act", "after_act"] = "before_act"
    residual: bool = False

    # Field validators (not a model validator) so an error names the key it is about.
    @field_validator("hidden")
    @classmethod
    def _check_hidden(cls, hidden: list[int]) -> list[int]:
        return _check_widths("hidden", hidden)

    @field_validator("dropout")
    @classmethod
    def _check_dropout(cls, dropout: Rates, info: ValidationInfo) -> Rates:
        return _check_rates(dropout, info.data.get("hidden"), "hidden layers")

    def dropout_rates(self) -> list[float]:
        """One dropout rate per hidden layer."""
        return _per_layer(self.dropout, len(self.hidden))


class ResMLPConfig(TrainConfig):
    """Residual MLP regression on a table (seed 002)."""

    dataset: str = "diabetes"  # or parquet:PATH
    features: Optional[list[str]] = None
    target: Optional[str] = None
    group_by: list[str] = Field(default_factory=list)
    width: int = Field(256, ge=1, le=65_536)
    blocks: list[int] = Field(default_factory=lambda: [256, 128, 64])
    dropout: Rates = Field(default_factory=lambda: [0.3, 0.2, 0.1])
    log_target: bool = False
    group_weights: Union[None, Literal["balanced"], dict[str, float]] = None
    embed_columns: list[str] = Field(default_factory=list)
    embed_dim: int = Field(4, ge=1, le=256)

    @field_validator("dataset")
    @classmethod
    def _check_dataset(cls, dataset: str) -> str:
        if dataset != "diabetes" and not dataset.startswith("parquet:"):
            raise ValueError("allowed: diabetes or parquet:PATH")
        return dataset

    @field_validator("blocks")
    @classmethod
    def _check_blocks(cls, blocks: list[int]) -> list[int]:
        return _check_widths("blocks", blocks)

    @field_validator("dropout")
    @classmethod
    def _check_dropout(cls, dropout: Rates, info: ValidationInfo) -> Rates:
        return _check_rates(dropout, info.data.get("blocks"), "blocks")

    def dropout_rates(self) -> list[float]:
        """One dropout rate per residual block."""
        return _per_layer(self.dropout, len(self.blocks))


class ConvLSTMConfig(TrainConfig):
    """Stacked ConvLSTM forecasting of a (time, height, width) field (seed 000)."""

    dataset: str = "synthetic"  # or npy:PATH, npz:PATH[:KEY]
    synthetic_shape: list[int] = Field(default_factory=lambda: [120, 24, 32])
    data_seed: int = Field(0, ge=0)
    seq_len: int = Field(5, ge=1, le=64)
    horizon: int = Field(1, ge=1, le=64)
    layers: int = Field(2, ge=1, le=6)
    filters: int = Field(32, ge=1, le=512)
    kernel_size: Literal[1, 3, 5, 7] = 3
    norm: Literal["none", "batch"] = "batch"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    batch_size: int = Field(16, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0.0, le=10.0)

    @field_validator("dataset")
    @classmethod
    def _check_dataset(cls, dataset: str) -> str:
        if dataset != "synthetic" and not dataset.startswith(("npy:", "npz:")):
            raise ValueError("allowed: synthetic, npy:PATH or npz:PATH[:KEY]")
        return dataset

    @field_validator("synthetic_shape")
    @classmethod
    def _check_shape(cls, shape: list[int]) -> list[int]:
        if len(shape) != 3 or min(shape) < 2:
            raise ValueError(f"synthetic_shape is [frames, height, width], each >= 2; given {shape}")
        return shape
