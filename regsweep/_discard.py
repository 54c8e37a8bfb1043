"""Discarding a sweep's results folder (`--fresh`) without waiting for its files to be deleted.

The folder is renamed into a trash folder beside it (one system call) and a process of its own deletes the
trash. Deleting it in the driver held the new sweep's first trial back for as long as the deletion took: 1.2 s for
a 1,000-trial folder here (3,000 files), and more beside a thread running Python (`shutil.rmtree` takes the
interpreter's lock back after every file, waiting each time for the other thread's switch interval).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

# Beside the sweeps, and with a character no sweep name may hold (`name` in the spec), so never a sweep's folder.
TRASH = ".regsweep-trash~"
# Empties the trash: this folder and any a deleter killed midway left behind (another may be deleting them too).
# A folder that was a link is only unlinked: what it points to is not the sweep's to delete.
_EMPTY_TRASH = """
import os, shutil, sys
for entry in os.scandir(sys.argv[1]):
    if entry.is_symlink():
        try:
            os.unlink(entry.path)
        except OSError:
            pass
    else:
        shutil.rmtree(entry.path, ignore_errors=True)
"""


def discard_folder(folder: Path) -> subprocess.Popen | None:
    """Remove `folder` from its place now and delete its files in another process; returns that process (None
    when the folder was deleted here: it could not be moved, as across filesystems, or no process could start)."""
    folder = Path(folder)
    trash = folder.parent / TRASH
    try:
        trash.mkdir(exist_ok=True)
        os.rename(folder, trash / f"{folder.name}-{uuid.uuid4().hex[:12]}")
    except OSError:
        shutil.rmtree(folder)
        return None
    try:
        deleter = subprocess.Popen([sys.executable, "-I", "-S", "-c", _EMPTY_TRASH, str(trash)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)  # not stopped by the Ctrl-C that stops the sweep
    except OSError:
        shutil.rmtree(trash, ignore_errors=True)
        return None
    # Reaped when it ends, should this process outlive it; one that exits first leaves it to finish alone.
    threading.Thread(target=deleter.wait, name="regsweep-discard", daemon=True).start()
    return deleter
