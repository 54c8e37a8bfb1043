"""The training loop: one resumable Trial per config, no Ray required."""

from trainables.loop._trial import Trial

__all__ = ["Trial"]
