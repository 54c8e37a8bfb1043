"""Kill a sweep's driver mid-way, as a crash would: for the resume tests."""

import json
import os
import signal
import subprocess
import time


def journal_records(path):
    """The sweep journal's complete lines (a killed writer may leave half a line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]


def unfinished(records, min_epochs=1):
    """Trials with at least `min_epochs` journaled epochs and no end: their last journaled epoch."""
    ended = {r["trial_id"] for r in records if r.get("kind") == "end"}
    last = {}
    for r in records:
        if r.get("kind") == "epoch" and r["trial_id"] not in ended:
            last[r["trial_id"]] = max(last.get(r["trial_id"], 0), r["epoch"])
    return {trial: epoch for trial, epoch in last.items() if epoch >= min_epochs}


def _mid_sweep(records):
    return sum(r.get("kind") == "end" for r in records) >= 1 and bool(unfinished(records, min_epochs=2))


def kill_mid_sweep(command, journal, cwd, env, timeout=180, until=_mid_sweep, sig=signal.SIGKILL, finished=None):
    """Start `command`, send `sig` (SIGKILL by default) to it and everything it started once `until(records)`
    holds (by default: a trial has ended and another has journaled two epochs); return the journal's records
    at the kill. `finished`, a list, receives the driver's exit code and output."""
    # Its own process group, so the kill takes the driver and the Ray (or the workers) it started, like a crash.
    driver = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline:
        records = journal_records(journal)
        if until(records):
            break
        assert driver.poll() is None, driver.stdout.read().decode()
        time.sleep(0.05)
    os.killpg(driver.pid, sig)
    output = driver.communicate(timeout=120)[0].decode()
    if finished is not None:
        finished.extend([driver.returncode, output])
    return journal_records(journal)
