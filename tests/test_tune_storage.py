"""Tune's storage: files written through it appear whole or not at all, even when the writer is killed."""

import fnmatch
import pickle
import subprocess
import sys

import pyarrow.fs as pafs
import pytest

from regsweep._tune_storage import saved_state, stage_path, tune_filesystem

# Writes a new version of `path` through the chosen filesystem and dies, as a killed driver would, after
# half of it is out: the sync of Tune's experiment state to the storage path is such a write.
KILLED_WRITER = """
import os, sys
import pyarrow.fs as pafs
from regsweep._tune_storage import tune_filesystem
fs = tune_filesystem(sys.argv[1])[0] if sys.argv[2] == "atomic" else pafs.LocalFileSystem()
stream = fs.open_output_stream(sys.argv[1])
stream.write(b'{"trial_data": [')
stream.flush()
os._exit(9)
"""


@pytest.mark.parametrize("filesystem", ["atomic", "local"])
def test_a_writer_killed_mid_file_leaves_the_previous_version_whole(tmp_path, filesystem):
    (tmp_path / "search").mkdir()
    state = tmp_path / "search" / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text('{"trial_data": []}')
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(state), filesystem])
    assert killed.returncode == 9
    if filesystem == "local":
        # What Tune's own copy to a local storage path does: the file it overwrites is cut short.
        assert state.read_text() == '{"trial_data": ['
        return
    assert state.read_text() == '{"trial_data": []}'
    leftovers = [p.name for p in state.parent.iterdir() if p != state]
    assert len(leftovers) == 1 and not fnmatch.fnmatch(leftovers[0], "experiment_state-*.json")


def test_files_copied_through_it_arrive_complete_and_it_pickles_for_the_workers(tmp_path):
    source = tmp_path / "staging"
    (source / "trial" / "checkpoint_000001").mkdir(parents=True)
    payload = bytes(range(256)) * 9000  # 2.3 MB: more than one write
    (source / "trial" / "checkpoint_000001" / "model.pt").write_bytes(payload)
    (source / "tuner.pkl").write_bytes(b"tuner")
    filesystem = pickle.loads(pickle.dumps(tune_filesystem(str(tmp_path))[0]))
    pafs.copy_files(str(source), str(tmp_path / "storage"), destination_filesystem=filesystem)
    assert (tmp_path / "storage" / "trial" / "checkpoint_000001" / "model.pt").read_bytes() == payload
    assert (tmp_path / "storage" / "tuner.pkl").read_bytes() == b"tuner"
    assert sorted(p.name for p in (tmp_path / "storage").rglob("*")) == ["checkpoint_000001", "model.pt", "trial",
                                                                       "tuner.pkl"]
    filesystem.copy_file(str(tmp_path / "storage" / "tuner.pkl"), str(tmp_path / "copy.pkl"))
    assert (tmp_path / "copy.pkl").read_bytes() == b"tuner"


