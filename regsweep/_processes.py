"""Whether a process of this machine is still there (a driver's state file, a killed actor's files)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process `pid` of this machine exists, also when it belongs to another user."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
