"""Tune's storage: files written through it appear whole or not at all, even when the writer is killed."""

import fnmatch
import pickle
import subprocess
import sys

import pyarrow.fs as pafs
import pytest

from regsweep._tune_storage import atomic_local_filesystem, saved_state, stage_path

# Writes a new version of `path` through the chosen filesystem and dies, as a killed driver would, after
# half of it is out: the sync of Tune's experiment state to the storage path is such a write.
KILLED_WRITER = """
import os, sys
import pyarrow.fs as pafs
from regsweep._tune_storage import atomic_local_filesystem
fs = atomic_local_filesystem() if sys.argv[2] == "atomic" else pafs.LocalFileSystem()
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
    filesystem = pickle.loads(pickle.dumps(atomic_local_filesystem()))
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
