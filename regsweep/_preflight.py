"""Checks made once a sweep is about to run, before any trial: its data loads (on the driver under Ray; in a
worker on the local executor) and its storage URI opens."""

from __future__ import annotations

from typing import Any

import trainables
from regsweep._spec import SpecError
from regsweep._validate import Sweep
from trainables import Problem


def preflight_data(sweep: Sweep) -> None:
    """Load the sweep's data once on the driver before Ray starts: a missing download, a bad checksum or
    a Parquet file without the named columns is one clear DatasetError here, not an error per trial.
    (On one machine this also fills the download cache the trials then read.)"""
    if sweep.builtin:
        trainables.get_trainable(sweep.spec.trainable).check_data(preflight_config(sweep))


def check_storage(sweep: Sweep, storage: str) -> None:
    """A storage URI that pyarrow cannot open (a mistyped scheme, a bucket that cannot be reached) is one clear
    SpecError before the sweep's folder is made, not a traceback from Ray Tune's start. Local folders are made
    as needed."""
    if "://" not in storage:
        return
    from regsweep._results import filesystem_for

    try:
        filesystem_for(storage)
    except Exception as exc:  # pyarrow's own errors differ by scheme: ArrowInvalid, OSError, ...
        raise SpecError([Problem("resources.storage", storage, f"pyarrow.fs cannot open it ({exc}); name a local "
                                 "folder or a URI pyarrow.fs knows (s3://, gs://, hdfs://, file://)",
                                 str(sweep.spec_path))]) from None


def preflight_config(sweep: Sweep) -> dict[str, Any]:
    """The config of the data check: the sweep's first point, seed 0."""
    points = sweep.checked_points()
    return {**sweep.fixed, **(points[0] if points else {}), "seed": 0}
