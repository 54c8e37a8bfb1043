"""Datasets: real IDX downloads with checksums, and offline bundled images."""

from trainables.data._datasets import (
    DATASETS,
    ImageDataset,
    cache_dir,
    load_dataset,
    split_train_val,
)
from trainables.data._idx import DatasetError, download, parse_idx, read_idx, verify_md5

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageDataset",
    "cache_dir",
    "download",
    "load_dataset",
    "parse_idx",
    "read_idx",
    "split_train_val",
    "verify_md5",
]
