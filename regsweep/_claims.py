"""Checkable hypotheses: `best` and `better` claims judged from confidence intervals, never from one run.

    claims:
      - best: {dropout: [0.1, 0.3]}          # the best dropout lies in [0.1, 0.3] (a list of 2 numbers)
      - best: {norm: [instance, layer]}      # ... or is one of these values
      - better: {norm: instance, than: batch}

Each is confirmed, refuted or inconclusive; inconclusive whenever the intervals that decide it overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from regsweep._aggregate import deciding_stage, final_rows
from regsweep._stats import Estimate, estimate_frame


@dataclass(frozen=True)
class Verdict:
    claim: dict[str, Any]
    outcome: str  # confirmed, refuted, inconclusive
    reason: str

    @property
    def text(self) -> str:
        return claim_text(self.claim)


def claim_problems(claim: Any, params: list[str]) -> list[str]:
    """What is wrong with a claim's shape, for spec validation."""
    if not isinstance(claim, dict) or len([k for k in ("best", "better") if k in claim]) != 1:
        return ["a claim is {best: {param: [lo, hi] or [values]}} or {better: {param: a, than: b}}"]
    body = claim.get("best", claim.get("better"))
    if not isinstance(body, dict):
        return ["the claim's body must be a mapping"]
    names = [k for k in body if k != "than"]
    if len(names) != 1:
        return [f"a claim names exactly one parameter, given {names}"]
    problems = []
    if names[0] not in params:
        problems.append(f"parameter {names[0]!r} is not searched; searched: {', '.join(params)}")
    if "better" in claim and "than" not in body:
        problems.append("a better claim needs `than`")
    return problems


def claim_text(claim: dict[str, Any]) -> str:
    if "best" in claim:
        (param, value), = claim["best"].items()
        return f"best {param} in {value}"
    body = claim["better"]
    param = next(k for k in body if k != "than")
    return f"{param}={body[param]} better than {param}={body['than']}"


def _levels(finals: pd.DataFrame, param: str, metric: str) -> dict[Any, Estimate]:
    column = f"config/{param}"
    if column not in finals:
        return {}
    table = estimate_frame(finals.dropna(subset=[column]).groupby(column)[metric])
    return {k: Estimate(r["mean"], r["low"], r["high"], int(r["n"])) for k, r in table.iterrows()}


def _fmt(e: Estimate) -> str:
    return f"{e.mean:.4f} [{e.low:.4f}, {e.high:.4f}] (n={e.n})" if e.n > 1 else f"{e.mean:.4f} (n=1)"


def _same(a: Any, b: Any) -> bool:
    return str(a) == str(b) or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b))


def _inside(value: Any, claimed: Any) -> bool:
    if isinstance(claimed, list) and len(claimed) == 2 and all(isinstance(v, (int, float)) for v in claimed) \
            and isinstance(value, (int, float)):
        return claimed[0] <= value <= claimed[1]
    options = claimed if isinstance(claimed, list) else [claimed]
    return any(_same(value, o) for o in options)


def _better(a: Estimate, b: Estimate, mode: str) -> bool:
    return a.mean > b.mean if mode == "max" else a.mean < b.mean


def judge(claim: dict[str, Any], finals: pd.DataFrame, metric: str, mode: str) -> Verdict:
    """Judge one claim against the final metrics of the deciding stage."""
    if "better" in claim:
        body = claim["better"]
        param = next(k for k in body if k != "than")
        levels = _levels(finals, param, metric)
        a = next((e for v, e in levels.items() if _same(v, body[param])), None)
        b = next((e for v, e in levels.items() if _same(v, body["than"])), None)
        if a is None or b is None:
            return Verdict(claim, "inconclusive", "no finished trials for one of the two values")
        shown = f"{param}={body[param]}: {_fmt(a)}; {param}={body['than']}: {_fmt(b)}"
        if a.overlaps(b):
            return Verdict(claim, "inconclusive", f"the intervals overlap ({shown})")
        outcome = "confirmed" if _better(a, b, mode) else "refuted"
        return Verdict(claim, outcome, f"the intervals are apart ({shown})")
    (param, claimed), = claim["best"].items()
    levels = _levels(finals, param, metric)
    if not levels:
        return Verdict(claim, "inconclusive", "no finished trials")
    best_value, best = max(levels.items(), key=lambda kv: kv[1].mean if mode == "max" else -kv[1].mean)
    inside = {v: e for v, e in levels.items() if _inside(v, claimed)}
    outside = {v: e for v, e in levels.items() if not _inside(v, claimed)}
    shown = f"best {param}={best_value}: {_fmt(best)}"
    if _inside(best_value, claimed):
        tied = [v for v, e in outside.items() if e.overlaps(best)]
        if not tied:
            return Verdict(claim, "confirmed", f"{shown}; every value outside {claimed} is clearly worse")
        return Verdict(claim, "inconclusive", f"{shown}, but {param}={tied} outside {claimed} cannot be told apart")
    tied = [v for v, e in inside.items() if e.overlaps(best)]
    if not tied:
        return Verdict(claim, "refuted", f"{shown} lies outside {claimed}, and every value inside is clearly worse")
    return Verdict(claim, "inconclusive", f"{shown} lies outside {claimed}, but {param}={tied} inside ties with it")


def judge_all(claims: list[dict[str, Any]], frame: pd.DataFrame, metric: str, mode: str) -> list[Verdict]:
    """Verdicts for every claim, on full-budget trials of the deciding stage."""
    finals = final_rows(frame[frame["stage"] == deciding_stage(frame)])
    finals = finals[finals["status"].isin(["completed", "stopped_early"])].dropna(subset=[metric])
    if "stopped_by" in finals:
        finals = finals[~finals["stopped_by"].astype(str).str.startswith("asha@")]
    return [judge(claim, finals, metric, mode) for claim in claims]
