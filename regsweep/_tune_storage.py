"""Ray Tune's storage: a local filesystem in which every file written appears whole or not at all, and a
check, before Tuner.restore, that the state Tune saved can be read (Ray-free: `resume` runs it before
anything starts).

Tune saves its experiment state (trial list, searcher state) to a staging folder and copies it to the
storage path in a background thread, and workers copy their checkpoints there. On a local disk that copy
truncates the previous file first: a driver killed mid-copy leaves a half-written experiment state, and
Tuner.restore then fails and, by Tune's design, silently starts the experiment again from an empty config.
Here each file is written beside its destination and renamed into place when complete, so a kill leaves
the previous version whole."""

from __future__ import annotations

import fnmatch
import json
import os
import pickle
import re
import shutil
import threading
import uuid
from typing import Any, Callable

import pyarrow as pa
import pyarrow.fs as pafs

from regsweep._results import filesystem_for, journaled_trials
from regsweep._state import SweepPaths, SweepStateError

# Tune finds its state by pattern ("experiment_state-*.json"); a leftover temporary file never matches.
TEMPORARY_MARK = ".regsweep-partial-"
EXPERIMENT_STATE = "experiment_state-*.json"
# Tune deletes a trial's checkpoint beyond num_to_keep as soon as a newer one is registered, and only then
# snapshots the experiment, in a background upload: a driver killed in between leaves a snapshot naming a
# deleted checkpoint, which Tuner.restore cannot recover the trial from (one kill in five in the resume test).
# Each deletion waits here for the second experiment state written after it: that upload began after the
# deletion, so the state it holds was saved after it and no longer names the checkpoint. (Uploads run one at
# a time, and Tune saves the state it uploads in the same call that starts the upload.)
_SNAPSHOTS_BEFORE_DELETE = 2
_deferred: list[list[Any]] = []  # [checkpoint folder, experiment states written since Tune deleted it]
_deferred_lock = threading.Lock()


class _RenameOnClose:
    """A binary file at a temporary name beside `path`, renamed to `path` by close()."""

    def __init__(self, path: str):
        self.path = path
        folder, name = os.path.split(path)
        self.temporary = os.path.join(folder, f".{name}{TEMPORARY_MARK}{uuid.uuid4().hex[:8]}")
        self._handle = open(self.temporary, "wb")
        self.closed = False

    def write(self, data: Any) -> int:
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    def tell(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._handle.close()
        os.replace(self.temporary, self.path)
        if fnmatch.fnmatch(os.path.basename(self.path), EXPERIMENT_STATE):
            _experiment_state_written()


def _experiment_state_written() -> None:
    with _deferred_lock:
        for entry in _deferred:
            entry[1] += 1
    _delete_deferred(_SNAPSHOTS_BEFORE_DELETE)


def delete_deferred_checkpoints() -> None:
    """Delete the checkpoints Tune gave up on; for when a stage has finished and will not be resumed."""
    _delete_deferred(0)


def _delete_deferred(snapshots_since: int) -> None:
    """Delete the held-back checkpoints with at least `snapshots_since` experiment states written after them."""
    with _deferred_lock:
        due = [folder for folder, seen in _deferred if seen >= snapshots_since]
        _deferred[:] = [entry for entry in _deferred if entry[1] < snapshots_since]
    for folder in due:
        shutil.rmtree(folder, ignore_errors=True)


class AtomicLocalHandler(pafs.FileSystemHandler):
    """pyarrow's LocalFileSystem, except that files opened for writing are renamed into place on close."""

    def __init__(self) -> None:
        self._local = pafs.LocalFileSystem()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def __reduce__(self) -> tuple[Any, ...]:
        return AtomicLocalHandler, ()

    def get_type_name(self) -> str:
        return "regsweep-atomic-local"

    def normalize_path(self, path: str) -> str:
        return self._local.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        if re.fullmatch(r"checkpoint_\d+", os.path.basename(path.rstrip("/"))):
            with _deferred_lock:
                _deferred.append([path, 0])
            return
        self._local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("regsweep's Tune storage refuses to delete the contents of the filesystem's root")

    def delete_file(self, path: str) -> None:
        self._local.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        with self._local.open_input_stream(src) as source, self.open_output_stream(dest, None) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self._local.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self._local.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict[str, str] | None) -> pa.NativeFile:
        return pa.PythonFile(_RenameOnClose(path), mode="w")

    def open_append_stream(self, path: str, metadata: dict[str, str] | None) -> pa.NativeFile:
        return self._local.open_append_stream(path)


