"""The human-readable leaderboard table: the same columns in leaderboard.md and index.html."""

from __future__ import annotations

import html
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.report import stats


@dataclass(frozen=True)
class Column:
    """A displayed column: its header, the text of each cell and the key each cell sorts by (None sorts last)."""

    header: str
    texts: list[str]
    keys: list[float | str | None]
    #: Right-aligned as a number (None: when every key is a number).
    numeric: bool | None = None


def fmt(value: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant digits; '' for a missing value."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def with_ci(mean: float, low: float, high: float, digits: int = 4) -> str:
    """``mean ± half-width`` of a seed statistic (the mean alone when there is no interval)."""
    if pd.isna(mean):
        return ""
    if pd.isna(low) or pd.isna(high):
        return fmt(float(mean), digits)
    return f"{fmt(float(mean), digits)} ± {fmt(float(high - mean), 2)}"


def _key(value: Any) -> float | str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value if isinstance(value, str) else float(value)


def status_text(row: Mapping[Hashable, Any]) -> str:
    """The status cell, ``verdict (per-run counts; note)``: the note says when no confidence interval backs it."""
    extra = "; ".join(t for t in (row["status_counts"], row.get("note")) if isinstance(t, str) and t)
    return f"{row['status']} ({extra})" if extra else row["status"]


def board_columns(board: pd.DataFrame) -> list[Column]:
    """Columns of the leaderboard of one dataset and metric (rows as ranked in ``board``)."""
    rows = board.to_dict("records")

    def stat(header: str, name: str, digits: int) -> Column:
        texts = [with_ci(r[f"{name}_mean"], r[f"{name}_ci_low"], r[f"{name}_ci_high"], digits) for r in rows]
        return Column(header, texts, [_key(r[f"{name}_mean"]) for r in rows])

    def plain(header: str, values: list[Any]) -> Column:
        return Column(header, [fmt(v) for v in values], [_key(v) for v in values])

    columns = [
        plain("rank", [r["rank"] for r in rows]),
        plain("model", [r["model"] for r in rows]),
        plain("policy", [r["policy"] for r in rows]),
    ]
    if board.duplicated(["model", "policy"]).any():  # same labels, different settings: tell them apart
        columns.append(plain("config", [r["config"] for r in rows]))
    columns += [
        stat("generation 0", "first", 4),
        stat("last generation", "last", 4),
        plain("score", [r["score"] for r in rows]),
        stat("relative change", "relative_change", 3),
        stat("slope", "slope", 3),
        stat("AUC", "auc", 3),
        stat("late worsening", "late_worsening", 3),
        plain("threshold", [r["threshold"] for r in rows]),
        plain("collapse start", [r["collapse_start"] for r in rows]),
        Column(
            "status",
            [status_text(r) for r in rows],
            [float(stats.SEVERITY.index(r["status"])) for r in rows],
            numeric=False,
        ),
        plain("seeds", [int(r["seeds"]) for r in rows]),
    ]
    return columns


def md_text(text: str) -> str:
    """Markdown-safe text: HTML special characters escaped (Markdown renders raw HTML), pipes too (tables)."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def markdown(board: pd.DataFrame, title: str) -> str:
    """leaderboard.md: the definitions, then one table per dataset and metric."""
    lines = [f"# {md_text(title)}", ""]
    lines += [f"- **{term}**: {md_text(text)}" for term, text in stats.DEFINITIONS]
    lines.append("")
    if board.empty:
        return "\n".join([*lines, "No results in the store yet."])
    for (dataset, metric), group in board.groupby(["dataset", "metric"], sort=True):
        columns = board_columns(group)
        table = pd.DataFrame({c.header: [md_text(t) for t in c.texts] for c in columns})
        heading = f"{dataset}: {metric} ({group['direction'].iloc[0]})"
        lines += [f"## {md_text(heading)}", "", table.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines)
