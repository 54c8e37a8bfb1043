"""Training the next short epoch while the previous one is reported (regsweep/_ahead.py), without Ray."""

import os
import threading
import time

import pytest
import torch

import trainables
from regsweep._ahead import epochs_with_checkpoints, report_ahead


class CountingTrial:
    """A stand-in trial whose epochs take `seconds` and claim `claimed` seconds each."""

    def __init__(self, epochs, seconds=0.01, claimed=0.01, fail_at=None):
        self.epochs, self.seconds, self.claimed, self.fail_at = epochs, seconds, claimed, fail_at
        self.started = 0
        self.lock = threading.Lock()

    @property
    def finished(self):
        return self.started >= self.epochs

    def run_epoch(self):
        with self.lock:
            self.started += 1
            epoch = self.started
        if epoch == self.fail_at:
            raise ValueError(f"epoch {epoch} broke")
        time.sleep(self.seconds)
        return {"epoch": epoch, "epoch_seconds": self.claimed}

    def summary(self):
        return {"epochs_trained": self.started}

    def save(self, path):
        with open(path, "w") as handle:
            handle.write(str(self.started))


def test_reports_each_epoch_in_order_with_its_own_checkpoint_and_cleans_up():
    config = {"dataset": "digits", "epochs": 4, "hidden": [16], "threads": 1, "seed": 3}
    spec = trainables.get_trainable("mlp")
    direct = [m["val_loss"] for m in spec.run(config)]
    reported, folders = [], []

    def report(metrics, folder):
        saved = torch.load(os.path.join(folder, "trial.pt"), weights_only=False)
        assert saved["epoch"] == metrics["epoch"], "the checkpoint is the reported epoch's, not a later one"
        reported.append(metrics)
        folders.append(folder)

    report_ahead(epochs_with_checkpoints(spec.make_trial(config), "trial.pt", every_s=0.0), report)
    assert [m["epoch"] for m in reported] == [1, 2, 3, 4]
    assert [m["val_loss"] for m in reported] == direct, "running ahead changes no number"
    assert "epochs_trained" in reported[-1] and "epochs_trained" not in reported[0]
    assert not any(os.path.exists(f) for f in folders)


@pytest.mark.parametrize("claimed, most_ahead", [(0.01, 1), (5.0, 0)], ids=["short", "long"])
def test_short_epochs_run_one_ahead_and_long_ones_do_not(claimed, most_ahead):
    trial = CountingTrial(epochs=6, claimed=claimed)
    ahead = []

    def report(metrics, folder):
        time.sleep(0.05)  # the driver's round trip
        ahead.append(trial.started - metrics["epoch"])

    report_ahead(epochs_with_checkpoints(trial, "trial.pt", every_s=100.0), report)
    assert len(ahead) == 6 and max(ahead) == most_ahead


def test_a_stop_during_a_report_ends_the_helper_and_removes_unreported_checkpoints(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp puts the checkpoints
    trial = CountingTrial(epochs=50)
    folders = []

    def report(metrics, folder):
        folders.append(folder)
        if metrics["epoch"] == 2:
            time.sleep(0.05)  # the helper has trained and saved epoch 3 meanwhile
            raise SystemExit(0)  # what Tune raises in tune.report when it stops a trial

    with pytest.raises(SystemExit):
        report_ahead(epochs_with_checkpoints(trial, "trial.pt", every_s=0.0), report)
    assert trial.started == 3, "the helper trained one epoch ahead, then stopped"
    assert len(folders) == 2
    assert list(tmp_path.glob("regsweep-checkpoint-*")) == [], "epoch 3's checkpoint was removed too"
    assert not any(t.name == "regsweep-epochs" for t in threading.enumerate())


def test_an_error_in_training_reaches_the_reporting_thread():
    reported = []
    with pytest.raises(ValueError, match="epoch 3 broke"):
        report_ahead(epochs_with_checkpoints(CountingTrial(epochs=5, fail_at=3), "trial.pt", every_s=100.0),
                     lambda metrics, folder: reported.append(metrics["epoch"]))
    assert reported == [1, 2]


def test_a_killed_trial_process_leaves_checkpoint_folders_that_the_next_one_removes(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from regsweep import _ahead

    # A trial process saves a checkpoint and is SIGKILLed before it can remove it (Ctrl-C on a sweep).
    code = ("import os, signal, tempfile, sys; tempfile.tempdir = sys.argv[1]\n"
            "from regsweep._ahead import _temporary_folder\n"
            "open(os.path.join(_temporary_folder(), 'trial.pt'), 'w').write('x')\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=60)
    assert killed.returncode == -9
    orphan = list(tmp_path.glob("regsweep-checkpoint-*"))
    assert len(orphan) == 1 and (orphan[0] / "trial.pt").exists()
    dead_pid = orphan[0].name.split("-")[2]
    alive = tmp_path / f"regsweep-checkpoint-{os.getpid()}-kept"  # a live process's folder
    unrelated = tmp_path / "regsweep-checkpoint-notapid"
    for folder in (alive, unrelated):
        folder.mkdir()
    old = time.time() - 2 * _ahead.ORPHAN_AGE_S
    for folder in (orphan[0], alive, unrelated):
        os.utime(folder, (old, old))
    # The same dead process's, written just now: kept, since its owner may only be out of sight (another PID
    # namespace sharing /tmp) and still about to report it.
    recent = tmp_path / f"regsweep-checkpoint-{dead_pid}-recent"
    recent.mkdir()

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(_ahead, "_orphans_removed", False)
    reported = []
    report_ahead(epochs_with_checkpoints(CountingTrial(epochs=3), "trial.pt", every_s=0.0),
                 lambda metrics, folder: reported.append(os.path.exists(os.path.join(folder, "trial.pt"))))
    assert reported == [True, True, True]
    assert sorted(p.name for p in tmp_path.glob("regsweep-checkpoint-*")) == sorted([alive.name, unrelated.name,
                                                                                   recent.name])
