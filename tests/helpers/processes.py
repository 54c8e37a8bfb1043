"""The processes that given processes started, from /proc (Linux): for the tests of what a sweep's Ray runs."""

import os


def children(parents: set[int]) -> dict[int, list[str]]:
    """Each live process whose parent is in `parents`: its command line, split into its arguments."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline") as cmdline:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                command = cmdline.read().split("\0")
        except OSError:  # ended meanwhile
            continue
        if parent in parents:
            found[int(pid)] = command
    return found