def test_saved_state_is_false_until_tune_saved_a_tuner_and_an_experiment_state(tmp_path):
    stage = stage_path(str(tmp_path), "search")
    assert stage == str(tmp_path / "search")
    assert stage_path("s3://bucket/sweeps/dropout/", "confirm") == "s3://bucket/sweeps/dropout/confirm"
    assert not saved_state(stage)  # no folder yet
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "tuner.pkl").write_bytes(pickle.dumps({}))
    assert not saved_state(stage)  # killed before Tune's first snapshot
    (tmp_path / "search" / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    assert saved_state(stage)
    (tmp_path / "search" / "experiment_state-2026-01-02_00-00-00.json").write_text('{"trial_data": [')
    with pytest.raises(ValueError, match="experiment_state-2026-01-02_00-00-00.json: Ray Tune's saved state"):
        saved_state(stage)


@pytest.mark.parametrize("store", ["local", "object store"])
def test_tune_deleting_a_checkpoint_waits_for_two_experiment_states_written_after(tmp_path, store):
    """Tune deletes a checkpoint beyond num_to_keep before its next snapshot is uploaded: a driver killed then
    left a snapshot naming a deleted checkpoint (Tuner.restore failed the trial). The second experiment state
    written after the deletion was saved after it, so only then is the folder removed. The same holds on
    any pyarrow filesystem (S3, GCS): here one that is not pyarrow's local one, over tmp_path."""
    from regsweep._tune_storage import TuneStorageHandler, delete_deferred_checkpoints

    if store == "local":
        fs, root = tune_filesystem(str(tmp_path))
    else:
        subtree = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
        fs, root = pafs.PyFileSystem(TuneStorageHandler(subtree)), ""
    assert fs.type_name == ("py::regsweep-tune-local" if store == "local" else "py::regsweep-tune-subtree")
    trial = tmp_path / "search" / "trial_00001"
    for name in ("checkpoint_000001", "checkpoint_000002", "not_a_checkpoint"):
        (trial / name).mkdir(parents=True)
        (trial / name / "data.pt").write_bytes(b"x")

    def at(path):
        return f"{root}/{path}" if root else path

    def snapshot():
        with fs.open_output_stream(at("search/experiment_state-2026-11-27_16-00-00.json")) as out:
            out.write(b"{}")

    fs.delete_dir(at("search/trial_00001/not_a_checkpoint"))
    assert not (trial / "not_a_checkpoint").exists()  # only checkpoints wait
    fs.delete_dir(at("search/trial_00001/checkpoint_000001"))
    assert (trial / "checkpoint_000001" / "data.pt").exists()
    with fs.open_output_stream(at("search/searcher-state-1.pkl")) as out:
        out.write(b"not an experiment state")
    snapshot()  # may be the upload that was under way when Tune deleted it
    assert (trial / "checkpoint_000001").exists()
    fs.delete_dir(at("search/trial_00001/checkpoint_000002"))
    fs.copy_file(at("search/experiment_state-2026-11-27_16-00-00.json"),
                 at("search/experiment_state-2026-11-27_16-00-02.json"))  # a store's copy is a snapshot too
    assert not (trial / "checkpoint_000001").exists() and (trial / "checkpoint_000002").exists()
    assert (tmp_path / "search" / "experiment_state-2026-11-27_16-00-02.json").read_bytes() == b"{}"
    delete_deferred_checkpoints()  # at a stage's end, the rest at once
    assert not (trial / "checkpoint_000002").exists()


def test_tune_state_saved_before_the_handler_was_renamed_still_loads():
    """Tune pickles its storage filesystem into tuner.pkl and each trial; sweeps interrupted under the old
    local handler (pickled as a call of AtomicLocalHandler()) must still resume."""

    class SavedByOlderRegsweep:
        def __reduce__(self):
            from regsweep._tune_storage import AtomicLocalHandler
            return AtomicLocalHandler, ()

    saved = pickle.dumps(SavedByOlderRegsweep())
    assert b"AtomicLocalHandler" in saved
    assert pafs.PyFileSystem(pickle.loads(saved)).type_name == "py::regsweep-tune-local"


def test_a_bucket_folder_is_found_written_and_deleted_whole(s3_bucket):
    """On a real S3 server: a fresh sweep deletes its storage folder (every object under the prefix) and a new
    one refuses a folder that holds files; results written there read back."""
    import pandas as pd

    from regsweep._results import delete_folder, holds_files, read_results, write_results

    folder = f"{s3_bucket}/sweeps/dropout"
    assert not holds_files(folder)
    delete_folder(folder)  # nothing there: no error
    write_results(pd.DataFrame({"trial_id": ["a", "b"], "val_acc": [0.5, 0.75]}), folder)
    fs, path = tune_filesystem(f"{folder}/search")
    assert fs.type_name == "py::regsweep-tune-s3"
    with fs.open_output_stream(f"{path}/experiment_state-2026-11-27_16-00-00.json") as out:
        out.write(b"{}")
    assert holds_files(folder) and saved_state(f"{folder}/search") is False  # no tuner.pkl yet
    assert list(read_results(folder)["val_acc"]) == [0.5, 0.75]
    delete_folder(folder)
    assert not holds_files(folder) and not holds_files(f"{folder}/search")
