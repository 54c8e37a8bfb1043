"""IDX parsing, checksums, the offline download error and the train/validation split."""

import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from trainables.data import (
    DatasetError,
    cache_dir,
    download,
    load_dataset,
    read_idx,
    split_train_val,
    verify_md5,
)
from trainables.data import _datasets


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return raw


@pytest.mark.parametrize("gz", [False, True])
def test_reads_good_idx(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if gz else "x.idx")
    write_idx(path, images, gz=gz)
    np.testing.assert_array_equal(read_idx(path), images)


def test_truncated_idx_names_file(tmp_path):
    path = tmp_path / "labels.idx"
    raw = write_idx(path, np.arange(10, dtype=np.uint8))
    path.write_bytes(raw[:-3])
    with pytest.raises(DatasetError, match=r"labels.idx: file truncated: 15 bytes.*needs 18"):
        read_idx(path)


def test_wrong_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(DatasetError, match=r"bad.idx: not an IDX file \(magic bytes 12340801"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(b"\x1f\x8b this is not gzip")
    with pytest.raises(DatasetError, match="broken.gz: corrupt gzip"):
        read_idx(path)


def test_checksum_mismatch(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"hello")
    verify_md5(path, hashlib.md5(b"hello").hexdigest())
    with pytest.raises(DatasetError, match="x.gz: checksum mismatch"):
        verify_md5(path, "0" * 32)


def test_download_from_file_url_verifies_and_leaves_nothing_on_mismatch(tmp_path):
    source = tmp_path / "src.gz"
    source.write_bytes(b"payload")
    target = tmp_path / "cache" / "src.gz"
    with pytest.raises(DatasetError, match="could not download src.gz.*checksum mismatch"):
        download([source.as_uri()], target, "0" * 32)
    assert not target.exists() and list(target.parent.iterdir()) == []
    download([source.as_uri()], target, hashlib.md5(b"payload").hexdigest())
    assert target.read_bytes() == b"payload"


def test_offline_download_fails_with_clear_message(tmp_path):
    target = tmp_path / "cache" / "f.gz"
    with pytest.raises(DatasetError, match=r"(?s)could not download f.gz .*offline.*dataset=digits"):
        download(["http://127.0.0.1:9/f.gz"], target, "0" * 32, timeout=2)
    assert list(target.parent.iterdir()) == []


def _write_fake_mnist(folder, n_train=30, n_test=10, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sums = {}
    for stem, array in {
        "train-images-idx3-ubyte": rng.integers(0, 255, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 255, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }.items():
        path = folder / (stem + (".gz" if gz else ""))
        write_idx(path, array, gz=gz)
        sums[stem] = hashlib.md5(path.read_bytes()).hexdigest()
    return sums


def test_idx_dataset_from_torchvision_layout(tmp_path, monkeypatch):
    sums = _write_fake_mnist(tmp_path / "root" / "FashionMNIST" / "raw")
    monkeypatch.setitem(_datasets._IDX_SOURCES, "fashion_mnist", (["http://127.0.0.1:9/"], sums))
    data = _datasets._idx_dataset("fashion_mnist", str(tmp_path / "root"))
    assert data.train_x.shape == (30, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.train_x.dtype == np.float32 and 0.0 <= data.train_x.min() <= data.train_x.max() <= 1.0


def test_idx_dataset_rejects_tampered_cache_file(tmp_path, monkeypatch):
    sums = _write_fake_mnist(cache_dir() / "mnist")
    sums["t10k-labels-idx1-ubyte"] = "f" * 32
    monkeypatch.setitem(_datasets._IDX_SOURCES, "mnist", (["http://127.0.0.1:9/"], sums))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        _datasets._idx_dataset("mnist", None)


def test_fashion_mnist_offline_is_one_clear_error():
    with pytest.raises(DatasetError, match="could not download train-images-idx3-ubyte.gz"):
        load_dataset("fashion_mnist")


def test_digits_split_is_stratified_and_seeded():
    data = load_dataset("digits")
    assert data.image_shape == (1, 8, 8) and len(data.test_y) == 360
    a_train, a_val = split_train_val(data.train_y, 0.2, seed=3)
    b_train, b_val = split_train_val(data.train_y, 0.2, seed=3)
    c_train, c_val = split_train_val(data.train_y, 0.2, seed=4)
    np.testing.assert_array_equal(a_val, b_val)
    assert not np.array_equal(a_val, c_val)
    assert set(a_train).isdisjoint(a_val) and len(a_train) + len(a_val) == len(data.train_y)
    counts = np.bincount(data.train_y[a_val], minlength=10)
    assert counts.min() >= 25  # every class is represented in proportion


def test_mnist_5k_has_fashion_mnist_shapes():
    data = load_dataset("mnist_5k")
    assert data.image_shape == (1, 28, 28) and data.num_classes == 10
    assert len(data.train_y) + len(data.test_y) == 5000


LOAD_DIGITS = """
import sys
from trainables.data import load_dataset, split_train_val
data = load_dataset("digits")
train, val = split_train_val(data.train_y, 0.2, seed=5)
print("sklearn" in sys.modules, data.train_x.sum(), val.sum())
"""


def test_a_trial_process_reads_the_prepared_digits_without_importing_scikit_learn(tmp_path):
    """Bundled datasets and splits are built once per machine: the next process (a Ray actor, a worker) loads
    numpy arrays instead of importing scikit-learn, with the same arrays."""
    import subprocess
    import sys

    env = {**os.environ, "REGSWEEP_DATA": str(tmp_path / "cache")}
    first, second = (subprocess.run([sys.executable, "-c", LOAD_DIGITS], env=env, capture_output=True, text=True,
                                    check=True).stdout.split() for _ in range(2))
    assert first[0] == "True" and second[0] == "False"
    assert first[1:] == second[1:]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "prepared").iterdir()) == ["digits", "split"]


def test_the_prepared_arrays_keys_read_package_metadata_once_per_process(tmp_path, monkeypatch):
    """Finding a distribution's metadata scans the import path (3 ms here), and every trial's split asks for
    scikit-learn's version: read once per process."""
    from importlib import metadata

    from trainables.data import _prepared

    monkeypatch.setenv("REGSWEEP_DATA", str(tmp_path))
    _prepared.package_version.cache_clear()
    reads, real = [], metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: reads.append(name) or real(name))
    labels = np.repeat(np.arange(4), 10)
    splits = [split_train_val(labels, 0.25, seed=seed)[1] for seed in (1, 2, 1)]
    assert reads == ["scikit-learn"]
    assert _prepared.package_version("scikit-learn") == real("scikit-learn")
    np.testing.assert_array_equal(splits[0], splits[2])


def test_prepared_arrays_equal_a_fresh_build_and_a_damaged_file_is_rebuilt(tmp_path, monkeypatch):
    from sklearn.model_selection import train_test_split

    monkeypatch.setenv("REGSWEEP_DATA", str(tmp_path))
    labels = np.repeat(np.arange(4), 10)
    built = split_train_val(labels, 0.25, seed=2)
    expected_val = np.sort(train_test_split(np.arange(40), test_size=0.25, random_state=2, stratify=labels)[1])
    np.testing.assert_array_equal(built[1], expected_val)
    (stored,) = (tmp_path / "prepared").iterdir()
    stored.write_bytes(b"not an npz")  # a disk error, a file cut short
    np.testing.assert_array_equal(split_train_val(labels, 0.25, seed=2)[1], expected_val)
    np.testing.assert_array_equal(np.load(stored)["val"], expected_val)  # rewritten whole
    assert [p.name for p in (tmp_path / "prepared").iterdir()] == [stored.name]  # no temporary left
    # Other labels, fraction or seed are other splits, never this file's.
    assert not np.array_equal(split_train_val(labels, 0.25, seed=3)[1], expected_val)
    assert len(split_train_val(labels, 0.5, seed=2)[1]) == 20
    assert len(split_train_val(np.repeat(np.arange(4), 12), 0.25, seed=2)[1]) == 12
