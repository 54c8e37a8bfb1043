"""Run code in a fresh Python pinned to one core, as `taskset -c 0` would: for the CPU-count tests."""

import os
import subprocess
import sys

import pytest

needs_two_cores = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2,
                                     reason="needs two cores")


def run_on_one_core(code: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """The last line `code` prints, run in a new process pinned to one of this process's cores."""
    pinned = "import os\nos.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n" + code
    done = subprocess.run([sys.executable, "-c", pinned], capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]
