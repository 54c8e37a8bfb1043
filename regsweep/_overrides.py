"""`--set key=value` overrides, with values read as YAML scalars or lists."""

from __future__ import annotations

from typing import Any

import yaml


class UsageError(ValueError):
    """Bad command-line input; the message says what was given and what is allowed."""


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ['epochs=3', 'fc_units=[64, 32]'] into {'epochs': 3, 'fc_units': [64, 32]}."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {pair!r}: expected key=value, e.g. --set epochs=3")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise UsageError(f"--set {pair!r}: value is not valid YAML ({exc})") from None
    return values


def set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    """Set target['a']['b'] = value for dotted = 'a.b', creating mappings on the way."""
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"--set {dotted}: {part} is not a mapping")
        target = child
    target[last] = value
