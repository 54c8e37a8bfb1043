"""Leaderboard renderers: Rich renderables, Markdown, CSV and JSON; pure functions of a Leaderboard."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from regsweep._leaderboard import Leaderboard


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def interval(row: pd.Series | dict[str, Any]) -> str:
    """'0.9612 +- 0.0123' (half-width of the interval), or the mean alone for one replicate."""
    mean, low, high = row["mean"], row["low"], row["high"]
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return _num(mean)
    return f"{_num(mean)} ± {_num((high - low) / 2)}"


def _mark(row: pd.Series) -> str:
    return "best" if row.get("best") else ("tied" if row.get("tied") else "")


def _top_rows(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    names = [c[len("config/"):] for c in board.varying]
    header = ["#", *names, f"{board.metric} (95% CI)", "n", "", "best ep", "params", "gap", "epochs", "ended"]
    rows = []
    for _, row in board.top.iterrows():
        gap = _num(row.get("gap"), 3) + (" overfit" if row.get("overfit") else "")
        params = "-" if pd.isna(row.get("params")) else f"{int(row['params']):,}"
        rows.append([str(row["rank"]), *[str(row.get(c, "-")) for c in board.varying], interval(row), str(row["n"]),
                     _mark(row), _num(row.get("best_epoch"), 1), params, gap, _num(row.get("epochs"), 1),
                     str(row.get("ended", ""))])
    return header, rows


def _factor_rows(table: pd.DataFrame) -> list[list[str]]:
    return [[str(r["value"]), interval(r), str(r["n"]), _mark(r)] for _, r in table.iterrows()]


def _best_cell(grid: pd.DataFrame, mode: str) -> tuple[Any, Any] | None:
    stacked = grid.stack()
    if stacked.empty:
        return None
    return stacked.idxmax() if mode == "max" else stacked.idxmin()


def render_rich(board: Leaderboard) -> Group:
    """The leaderboard as Rich tables (print it on any Console)."""
    parts: list[Any] = []
    counts = ", ".join(f"{k} {v}" for k, v in sorted(board.counts.items()))
    parts.append(Text(f"{board.name}: {sum(board.counts.values())} trials ({counts}); ranked on {board.stage}",
                      style="bold"))
    header, rows = _top_rows(board)
    top = Table(title="Top configurations", title_justify="left")
    for column in header:
        top.add_column(column, justify="right" if column in ("#", "n", "best ep", "params", "epochs") else "left",
                       no_wrap=column.startswith(board.metric) or column == "ended")
    for row in rows:
        top.add_row(*row, style="bold green" if row[header.index("")] == "best" else None)
    parts.append(top)
    for column, table in board.factors.items():
        factor = Table(title=f"Factor {column[len('config/'):]}", title_justify="left")
        for name in ("value", f"{board.metric} (95% CI)", "n", ""):
            factor.add_column(name)
        for row in _factor_rows(table):
            factor.add_row(*row, style="bold green" if row[3] == "best" else None)
        parts.append(factor)
    for a, b, grid in board.pairs:
        best = _best_cell(grid, board.mode)
        pair = Table(title=f"{a} x {b} (mean {board.metric}; * best)", title_justify="left")
        pair.add_column(f"{a} \\ {b}")
        for column in grid.columns:
            pair.add_column(str(column), justify="right")
        for index, row in grid.iterrows():
            cells = [_num(v) + ("*" if best == (index, col) else "") for col, v in row.items()]
            pair.add_row(str(index), *cells)
        parts.append(pair)
    if not board.rungs.empty:
        rungs = Table(title="Rungs (ASHA): stopped vs continued trials at the same epoch", title_justify="left")
        for name in ("epoch", "stopped", f"stopped mean {board.metric}", "continued", f"continued mean {board.metric}"):
            rungs.add_column(name, justify="right")
        for r in board.rungs.to_dict("records"):  # not iterrows, whose rows turn the counts into floats
            rungs.add_row(str(r["epoch"]), str(r["stopped"]), _num(r["stopped_mean"]), str(r["continued"]),
                          _num(r["continued_mean"]))
        parts.append(rungs)
    parts += [Text(line, style="dim") for line in board.footer]
    return Group(*parts)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(board: Leaderboard) -> str:
    """The leaderboard as Markdown (used by the experiment journal too)."""
    header, rows = _top_rows(board)
    out = ["### Top configurations", "", _md_table(header, rows), ""]
    for column, table in board.factors.items():
        out += [f"### Factor `{column[len('config/'):]}`", "",
                _md_table(["value", f"{board.metric} (95% CI)", "n", ""], _factor_rows(table)), ""]
    for a, b, grid in board.pairs:
        best = _best_cell(grid, board.mode)
        rows = [[str(i), *[_num(v) + ("*" if best == (i, c) else "") for c, v in r.items()]]
                for i, r in grid.iterrows()]
        out += [f"### {a} x {b} (mean {board.metric}, * best)", "",
                _md_table([f"{a} \\ {b}", *map(str, grid.columns)], rows), ""]
    if not board.rungs.empty:
        rows = [[str(r["epoch"]), str(r["stopped"]), _num(r["stopped_mean"]), str(r["continued"]),
                 _num(r["continued_mean"])] for r in board.rungs.to_dict("records")]
        out += ["### Rungs (ASHA)", "", _md_table(["epoch", "stopped", "stopped mean", "continued",
                                                   "continued mean"], rows), ""]
    out += [f"_{line}_  " for line in board.footer]
    return "\n".join(out) + "\n"


def render_csv(board: Leaderboard) -> str:
    """The top configurations as CSV (one row per configuration)."""
    buffer = io.StringIO()
    board.top.to_csv(buffer, index=False)
    return buffer.getvalue()


def render_json(board: Leaderboard) -> str:
    """Every section as JSON."""
    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return json.loads(frame.to_json(orient="records"))

    payload = {
        "name": board.name, "metric": board.metric, "mode": board.mode, "stage": board.stage, "counts": board.counts,
        "top": records(board.top), "factors": {c[len("config/"):]: records(t) for c, t in board.factors.items()},
        "pairs": [{"a": a, "b": b, "means": json.loads(g.to_json())} for a, b, g in board.pairs],
        "rungs": records(board.rungs), "footer": board.footer,
    }
    return json.dumps(payload, indent=2) + "\n"  # a file or a terminal line ends with one
