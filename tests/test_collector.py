"""regsweep._collector: the garbage collector paused while a process of regsweep's own starts (real gc state,
restored after each test)."""

import gc
import subprocess
import sys
import threading

import pytest

from regsweep import _collector


@pytest.fixture(autouse=True)
def _collector_restored():
    assert gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable()


def test_the_collector_stays_paused_until_the_last_hold_ends_then_the_start_is_frozen():
    frozen_before = gc.get_freeze_count()
    _collector.pause()
    assert not gc.isenabled()
    inside, leave = threading.Event(), threading.Event()

    def opens_mlflow_beside_the_start():
        with _collector.held():
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=opens_mlflow_beside_the_start)
    thread.start()
    assert inside.wait(30)
    _collector.release()  # the main thread's start is over; the thread still imports
    assert not gc.isenabled() and gc.get_freeze_count() == frozen_before
    leave.set()
    thread.join(30)
    assert gc.isenabled() and gc.get_freeze_count() > frozen_before


def test_without_a_pause_nothing_changes():
    """A sweep started from Python: release() and held() leave the caller's collector as it was."""
    frozen_before = gc.get_freeze_count()
    _collector.release()
    with _collector.held():
        assert gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen_before


def test_a_collector_turned_off_before_the_pause_stays_off():
    gc.disable()
    _collector.pause()
    _collector.release()
    assert not gc.isenabled()


def test_the_preload_imports_torch_once_with_the_collector_paused_then_frozen():
    code = ("import gc, sys\n"
            "seen = []\n"
            "gc.callbacks.append(lambda phase, info: seen.append(1) if phase == 'start' else None)\n"
            "import regsweep._preload\n"
            "print(len(seen), gc.isenabled(), gc.get_freeze_count() > 100_000, 'torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    collections, enabled, frozen, dynamo = done.stdout.split()
    # Hundreds with the collector on; importing the regsweep package itself (before the pause) might take one.
    assert int(collections) <= 1 and (enabled, frozen, dynamo) == ("True", "True", "True"), done.stdout


def test_the_commands_end_ends_every_hold_left():
    """A command whose start failed before its trials: its end turns the collector back on, and a thread that
    still held the pause changes nothing when it lets go."""
    _collector.pause()
    with _collector.held():
        _collector.finish()
        assert gc.isenabled()
    assert gc.isenabled()
    _collector.pause()
    assert not gc.isenabled(), "a new start pauses again"
    _collector.release()
    assert gc.isenabled()
