"""This machine's pace at the moment of a benchmark: seconds for 10^7 Python additions on one core.

The shared two-core machines these benchmarks run on drift by up to 2x from hour to hour (1.0 s to 2.0 s for
this loop), which moves every absolute figure. Printed before and after a run, it tells whether two runs'
seconds can be compared; the side-by-side ratios are what the targets are about. `python bench/pace.py` prints
it now.
"""

from __future__ import annotations

import time


# At module level (global names), as the notes in BENCHMARKS.md measured it by hand: about 2.5x the time of the
# same loop inside a function, so only figures taken this way compare.
LOOP = compile("total = 0\nfor value in range(10_000_000):\n    total += value\n", "<pace>", "exec")


def python_pace() -> float:
    """Seconds for 10^7 additions in a Python loop at module level."""
    start = time.perf_counter()
    exec(LOOP, {})
    return time.perf_counter() - start


def pace_line(when: str) -> str:
    """`machine pace <when>: 10^7 Python additions in X s`, measured now."""
    return f"machine pace {when}: 10^7 Python additions in {python_pace():.2f}s"


if __name__ == "__main__":
    print(pace_line("now"))
