"""IDX files (the MNIST family's format): parsing, checksums and a safe download.

Every failure is a :class:`DatasetError` whose message names the file and what to do,
so callers can print it without a traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

# Type codes from the IDX specification (third byte of the magic number).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetError(Exception):
    """A dataset could not be read or fetched; the message says which file and what to do."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    Raises DatasetError for a wrong magic number, a truncated or corrupt file.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(
            f"{path}: corrupt gzip data ({exc}); delete the file and download it again"
        ) from None
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(
            f"{source}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; "
            "expected 0000 followed by a type code and the number of dimensions)"
        )
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{source}: truncated header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DatasetError(
            f"{source}: file {what}: {len(raw)} bytes, the header {shape} needs {expected}; "
            "delete it and download it again"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False)


def md5_of(path: Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str) -> None:
    """Raise DatasetError unless the file's MD5 is `expected`."""
    actual = md5_of(path)
    if actual != expected:
        raise DatasetError(
            f"{path}: checksum mismatch (md5 {actual}, expected {expected}); "
            "the file is corrupt or not the official release: delete it and download it again"
        )


def download(urls: list[str], target: Path, md5: str, timeout: float = 30.0) -> Path:
    """Download `target` from the first URL that works, verified against `md5`.

    Writes to a temporary name and renames only after the checksum matches, so an
    interrupted or bad download never leaves a half-written file in the cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    failures = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            verify_md5(partial, md5)
            os.replace(partial, target)
            return target
        except (urllib.error.URLError, OSError, DatasetError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
        finally:
            partial.unlink(missing_ok=True)
    raise DatasetError(
        f"could not download {target.name} ({'; '.join(failures)}).\n"
        f"If this machine is offline, download the file elsewhere and put it in {target.parent} "
        "(or point REGSWEEP_DATA / the data_dir config key at a folder that has it), "
        "or use dataset=digits, which needs no download."
    )
