"""The human-readable leaderboard: the same columns in leaderboard.md and index.html, and leaderboard.md."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.report import stats
from benchmark.report.findings import findings


@dataclass(frozen=True)
class Column:
    """A displayed column: its header, the text of each cell and the key each cell sorts by (None sorts last)."""

    header: str
    texts: list[str]
    keys: list[float | str | None]
    #: Right-aligned as a number (None: when every key is a number).
    numeric: bool | None = None


def fmt(value: Any, digits: int = 3) -> str:
    """A number in ``digits`` significant digits; '' for a missing value."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def with_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    """``mean ± half-width`` of an interval around a mean (the mean alone when there is no interval)."""
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
    """The status cell, ``verdict (per-run counts)``."""
    counts = row["status_counts"]
    return f"{row['status']} ({counts})" if isinstance(counts, str) and counts else str(row["status"])


#: Short names of the references in the tables.
REFERENCE = {"control": "control", "generation 0": "gen 0"}


def board_columns(board: pd.DataFrame, verdict_first: bool = False) -> list[Column]:
    """Columns of the leaderboard of one dataset and metric (rows as ranked in ``board``); the last is the note.
    The page puts the verdict first (its sticky column), leaderboard.md the rank."""
    rows = board.to_dict("records")

    def interval(header: str, name: str) -> Column:
        texts = [with_ci(r[f"{name}_mean"], r[f"{name}_ci_low"], r[f"{name}_ci_high"]) for r in rows]
        return Column(header, texts, [_key(r[f"{name}_mean"]) for r in rows])

    def plain(header: str, values: list[Any]) -> Column:
        return Column(header, [fmt(v) for v in values], [_key(v) for v in values])

    rank = plain("rank", [r["rank"] for r in rows])
    status = Column(
        "status",
        [status_text(r) for r in rows],
        [float(stats.SEVERITY.index(r["status"])) for r in rows],
        numeric=False,
    )
    columns = [
        *((status, rank) if verdict_first else (rank, status)),
        plain("model", [r["model"] for r in rows]),
        plain("policy", [r["policy"] for r in rows]),
    ]
    if board.duplicated(["model", "policy"]).any():  # same labels, different settings: tell them apart
        columns.append(plain("config", [r["config"] for r in rows]))
    columns += [
        interval("level", "level"),
        interval("late drift", "drift"),
        plain("tolerance", [r["tolerance"] for r in rows]),
        plain("vs", [REFERENCE.get(r["reference"], r["reference"]) for r in rows]),
        interval("generation 0", "first"),
        plain("worse from", [r["collapse_start"] for r in rows]),
        plain("seeds", [int(r["seeds"]) for r in rows]),
        plain("note", [r["note"] for r in rows]),
    ]
    return columns


def md_text(text: str) -> str:
    """Markdown-safe text: characters Markdown would read as markup (HTML tags, emphasis, table pipes)
    backslash-escaped, so names show as they are and the file holds no HTML entities."""
    return re.sub(r"([\\`*_<>&|])", r"\\\1", str(text))


def markdown(board: pd.DataFrame, title: str, order: Sequence[str] = ()) -> str:
    """leaderboard.md: findings (``order``: the grid's metrics, for the headline), one table per dataset and
    metric with its notes, then the definitions."""
    lines = [f"# {md_text(title)}", ""]
    if board.empty:
        lines += ["No results in the store yet.", ""]
    else:
        lines += ["## Findings", "", *(f"- {md_text(line)}" for line in findings(board, order)), ""]
        for (dataset, metric), group in board.groupby(["dataset", "metric"], sort=True):
            columns = board_columns(group)
            shown = [c for c in columns if c.header != "note"]
            table = pd.DataFrame({c.header: [md_text(t) for t in c.texts] for c in shown})
            heading = f"{dataset}: {metric} ({group['direction'].iloc[0]})"
            lines += [f"## {md_text(heading)}", "", table.to_markdown(index=False, disable_numparse=True), ""]
            notes = [
                f"- rank {r['rank']}, {md_text(r['model'])} / {md_text(r['policy'])}: {md_text(r['note'])}"
                for r in group.to_dict("records")
                if isinstance(r["note"], str) and r["note"]
            ]
            lines += [*notes, ""] if notes else []
    lines += ["## Definitions", ""]
    lines += [f"- **{term}**: {md_text(text)}" for term, text in stats.DEFINITIONS]
    return "\n".join(lines)
