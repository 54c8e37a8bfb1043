"""`--fresh`'s discarding of an earlier sweep's folder: moved out at once, deleted by another process."""

import os

import pytest

from regsweep import SpecError, load_sweep
from regsweep._discard import TRASH, discard_folder


def _sweep_folder(root, name="old", files=20):
    folder = root / "results" / name
    for i in range(files):
        (folder / "search" / f"search_{i:05d}").mkdir(parents=True)
        (folder / "search" / f"search_{i:05d}" / "checkpoint.pt").write_bytes(b"x" * 1000)
    (folder / "state.json").write_text("{}")
    return folder


def test_the_folder_leaves_its_place_at_once_and_another_process_deletes_it(tmp_path):
    folder = _sweep_folder(tmp_path)
    results = folder.parent
    # What a deleter killed midway left in the trash is deleted too.
    (results / TRASH / "old-0123456789ab" / "search").mkdir(parents=True)
    (results / TRASH / "old-0123456789ab" / "search" / "checkpoint.pt").write_bytes(b"x")
    deleter = discard_folder(folder)
    assert not folder.exists()
    assert deleter is not None and deleter.pid != os.getpid()
    assert deleter.wait(timeout=60) == 0
    assert list((results / TRASH).iterdir()) == []
    folder.mkdir()  # the name is free for the new sweep
    other = _sweep_folder(tmp_path, "other")
    assert discard_folder(other).wait(timeout=60) == 0
    assert sorted(p.name for p in results.iterdir()) == [TRASH, "old"]
    assert list((results / TRASH).iterdir()) == []


def test_a_folder_that_cannot_be_moved_to_the_trash_is_deleted_here(tmp_path):
    folder = _sweep_folder(tmp_path)
    (folder.parent / TRASH).write_text("a file where the trash folder would be")
    assert discard_folder(folder) is None
    assert not folder.exists()
    assert (folder.parent / TRASH).read_text().startswith("a file")


def test_no_sweep_can_be_named_as_the_trash_folder(write_spec):
    spec = {"name": TRASH, "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 1},
            "search_space": {"dropout": {"grid": [0.0]}}, "search": {"algorithm": "grid"}}
    with pytest.raises(SpecError, match="name"):
        load_sweep(write_spec(spec))
    assert load_sweep(write_spec({**spec, "name": "a.sweep-name_1"}), check_models=False).spec.name == "a.sweep-name_1"


def test_a_folder_that_is_a_link_is_unlinked_and_what_it_points_to_is_kept(tmp_path):
    elsewhere = _sweep_folder(tmp_path, "elsewhere")
    link = tmp_path / "results" / "linked"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert discard_folder(link).wait(timeout=60) == 0
    assert not link.exists() and not link.is_symlink()
    assert (elsewhere / "state.json").exists() and list((tmp_path / "results" / TRASH).iterdir()) == []
