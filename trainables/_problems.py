"""Problems found in a config, phrased for people: which key, what was given, what is allowed."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import ValidationError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config or spec."""

    key: str
    given: Any
    allowed: str
    source: str = ""
    # True when the value is fine alone but the model cannot be built with the config's other values
    # (e.g. too much pooling for the image size): a sweep names the search point it happened at.
    combination: bool = False

    def __str__(self) -> str:
        where = "".join(f"{part}: " for part in (self.source, self.key) if part)
        given = "nothing" if self.given is _MISSING else repr(self.given)
        return f"{where}given {given}; {self.allowed}"

    def located(self, source: str, prefix: str = "") -> "Problem":
        """The same problem, placed in a file and under a key prefix."""
        key = f"{prefix}.{self.key}" if prefix and self.key else (prefix or self.key)
        return Problem(key, self.given, self.allowed, source, self.combination)


class ConfigError(ValueError):
    """A config with problems; `problems` lists each one."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class _Missing:
    def __repr__(self) -> str:
        return "nothing"


_MISSING = _Missing()


def did_you_mean(given: Any, options: Iterable[Any]) -> str:
    """' (did you mean 'x'?)' when `given` is close to one of `options`, else ''."""
    names = [str(o) for o in options]
    close = difflib.get_close_matches(str(given), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _literal_options(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected) or [s.strip() for s in re.split(r",| or ", expected) if s.strip()]


def problems_from_validation_error(error: ValidationError, fields: dict[str, list[str]]) -> list[Problem]:
    """Turn a pydantic ValidationError into Problems.

    `fields` maps a dotted key path prefix ('' for the top level) to the keys allowed there,
    used for the did-you-mean of unknown keys.
    """
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = ".".join(loc)
        given = item.get("input", _MISSING) if item["type"] != "missing" else _MISSING
        kind = item["type"]
        if kind == "extra_forbidden":
            parent = ".".join(loc[:-1])
            options = fields.get(parent, [])
            allowed = f"unknown key{did_you_mean(loc[-1], options)}; allowed: {', '.join(options)}"
            problems.append(Problem(key, loc[-1], allowed))
            continue
        if kind in ("literal_error", "enum"):
            options = _literal_options(str(item.get("ctx", {}).get("expected", "")))
            allowed = f"allowed: {', '.join(options)}{did_you_mean(given, options)}"
        elif kind == "missing":
            allowed = "this key is required"
        else:
            allowed = item["msg"][0].lower() + item["msg"][1:]
            allowed = allowed.replace("value error, ", "")
        problems.append(Problem(key, given, allowed))
    return problems
