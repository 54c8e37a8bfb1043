"""Ray Tune's storage, through a filesystem that holds Tune's checkpoint deletions back (any storage) and,
on a local disk, makes every file written appear whole or not at all; and a check, before Tuner.restore,
that the state Tune saved can be read (Ray-free: `resume` runs it before anything starts).

Tune saves its experiment state (trial list, searcher state) to a staging folder and copies it to the
storage path in a background thread, and workers copy their checkpoints there. On a local disk that copy
truncates the previous file first: a driver killed mid-copy leaves a half-written experiment state, and
Tuner.restore then fails and, by Tune's design, silently starts the experiment again from an empty config.
Here each local file is written beside its destination and renamed into place when complete, so a kill
leaves the previous version whole. (Object stores such as S3 already publish an object only when its upload
completes.)"""

from __future__ import annotations

import fnmatch
import json
import os
import pickle
import re
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
_deferred: list[list[Any]] = []  # [filesystem, checkpoint folder, experiment states written since deleted]
_deferred_lock = threading.Lock()


class _OutputStream:
    """A writable stream for `path` whose close() closes `stream`, then `publish`es it (on a local disk: renames
    the temporary file into place), then reports the file written."""

    def __init__(self, stream: Any, path: str, publish: Callable[[], None] = lambda: None):
        self.path = path
        self._stream = stream
        self._publish = publish
        self.closed = False

    def write(self, data: Any) -> int:
        return self._stream.write(data)

    def flush(self) -> None:
        self._stream.flush()

    def tell(self) -> int:
        return self._stream.tell()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stream.close()
        self._publish()
        _file_written(self.path)


def _renamed_on_close(path: str) -> _OutputStream:
    """A binary file at a temporary name beside `path`, renamed to `path` by close()."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}{TEMPORARY_MARK}{uuid.uuid4().hex[:8]}")
    return _OutputStream(open(temporary, "wb"), path, publish=lambda: os.replace(temporary, path))


def _file_written(path: str) -> None:
    if not fnmatch.fnmatch(os.path.basename(path.rstrip("/")), EXPERIMENT_STATE):
        return
    with _deferred_lock:
        for entry in _deferred:
            entry[2] += 1
    _delete_deferred(_SNAPSHOTS_BEFORE_DELETE)


def delete_deferred_checkpoints() -> None:
    """Delete the checkpoints Tune gave up on; for when a stage has finished and will not be resumed."""
    _delete_deferred(0)


def _delete_deferred(snapshots_since: int) -> None:
    """Delete the held-back checkpoints with at least `snapshots_since` experiment states written after them."""
    with _deferred_lock:
        due = [(fs, folder) for fs, folder, seen in _deferred if seen >= snapshots_since]
        _deferred[:] = [entry for entry in _deferred if entry[2] < snapshots_since]
    for fs, folder in due:
        try:
            fs.delete_dir(folder)
        except OSError:  # already gone (a resumed stage), or the store refused: leave it
            pass


class TuneStorageHandler(pafs.FileSystemHandler):
    """A pyarrow filesystem (local disk, S3, GCS, ...) as Tune's storage: Tune's checkpoint deletions wait
    for later snapshots, and on a local disk files opened for writing are renamed into place on close."""

    def __init__(self, fs: pafs.FileSystem):
        self._fs = fs
        self._local = isinstance(fs, pafs.LocalFileSystem)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TuneStorageHandler) and self._fs.equals(other._fs)

    def __hash__(self) -> int:
        return hash((TuneStorageHandler, self._fs.type_name))

    def __reduce__(self) -> tuple[Any, ...]:
        return TuneStorageHandler, (self._fs,)

    def get_type_name(self) -> str:
        return f"regsweep-tune-{self._fs.type_name}"

    def normalize_path(self, path: str) -> str:
        return self._fs.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        if re.fullmatch(r"checkpoint_\d+", os.path.basename(path.rstrip("/"))):
            with _deferred_lock:
                _deferred.append([self._fs, path, 0])
            return
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("regsweep's Tune storage refuses to delete the contents of the filesystem's root")

    def delete_file(self, path: str) -> None:
        self._fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._fs.move(src, dest)
        _file_written(dest)

    def copy_file(self, src: str, dest: str) -> None:
        if not self._local:
            self._fs.copy_file(src, dest)  # a store's own copy publishes the object whole
            _file_written(dest)
            return
        with self._fs.open_input_stream(src) as source, self.open_output_stream(dest, None) as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self._fs.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self._fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict[str, str] | None) -> pa.NativeFile:
        if self._local:
            return pa.PythonFile(_renamed_on_close(path), mode="w")
        return pa.PythonFile(_OutputStream(self._fs.open_output_stream(path, metadata=metadata), path), mode="w")

    def open_append_stream(self, path: str, metadata: dict[str, str] | None) -> pa.NativeFile:
        return self._fs.open_append_stream(path, metadata=metadata)


def AtomicLocalHandler() -> TuneStorageHandler:  # noqa: N802 (the class name Tune's older snapshots pickled)
    """The local handler as Tune's state names it in sweeps saved while regsweep's Tune storage was local only
    (before it took any pyarrow filesystem); kept so that they resume."""
    return TuneStorageHandler(pafs.LocalFileSystem())


def tune_filesystem(storage: str) -> tuple[pafs.PyFileSystem, str]:
    """The filesystem and path in it that Tune is given for a storage path or URI, by the Tuner and by
    Tuner.restore alike."""
    fs, path = filesystem_for(storage)
    return pafs.PyFileSystem(TuneStorageHandler(fs)), path


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
