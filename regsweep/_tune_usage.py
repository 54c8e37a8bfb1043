"""Ray Tune's usage stats, kept from importing MLflow into a driver that does not log to it."""

from __future__ import annotations

import collections
import contextlib
import json
from typing import Any, Iterator


@contextlib.contextmanager
def callbacks_tagged_without_integrations() -> Iterator[None]:
    """Tune tags which callbacks a run uses (Ray's usage stats) by importing its MLflow, W&B, Comet and Aim
    integrations to compare classes, and the MLflow one imports MLflow: 1.5-1.8 s of the driver's CPU before the
    first trial of a sweep that logs nothing to MLflow. regsweep's callbacks are its own classes, which Ray counts
    as custom: the same tag is recorded here without those imports. Where the private function has moved, Tune
    runs as it is."""
    try:
        from ray.air._internal import usage
        from ray.tune.logger import LoggerCallback

        original, record, key = usage.tag_callbacks, usage.record_extra_usage_tag, usage.TagKey.AIR_CALLBACKS
    except (ImportError, AttributeError):
        yield
        return

    def tag_own_callbacks(callbacks: list[Any] | None) -> bool:
        counts = collections.Counter("CustomLoggerCallback" if isinstance(c, LoggerCallback)
                                     else "CustomCallback" for c in callbacks or [])
        if counts:
            record(key, json.dumps(counts))
        return bool(counts)

    usage.tag_callbacks = tag_own_callbacks
    try:
        yield
    finally:
        usage.tag_callbacks = original
