"""Arrays prepared once per machine and kept beside the downloads, so a trial process loads them with numpy
instead of importing scikit-learn (1.4 s on a 2-core machine, paid by every Ray actor on its way to its first
trial) to rebuild them."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

# The layout of the files below; a change to what they hold must change it, so stale files are never read.
_FORMAT = 1


@functools.lru_cache(maxsize=None)
def package_version(name: str) -> str:
    """The installed version of a distribution, read from its metadata (no import): part of a key, since what
    it builds may change with it. Read once per process: finding a distribution's metadata scans the import
    path, 3 ms here, and every trial asks (its data split's key)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "none"


def digest(array: np.ndarray) -> str:
    """A short content hash of an array, for keys."""
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def prepared_dir() -> Path:
    """$REGSWEEP_DATA/prepared (else ~/.cache/regsweep/prepared)."""
    from trainables.data._datasets import cache_dir

    return cache_dir() / "prepared"


def cached_arrays(key: str, build: Callable[[], dict[str, np.ndarray]],
                  packages: tuple[str, ...] = ("scikit-learn",)) -> dict[str, np.ndarray]:
    """The arrays `build()` returns, read from the file of `key` and the installed versions of `packages` (what
    `build` depends on) when an earlier call (any process) wrote it. A file that cannot be read is rebuilt; a
    cache that cannot be written is skipped (the arrays are still returned), and a file appears whole or not at
    all, so processes may race on it."""
    versions = "".join(f"-{name}{package_version(name)}" for name in packages)
    path = prepared_dir() / f"{key}{versions}.v{_FORMAT}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass
    arrays = build()
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
            temporary = handle.name
            np.savez(handle, **arrays)
        os.replace(temporary, path)
    except OSError:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.remove(temporary)
    return arrays