def atomic_local_filesystem() -> pafs.PyFileSystem:
    """The filesystem Tune is given for a local storage path, by the Tuner and by Tuner.restore alike."""
    return pafs.PyFileSystem(AtomicLocalHandler())


def _load_pickle(data: bytes) -> Any:
    # Ray's cloudpickle writes standard pickles; the classes they name are imported as they load.
    return pickle.loads(data)


# What Tuner.restore reads (Tune's CKPT_FILE_TMPL of its controller, searchers and callbacks), newest first by
# name as Tune picks it, and how. A file that fails here makes Tune's resume fail.
_STATE_FILES: tuple[tuple[str, Callable[[bytes], Any]], ...] = (
    ("tuner.pkl", _load_pickle),
    (EXPERIMENT_STATE, json.loads),
    ("basic-variant-state-*.json", _load_pickle),
    ("search_gen_state-*.json", _load_pickle),
    ("searcher-state-*.pkl", _load_pickle),
    ("callback-states-*.pkl", _load_pickle),
)


def stage_path(storage: str, stage: str) -> str:
    """Where Tune keeps a stage's experiment (the Tuner's run name is the stage)."""
    return f"{storage.rstrip('/')}/{stage}" if "://" in storage else os.path.join(os.path.abspath(storage), stage)


def saved_state(path: str) -> bool:
    """Whether Tune saved a Tuner and an experiment state at `path` (a stage's folder or URI) for
    Tuner.restore: False when it has none (a new stage, or a driver killed before Tune's first snapshot).

    Raises ValueError naming the file when a file Tune needs to resume cannot be read: Tune would log the
    failure and start the stage again from an empty config, as if it were a new experiment."""
    fs, folder = filesystem_for(path)
    infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    names = [info.base_name for info in infos if info.type == pafs.FileType.File]
    found_experiment = False
    for pattern, load in _STATE_FILES:
        matching = fnmatch.filter(names, pattern)
        if not matching:
            continue
        newest = max(matching)
        found_experiment = found_experiment or pattern.startswith("experiment_state")
        try:
            with fs.open_input_stream(f"{folder.rstrip('/')}/{newest}") as handle:
                load(handle.read())
        except Exception as exc:  # any failure here is one Tune's resume would meet
            raise ValueError(f"{folder}/{newest}: Ray Tune's saved state cannot be read "
                             f"({type(exc).__name__}: {exc})") from exc
    return found_experiment and "tuner.pkl" in names


def resumable_stage(paths: SweepPaths, stage: str) -> bool:
    """Whether Tuner.restore can resume a sweep's stage; False for a stage that never started (a new Tuner
    runs it). Raises SweepStateError rather than let Tune resume from state it cannot read."""
    over = "; `regsweep run SPEC --fresh` starts the sweep over"
    path = stage_path(paths.storage, stage)
    try:
        if saved_state(path):
            return True
    except ValueError as exc:
        raise SweepStateError(f"cannot resume stage {stage!r}: {exc}{over}") from exc
    if any(journaled_trials(paths.journal, stage)):
        raise SweepStateError(f"cannot resume stage {stage!r}: its trials are in {paths.journal} but Ray Tune saved "
                              f"no experiment state under {path}{over}")
    return False
